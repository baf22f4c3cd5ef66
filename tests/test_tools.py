"""The tool API: declaring tools, loading them from settings, running them off the audio path."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from sonic_fsm import cli, clock
from sonic_fsm.audio.wav import TimelineSink
from sonic_fsm.bench.script import ReactiveSource
from sonic_fsm.runner import Runner
from sonic_fsm.settings import load
from sonic_fsm.tools import Tool, ToolError, Tools, call, registry, signal_tool, tool


@tool(schema={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
def weather(city: str) -> dict[str, str]:
    """The weather in a city."""
    return {"city": city, "sky": "clear"}


def test_a_decorated_function_is_declared_with_its_schema() -> None:
    assert weather.name == "weather" and weather.description == "The weather in a city."
    spec = Tools([weather]).specs()[0]["toolSpec"]
    assert spec["name"] == "weather"
    assert json.loads(spec["inputSchema"]["json"])["required"] == ["city"]


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"input_schema": {"type": "object", "properties": {"n": {"type": "nope"}}}}, "invalid"),
        ({"input_schema": {"type": "string"}}, "type object"),
        ({"name": "has space"}, "a name is"),
        ({"description": " "}, "description"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
    ],
)
def test_a_bad_tool_is_one_line(kwargs: dict[str, Any], says: str) -> None:
    args: dict[str, Any] = {"name": "t", "description": "d", "fn": lambda: 1, **kwargs}
    with pytest.raises(ToolError) as e:
        Tool(**args)
    assert says in str(e.value) and "\n" not in str(e.value)


def test_two_tools_of_one_name_are_refused() -> None:
    with pytest.raises(ToolError, match="two different tools"):
        Tools([weather, Tool(name="weather", description="x", fn=lambda: 1)])


def test_the_registry_holds_the_builtins_the_modules_and_the_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "shop_tools.py").write_text(
        textwrap.dedent(
            """
            from sonic_fsm.tools import tool

            @tool
            def order_status(order_id: str = "") -> dict:
                '''Where an order is.'''
                return {"status": "shipped"}
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    s = load(None, ['tools.modules=["shop_tools"]'])
    names = [t.name for t in registry(s, [weather])]
    assert names == ["getDateAndTimeTool", "testSignalTool", "order_status", "weather"]
    assert [t.name for t in registry(load(None, ["tools.builtin=[]"]))] == []


@pytest.mark.parametrize(
    ("override", "says"),
    [
        ('tools.modules=["no_such_module_here"]', "cannot import 'no_such_module_here'"),
        ('tools.modules=["json"]', "'json' defines no tools"),
        ('tools.builtin=["nope"]', "unknown tool 'nope'"),
        ("tools.modules=3", "expected a list of str"),
    ],
)
def test_bad_tool_settings_stop_the_start_with_one_line(
    override: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["run", "--headless", "--fast", "--mic", "null", "--speaker", "null", "--set", override]
    assert cli.main(args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], lines


def run_call(t: Tool | None, content: str, timeout: float = 1.0) -> Any:
    async def main() -> Any:
        with ThreadPoolExecutor(2) as pool:
            return await call(t, t.name if t else "ghost", content, timeout, pool)

    return asyncio.run(main())


def test_a_tool_call_always_answers() -> None:
    assert run_call(weather, '{"city": "Oslo"}') == {"city": "Oslo", "sky": "clear"}
    assert run_call(weather, "{}")["error"].startswith("invalid input")
    assert run_call(weather, "not json")["error"].startswith("input is not JSON")
    assert run_call(None, "{}") == {"error": "unknown tool ghost"}

    def boom() -> None:
        raise KeyError("no such order")

    failed = run_call(Tool(name="boom", description="d", fn=boom), "{}")
    assert failed == {"error": "boom failed: KeyError: 'no such order'"}

    async def slow() -> int:
        await asyncio.sleep(5)
        return 1

    timed_out = run_call(Tool(name="slow", description="d", fn=slow), "{}", timeout=0.05)
    assert timed_out == {"error": "slow timed out after 0.05 s"}
    odd = run_call(Tool(name="odd", description="d", fn=lambda: {1, 2}), "{}")
    assert "JSON cannot encode" in odd["error"]


def test_the_test_signal_tool_answers_seven_times_n_and_fails_on_request() -> None:
    calls: list[int] = []
    t = signal_tool(0.01, fail={2}, hang={3}, calls=calls)
    assert run_call(t, '{"n": 5}') == {"value": 35}
    assert "failed" in run_call(t, '{"n": 2}')["error"]
    assert "timed out" in run_call(t, '{"n": 3}', timeout=0.05)["error"]
    assert calls == [5, 2, 3]


# ---- off the audio path ------------------------------------------------------------------


class ScriptedSession:
    """A model that, 1 s in, asks a tool and meanwhile speaks 3 s of audio in real time
    (one 100 ms chunk every 100 ms): the loop must keep taking the microphone and feeding
    the speaker while the tool runs. It records when each audioInput arrived."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.t0 = self.loop.time()
        self.audio_in: list[float] = []
        self.results: list[dict[str, Any]] = []
        self.closed = asyncio.Event()
        chunk = base64.b64encode(b"\x10\x00" * 2400).decode()

        def ev(name: str, **body: Any) -> dict[str, Any]:
            return {"event": {name: {"promptName": "p", **body}}}

        self.script: list[tuple[float, dict[str, Any]]] = [
            (1.0, ev("toolUse", contentId="t", toolName="lookup", toolUseId="u1", content="{}")),
            (1.0, ev("contentStart", contentId="a", type="AUDIO", role="ASSISTANT")),
            *[(1.0 + i / 10, ev("audioOutput", contentId="a", content=chunk)) for i in range(30)],
            (4.0, ev("contentEnd", contentId="a", type="AUDIO", stopReason="END_TURN")),
        ]

    async def send(self, event: dict[str, Any]) -> None:
        body = event["event"]
        if "audioInput" in body:
            self.audio_in.append(self.loop.time() - self.t0)
        if "toolResult" in body:
            self.results.append(json.loads(body["toolResult"]["content"]))

    async def receive(self) -> dict[str, Any] | None:
        if not self.script:
            await self.closed.wait()
            return None
        at, item = self.script.pop(0)
        await asyncio.sleep(max(0.0, self.t0 + at - self.loop.time()))
        return item

    async def accepted(self) -> None:
        pass

    async def close(self) -> None:
        self.closed.set()


class ScriptedBackend:
    def __init__(self) -> None:
        self.sessions: list[ScriptedSession] = []

    async def open(self, session_id: str) -> ScriptedSession:
        self.sessions.append(ScriptedSession())
        return self.sessions[-1]

    async def aclose(self) -> None:
        pass


def test_a_blocking_tool_does_not_hold_up_the_microphone_or_the_speaker() -> None:
    """The tool blocks its thread until the test, running on the loop 2 s later, has looked
    at the audio timeline and releases it. Inline on the loop, the release could never come."""
    settings = load(None, ["tools.builtin=[]", "tools.timeout_seconds=60"])
    started, release = threading.Event(), threading.Event()

    def lookup() -> dict[str, bool]:
        started.set()
        return {"released": release.wait(timeout=5.0)}

    backend = ScriptedBackend()
    sink = TimelineSink(None, 24000)
    source = ReactiveSource([], lambda: "NORMAL", lambda: False, tail_seconds=4.0)
    conv = Runner(
        settings,
        backend,
        source,
        sink,
        tools=[Tool(name="lookup", description="d", fn=lookup)],
    )
    seen: dict[str, Any] = {}

    async def watch() -> None:
        loop = asyncio.get_running_loop()
        while not started.is_set():
            await asyncio.sleep(0.064)
        t_tool = loop.time()
        await asyncio.sleep(2.0)
        session = backend.sessions[0]
        window = [t for t in session.audio_in if t_tool <= t <= t_tool + 2.0]
        seen["frames"] = len(window)
        seen["gap"] = max(b - a for a, b in itertools.pairwise(window))
        played = bytes(sink.timeline[int(1.1 * 24000) * 2 : int(3.0 * 24000) * 2])
        seen["silent_ms"] = played.count(b"\x00\x00") / 24
        release.set()

    async def main() -> None:
        run = asyncio.create_task(conv.run())
        await asyncio.wait_for(watch(), 30)
        await asyncio.wait_for(run, 60)

    clock.run(main(), virtual=True)
    assert seen["frames"] >= 30  # 2 s of 64 ms frames reached the session meanwhile
    assert seen["gap"] <= 0.07
    assert seen["silent_ms"] == 0  # the speaker played on while the tool ran
    assert backend.sessions[0].results == [{"released": True}]


def test_the_readme_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = text.split("## Tools", 1)[1]
    code = section.split("```python", 1)[1].split("```", 1)[0]
    monkeypatch.setattr("sys.argv", ["example"])
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    exec(compile(code, "README.md", "exec"), namespace)
    conv = namespace["conv"]
    assert [t.name for t in conv.tools] == [
        "getDateAndTimeTool", "testSignalTool", "order_status", "opening_hours"
    ]  # fmt: skip
    order = conv.tools.get("order_status")
    assert run_call(order, '{"order_id": "A17"}')["status"] == "shipped"
    assert run_call(conv.tools.get("opening_hours"), "{}")["saturday"] == "10-14"
