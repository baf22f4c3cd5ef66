"""Tools the model may call: a name, a description, a JSON input schema and a Python function.

A :class:`Tool` is declared to every session in ``promptStart``'s ``toolConfiguration``; when
the model sends a ``toolUse``, the function is called with the input's fields as keyword
arguments (``async def`` functions as tasks, plain ones in a bounded thread pool, both under a
timeout) and what it returns, JSON, goes back as the ``toolResult``. A tool that raises, times
out, is unknown or gets input its schema rejects answers ``{"error": "..."}`` instead, so the
model can say that the lookup failed.

:func:`tool` makes a tool of a function (the docstring is its description); :class:`Tools` is
the registry a conversation uses; :func:`registry` builds it from settings: the built-in tools
named in ``tools.builtin``, every tool defined in the modules of ``tools.modules``, and any
given in code. A bad module or an invalid schema is a one-line :class:`ToolError`.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import importlib
import inspect
import json
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, overload

import jsonschema

from sonic_fsm.settings import Settings, SettingsError

NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
EMPTY_SCHEMA: Mapping[str, Any] = {"type": "object", "properties": {}, "required": []}


class ToolError(SettingsError):
    """A tool that cannot be offered: one line naming the tool and the problem."""


@dataclass(frozen=True, eq=False)
class Tool:
    """One tool. ``fn`` takes the input's fields as keyword arguments and returns something
    JSON can encode; it may be ``async``. ``timeout_seconds`` overrides the setting
    ``tools.timeout_seconds`` for this tool."""

    name: str
    description: str
    fn: Callable[..., Any]
    input_schema: Mapping[str, Any] = field(default_factory=lambda: dict(EMPTY_SCHEMA))
    timeout_seconds: float | None = None

    def __post_init__(self) -> None:
        if not NAME.match(self.name):
            raise ToolError(
                f"tool {self.name!r}: a name is a letter, then up to 63 letters, digits, _ or -"
            )
        if not self.description.strip():
            raise ToolError(f"tool {self.name}: needs a description (the model reads it)")
        if not callable(self.fn):
            raise ToolError(f"tool {self.name}: fn is not callable")
        if self.timeout_seconds is not None and self.timeout_seconds <= 0:
            raise ToolError(f"tool {self.name}: timeout_seconds must be positive")
        schema = self.input_schema
        if not isinstance(schema, Mapping) or schema.get("type") != "object":
            raise ToolError(f"tool {self.name}: input_schema must be a JSON schema of type object")
        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
            json.dumps(schema)
        except jsonschema.SchemaError as e:
            raise ToolError(f"tool {self.name}: invalid input_schema: {e.message}") from None
        except (TypeError, ValueError) as e:
            raise ToolError(f"tool {self.name}: input_schema is not JSON: {e}") from None

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.fn)

    def spec(self) -> dict[str, Any]:
        """The ``toolSpec`` entry of ``promptStart``'s ``toolConfiguration``."""
        return {
            "toolSpec": {
                "name": self.name,
                "description": self.description,
                "inputSchema": {"json": json.dumps(self.input_schema)},
            }
        }

    def input_error(self, args: Any) -> str | None:
        """Why ``args`` (the parsed input) does not fit the schema, or ``None``."""
        validator = jsonschema.validators.validator_for(self.input_schema)(self.input_schema)
        error = jsonschema.exceptions.best_match(validator.iter_errors(args))
        return None if error is None else f"invalid input: {error.message}"


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...
@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    schema: Mapping[str, Any] | None = None,
    timeout_seconds: float | None = None,
) -> Callable[[Callable[..., Any]], Tool]: ...
def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    schema: Mapping[str, Any] | None = None,
    timeout_seconds: float | None = None,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a :class:`Tool` of a function: ``@tool`` or ``@tool(schema=..., ...)``. The name
    defaults to the function's, the description to its docstring."""

    def make(f: Callable[..., Any]) -> Tool:
        return Tool(
            name=name or f.__name__,
            description=description or inspect.getdoc(f) or "",
            fn=f,
            input_schema=dict(schema) if schema is not None else dict(EMPTY_SCHEMA),
            timeout_seconds=timeout_seconds,
        )

    return make(fn) if fn is not None else make


class Tools:
    """The registry: tools by name, in the order they were added."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for t in tools:
            self.add(t)

    def add(self, t: Tool) -> None:
        if not isinstance(t, Tool):
            raise ToolError(f"not a tool: {t!r} (make one with sonic_fsm.tools.tool)")
        have = self._tools.get(t.name)
        if have is not None and have is not t:
            raise ToolError(f"tool {t.name}: two different tools have this name")
        self._tools[t.name] = t

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def specs(self) -> list[dict[str, Any]]:
        """What ``promptStart`` declares."""
        return [t.spec() for t in self._tools.values()]

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools


def from_module(module_name: str) -> list[Tool]:
    """Every :class:`Tool` a module defines at its top level, in definition order."""
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # any error while importing user code is one line
        raise ToolError(
            f"setting tools.modules: cannot import {module_name!r} ({type(e).__name__}: {e})"
        ) from None
    found = [v for v in vars(module).values() if isinstance(v, Tool)]
    if not found:
        raise ToolError(f"setting tools.modules: {module_name!r} defines no tools")
    return found


def registry(settings: Settings, extra: Iterable[Tool] = ()) -> Tools:
    """The built-in tools named in ``tools.builtin``, the tools of ``tools.modules``, then
    ``extra``."""
    out = Tools()
    for name in settings.tools.builtin:
        make = BUILTIN.get(name)
        if make is None:
            raise ToolError(
                f"setting tools.builtin: unknown tool {name!r} (built in: {', '.join(BUILTIN)})"
            )
        out.add(make(settings))
    for module_name in settings.tools.modules:
        for t in from_module(module_name):
            out.add(t)
    for t in extra:
        out.add(t)
    return out


# ---- running a tool (for the runner: this is an adapter, it may block and read clocks) ----


async def call(tool_: Tool | None, name: str, content: str, timeout: float, pool: Executor) -> Any:
    """Run one tool use; the result to send back. Never raises (except cancellation): every
    failure is ``{"error": "..."}``."""
    if tool_ is None:
        return {"error": f"unknown tool {name}"}
    try:
        args = json.loads(content) if content.strip() else {}
    except ValueError as e:
        return {"error": f"input is not JSON: {e}"}
    if not isinstance(args, dict):
        return {"error": "input is not a JSON object"}
    if (why := tool_.input_error(args)) is not None:
        return {"error": why}
    limit = tool_.timeout_seconds or timeout
    try:
        if tool_.is_async:
            result = await asyncio.wait_for(tool_.fn(**args), limit)
        else:
            loop = asyncio.get_running_loop()
            job = loop.run_in_executor(pool, functools.partial(tool_.fn, **args))
            result = await asyncio.wait_for(job, limit)
    except TimeoutError:
        return {"error": f"{name} timed out after {limit:g} s"}
    except Exception as e:
        return {"error": f"{name} failed: {type(e).__name__}: {e}"}
    try:
        json.dumps(result)
    except (TypeError, ValueError) as e:
        return {"error": f"{name} returned something JSON cannot encode: {e}"}
    return result


# ---- the built-in tools ------------------------------------------------------------------


def date_and_time() -> dict[str, str]:
    """Get information about the current date and time."""
    now = datetime.datetime.now().astimezone()
    return {
        "date": now.strftime("%A, %d %B %Y"),
        "time": now.strftime("%H:%M"),
        "timezone": str(now.tzinfo),
    }


DATE_AND_TIME = Tool(
    name="getDateAndTimeTool", description=date_and_time.__doc__ or "", fn=date_and_time
)

TEST_SIGNAL_SCHEMA = {
    "type": "object",
    "properties": {"n": {"type": "integer", "description": "the tool question's number"}},
    "required": ["n"],
}


class SignalToolFailure(RuntimeError):
    """The test-signal tool failed, as asked."""


def signal_tool(
    seconds: float | Callable[[int], float] = 0.5,
    fail: Collection[int] = (),
    hang: Collection[int] = (),
    calls: list[int] | None = None,
) -> Tool:
    """The test signal's tool: ``{"value": 7 * n}`` after ``seconds`` (a number, or a function
    of ``n``), awaited. For tests it raises for the numbers in ``fail`` and never answers
    (so it times out) for those in ``hang``; ``calls`` collects every ``n`` it was run with."""

    async def test_signal(n: int) -> dict[str, int]:
        if calls is not None:
            calls.append(n)
        if n in hang:
            await asyncio.Event().wait()
        await asyncio.sleep(seconds(n) if callable(seconds) else seconds)
        if n in fail:
            raise SignalToolFailure(f"asked to fail for {n}")
        return {"value": 7 * n}

    return Tool(
        name=TEST_SIGNAL_TOOL,
        description="The test signal's tool question: returns 7 times n.",
        fn=test_signal,
        input_schema=TEST_SIGNAL_SCHEMA,
    )


TEST_SIGNAL_TOOL = "testSignalTool"

BUILTIN: dict[str, Callable[[Settings], Tool]] = {
    DATE_AND_TIME.name: lambda s: DATE_AND_TIME,
    TEST_SIGNAL_TOOL: lambda s: signal_tool(s.tools.test_tool_seconds),
}
"""The built-in tools by name; ``tools.builtin`` says which a conversation offers."""

__all__ = ["Tool", "ToolError", "Tools", "call", "registry", "signal_tool", "tool"]
