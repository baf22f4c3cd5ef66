"""A stand-in for ``pyaudio.PyAudio``: devices given as PortAudio dicts, streams whose
callbacks the caller drives. For the tests and ``sonic-fsm bench --scenario audio``, which
run the real adapters without a sound card."""

from __future__ import annotations

from typing import Any


def dev(index: int, name: str, ins: int, outs: int) -> dict[str, Any]:
    return {
        "index": index,
        "name": name,
        "maxInputChannels": ins,
        "maxOutputChannels": outs,
        "defaultSampleRate": 48000.0,
    }


LAPTOP = [
    dev(0, "HDA Intel PCH: ALC257 Analog (hw:0,0)", 2, 2),
    dev(1, "HDMI 0 (hw:0,3)", 0, 8),
    dev(2, "USB Headset Mic (hw:1,0)", 1, 0),
    dev(3, "pulse", 32, 32),
    dev(4, "default", 32, 32),
]


class FakeStream:
    def __init__(self, pa: FakePyAudio, kwargs: dict[str, Any]) -> None:
        self.pa, self.kwargs = pa, kwargs
        self.callback = kwargs["stream_callback"]
        self.active = bool(kwargs.get("start", True))
        self.closed = False

    def start_stream(self) -> None:
        self.active = True

    def stop_stream(self) -> None:
        self.active = False

    def close(self) -> None:
        self.closed = True


class FakePyAudio:
    """What the adapters use of ``pyaudio.PyAudio``, with devices given as PortAudio dicts."""

    def __init__(
        self,
        devices: list[dict[str, Any]],
        default_in: int | None = None,
        default_out: int | None = None,
        open_error: OSError | None = None,
    ) -> None:
        self.devices, self.default_in, self.default_out = devices, default_in, default_out
        self.open_error = open_error
        self.streams: list[FakeStream] = []
        self.terminated = False

    def get_device_count(self) -> int:
        return len(self.devices)

    def get_device_info_by_index(self, i: int) -> dict[str, Any]:
        return self.devices[i]

    def get_default_input_device_info(self) -> dict[str, Any]:
        if self.default_in is None:
            raise OSError("No Default Input Device Available")
        return self.devices[self.default_in]

    def get_default_output_device_info(self) -> dict[str, Any]:
        if self.default_out is None:
            raise OSError("No Default Output Device Available")
        return self.devices[self.default_out]

    def open(self, **kwargs: Any) -> FakeStream:
        if self.open_error:
            raise self.open_error
        stream = FakeStream(self, kwargs)
        self.streams.append(stream)
        return stream

    def terminate(self) -> None:
        self.terminated = True
