"""Event-stream framing: round trips under hypothesis, and corruption is always caught."""

from __future__ import annotations

import datetime
import json
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from smithy_aws_event_stream.events import Byte, Long, Short

from nova_emulator import eventstream
from nova_emulator.eventstream import FrameReader, FramingError

names = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=20
)
millis = st.integers(min_value=0, max_value=4_102_444_800_000)  # 1970 .. 2100
values = st.one_of(
    st.booleans(),
    st.integers(-(2**7), 2**7 - 1).map(Byte),
    st.integers(-(2**15), 2**15 - 1).map(Short),
    st.integers(-(2**31), 2**31 - 1),
    st.integers(-(2**63), 2**63 - 1).map(Long),
    st.binary(max_size=64),
    st.text(max_size=64),
    millis.map(lambda ms: datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC)),
    st.uuids(),
)
headers = st.dictionaries(names, values, max_size=8)
payloads = st.binary(max_size=2048)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**9), 10**9) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _sent(h: dict) -> dict:
    """What goes on the wire: the SDK's encoder writes int(timestamp * 1000) milliseconds.

    That truncation can move a datetime by 1 ms, which is why the chunk-signature check
    hashes the ``:date`` header's raw bytes instead of re-encoding a decoded datetime.
    """
    return {
        k: int(v.timestamp() * 1000) if isinstance(v, datetime.datetime) else v
        for k, v in h.items()
    }


def _received(h: dict) -> dict:
    return {
        k: round(v.timestamp() * 1000) if isinstance(v, datetime.datetime) else v
        for k, v in h.items()
    }


@given(headers, payloads)
def test_frame_round_trips(h: dict, payload: bytes) -> None:
    frame = eventstream.encode(h, payload)
    decoded = eventstream.decode(frame)
    assert decoded.payload == payload
    assert _received(dict(decoded.headers)) == _sent(h)
    assert decoded.header_bytes == eventstream.encode_headers(h)


@given(st.lists(st.tuples(headers, payloads), min_size=1, max_size=6), st.data())
def test_reader_reassembles_frames_cut_anywhere(frames: list, data: st.DataObject) -> None:
    wire = b"".join(eventstream.encode(h, p) for h, p in frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=10)))
    reader = FrameReader()
    got = []
    start = 0
    for cut in [*cuts, len(wire)]:
        got += reader.feed(wire[start:cut])
        start = cut
    assert reader.pending == 0
    assert [(g.payload, _received(dict(g.headers))) for g in got] == [
        (p, _sent(h)) for h, p in frames
    ]


@settings(max_examples=200)
@given(headers, payloads, st.data())
def test_any_flipped_byte_is_refused(h: dict, payload: bytes, data: st.DataObject) -> None:
    frame = bytearray(eventstream.encode(h, payload))
    i = data.draw(st.integers(0, len(frame) - 1))
    frame[i] ^= data.draw(st.integers(1, 255))
    with pytest.raises(FramingError):
        # Through the reader: a corrupted length must not make it wait for ever either.
        got = FrameReader().feed(bytes(frame))
        if not got:
            raise FramingError("incomplete")  # a longer claimed length: never a valid frame


@given(json_values.map(lambda v: {"event": {"x": {"v": v}}}))
def test_chunk_frames_carry_any_json_event(event: dict) -> None:
    inner = eventstream.decode(eventstream.chunk_frame(event))
    assert inner.headers[":message-type"] == "event"
    assert inner.headers[":event-type"] == "chunk"
    assert inner.headers[":content-type"] == "application/json"
    assert eventstream.read_chunk(inner) == event


def test_signed_outer_frame_wraps_the_inner_frame() -> None:
    inner = eventstream.chunk_frame({"event": {"sessionEnd": {}}})
    when = datetime.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=datetime.UTC)
    outer = eventstream.decode(eventstream.signed_frame(inner, when, b"\x01" * 32))
    assert outer.headers[":chunk-signature"] == b"\x01" * 32
    assert outer.headers[":date"] == when
    assert outer.payload == inner


def test_exception_and_error_frames() -> None:
    exc = eventstream.decode(eventstream.exception_frame("validationException", "bad"))
    assert exc.headers[":message-type"] == "exception"
    assert exc.headers[":exception-type"] == "validationException"
    assert json.loads(exc.payload) == {"message": "bad"}
    err = eventstream.decode(eventstream.error_frame("InvalidSignatureException", "no"))
    assert err.headers[":error-code"] == "InvalidSignatureException"
    assert err.headers[":error-message"] == "no"


@pytest.mark.parametrize(
    ("inner_headers", "payload", "needle"),
    [
        ({":message-type": "event", ":event-type": "other"}, b"{}", "chunk event"),
        (eventstream.CHUNK_HEADERS, b"not json", "not JSON"),
        (eventstream.CHUNK_HEADERS, b'{"bytes": 3}', '{"bytes"'),
        (eventstream.CHUNK_HEADERS, b'{"bytes": "!!!"}', "base64"),
        (eventstream.CHUNK_HEADERS, b'{"bytes": "bm90IGpzb24="}', "JSON event"),
        (eventstream.CHUNK_HEADERS, b'{"bytes": "WzFd"}', "JSON object"),
    ],
)
def test_malformed_chunks_name_the_problem(
    inner_headers: dict, payload: bytes, needle: str
) -> None:
    frame = eventstream.decode(eventstream.encode(inner_headers, payload))
    with pytest.raises(eventstream.ChunkError, match=needle.replace("{", r"\{")):
        eventstream.read_chunk(frame)


def test_impossible_length_is_refused_at_once() -> None:
    with pytest.raises(FramingError, match="impossible frame length"):
        FrameReader().feed(b"\x00\x00\x00\x05" + b"\x00" * 8)


def test_uuid_header_round_trips() -> None:
    u = uuid.uuid4()
    assert eventstream.decode(eventstream.encode({"id": u})).headers["id"] == u
