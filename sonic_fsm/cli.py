"""The ``sonic-fsm`` command: the dashboard, headless runs, the diagram, the emulator, tools."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from sonic_fsm import settings as st

DEFAULT_SPEAKER = "default"

# Exit codes (the README lists them).
EXIT_OK = 0  # the conversation ended as asked: its input ended, or it was stopped
EXIT_SCORE = 1  # score found an utterance lost or answered twice (also: a crash)
EXIT_USAGE = 2  # bad input: a setting, a file, a device, the command line; one line
EXIT_RETRIES = 3  # the service kept failing and the retries ran out
EXIT_REFUSED = 4  # the service refused for good: credentials, access, the model, a request
# Interrupted by SIGINT or SIGTERM: 128 + the signal (130, 143), after writing everything.


def _settings_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--settings", metavar="PATH", help="a settings TOML file (see settings.toml)")
    p.add_argument(
        "--set",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="override one setting by its dotted key or unambiguous name (repeatable)",
    )
    p.add_argument("--backend", choices=["emulator", "bedrock"], help="backend.kind")


def _load(args: argparse.Namespace, extra: list[str] | tuple[str, ...] = ()) -> st.Settings:
    overrides = [*extra, *args.set]
    if args.backend:
        overrides.append(f"backend.kind={args.backend}")
    return st.load(args.settings, overrides)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sonic-fsm",
        description="Keep a Nova Sonic conversation alive past the session limit.",
    )
    sub = p.add_subparsers(dest="command")

    tui = sub.add_parser("tui", help="the live dashboard (the default command)")
    _settings_args(tui)
    tui.add_argument("--mic", help="WAV file, talker, null, default or a device")
    tui.add_argument("--script", metavar="FILE", help="the talker's lines, one per line")
    tui.add_argument("--speaker", help="WAV file, null, default or a device")
    tui.set_defaults(func=cmd_tui)

    run = sub.add_parser("run", help="run a conversation (headless with --headless)")
    _settings_args(run)
    run.add_argument("--headless", action="store_true", help="no dashboard: log lines only")
    run.add_argument("--mic", help="WAV file, talker, null, default or a device")
    run.add_argument("--script", metavar="FILE", help="the talker's lines, one per line")
    run.add_argument("--speaker", help="WAV file (the timeline heard), null, default or a device")
    run.add_argument("--fast", action="store_true", help="virtual time: as fast as possible")
    run.add_argument("--metrics-json", metavar="PATH", help="write the run's metrics as JSON")
    run.add_argument(
        "--score", action="store_true", help="score test-signal input against the output WAV"
    )
    run.set_defaults(func=cmd_run)

    diagram = sub.add_parser("diagram", help="write the state diagram generated from the table")
    diagram.add_argument("--output", metavar="PATH", help="file to write (default: stdout)")
    diagram.set_defaults(func=cmd_diagram)

    signal = sub.add_parser("signal", help="write a WAV of test-signal utterances")
    signal.add_argument("--output", required=True, metavar="PATH")
    signal.add_argument("--count", type=int, default=10)
    signal.add_argument("--spacing", type=float, default=15.0, help="seconds between utterances")
    signal.add_argument("--first", type=float, default=1.0, help="time of the first utterance")
    signal.add_argument(
        "--pause-inside",
        metavar="MIN-MAX",
        default="0-0",
        help="pause between two keys of one utterance, drawn from MIN-MAX s (at most 1.2)",
    )
    signal.add_argument(
        "--follow-ups",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="share of utterances (0 to 1) followed quickly by one more",
    )
    signal.add_argument(
        "--follow-up-after",
        metavar="MIN-MAX",
        default="0.2-3",
        help="a follow-up comes MIN-MAX s after the answer began (default 0.2-3)",
    )
    signal.add_argument(
        "--answer-begins",
        type=float,
        default=None,
        metavar="S",
        help="where an answer begins after its utterance, for follow-ups (default 1.9: the "
        "emulator at MEDIUM)",
    )
    signal.add_argument("--seed", type=int, default=0, help="seed of the random draws")
    signal.set_defaults(func=cmd_signal)

    score = sub.add_parser("score", help="count answers: test-signal input vs output timeline")
    score.add_argument("--mic", required=True, metavar="IN.wav")
    score.add_argument("--speaker", required=True, metavar="OUT.wav")
    score.add_argument(
        "--log",
        metavar="RUN.log",
        help="the run's log ([TRANSITION] lines): reply delays during hand-offs apart",
    )
    score.set_defaults(func=cmd_score)

    bench = sub.add_parser("bench", help="measure: hand-offs, losses, speed, memory")
    _settings_args(bench)
    bench.add_argument("--minutes", type=float, default=30.0, help="conversation length")
    bench.add_argument(
        "--hours", type=float, default=8.0, help="memory: the conversation's length in hours"
    )
    bench.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    bench.add_argument(
        "--realtime-minutes", type=float, default=1.5, help="real-time run length (0: skip)"
    )
    bench.add_argument("--sdk", action="store_true", help="also run over the real AWS SDK")
    bench.add_argument(
        "--scenario",
        choices=["all", "hand-off", "turn-taking", "tools", "memory", *PARTS],
        default="all",
        help="hand-off: the long, real-time and SDK runs; turn-taking: pauses, endpointing "
        "levels, follow-ups and barge-ins near hand-offs; tools: tool questions across "
        "hand-offs (for --minutes, virtual time); memory (not in all): an --hours "
        "conversation spooled to disk, its peak RSS and growth per simulated hour. "
        "One part alone (not in all): audio: the audio adapters on a fake device; "
        "emulator: the emulated model for --minutes; session-open: Bedrock sessions opened "
        "and closed over the SDK (--opens); dashboard: the dashboard's cost (--seconds); "
        "load: the emulator's endpoint under --streams one-turn sessions at once",
    )
    bench.add_argument(
        "--opens", type=int, default=30, help="session-open: sessions opened one by one"
    )
    bench.add_argument(
        "--seconds", type=float, default=20.0, help="dashboard: real time for each run"
    )
    bench.add_argument(
        "--burst", action="store_true", help="dashboard: flood the engine with events meanwhile"
    )
    bench.add_argument(
        "--turn-minutes", type=float, default=10.0, help="turn-taking: minutes per conversation"
    )
    bench.add_argument(
        "--seeds", type=int, default=2, help="turn-taking: conversations per endpointing level"
    )
    bench.add_argument(
        "--streams", type=int, default=50, help="load: sessions at once (default 50)"
    )
    bench.add_argument(
        "--per-connection",
        type=int,
        default=10,
        help="load: streams on each HTTP/2 connection of the wire client (default 10)",
    )
    bench.add_argument(
        "--client",
        choices=["wire", "sdk"],
        default="wire",
        help="load: the light wire client, or the real AWS SDK (Bedrock backend)",
    )
    bench.add_argument(
        "--paced", action="store_true", help="load: send the audio as a microphone does"
    )
    bench.add_argument(
        "--stagger",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="load: spread the sessions' starts over this (default 0: all at once)",
    )
    bench.add_argument(
        "--concurrent",
        type=_counts,
        metavar="N[,N...]",
        help="instead: N conversations at once, real time, over the SDK; several N: one run "
        "each and the largest N that stays clean (see the README)",
    )
    bench.add_argument(
        "--concurrent-seconds", type=float, default=75.0, help="length of each (default 75)"
    )
    bench.add_argument(
        "--concurrent-stagger",
        type=float,
        default=None,
        metavar="S",
        help="spread the conversations' starts over S seconds (default 5: they all speak, "
        "are answered and hand off within the same 5 s)",
    )
    bench.set_defaults(func=cmd_bench)

    serve = sub.add_parser("serve", help="the voice server: a browser page, one conversation each")
    _settings_args(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="worker processes (uvicorn's own), each with its own conversations (default 1)",
    )
    serve.set_defaults(func=cmd_serve)

    emulator = sub.add_parser("emulator", help="the Nova Sonic emulator")
    emulator_sub = emulator.add_subparsers(dest="emulator_command", required=True)
    from sonic_fsm.local_endpoint import register

    register(emulator_sub)

    from sonic_fsm.audio.devices import register_devices

    register_devices(sub)
    return p


def _mic(args: argparse.Namespace) -> str | None:
    """``--mic talker --script FILE`` becomes the talker with that script."""
    if args.script and args.mic not in (None, "talker"):
        raise UsageError("--script goes with --mic talker")
    return f"talker:{args.script}" if args.script else args.mic


def cmd_tui(args: argparse.Namespace) -> int:
    from tui.app import DEMO_OVERRIDES, main  # the dashboard is an optional layer on top

    extra = DEMO_OVERRIDES if not args.settings else ()
    return main(_load(args, extra), mic=_mic(args), speaker=args.speaker)


def check_output(path: str, what: str) -> None:
    """A file we will write at the end must be writable now, before any work is done."""
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if p.is_dir():
        raise UsageError(f"{what} {p}: is a folder; name a file to write")
    if not parent.is_dir():
        raise UsageError(f"{what} {p}: its folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise UsageError(f"{what} {p}: not allowed to write it")


async def run_until_signalled(conv: Any, caught: list[int]) -> Any:
    """Run ``conv``; SIGINT and SIGTERM end it properly (sessions closed, speaker WAV and
    recordings written, the final line printed). A second signal acts at once."""
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        caught.append(signum)
        loop.remove_signal_handler(signum)
        conv.request_stop(f"interrupted ({signal.Signals(signum).name})")

    handled = (signal.SIGINT, signal.SIGTERM)
    for signum in handled:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        return await conv.run()
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)


def exit_code(result: Any, caught: list[int]) -> int:
    """The exit status of a finished run: see the EXIT_* codes."""
    from sonic_fsm import api

    if result.ended_because == api.SIGNAL and caught:
        return 128 + caught[0]
    return {api.RETRIES_EXHAUSTED: EXIT_RETRIES, api.REFUSED: EXIT_REFUSED}.get(
        result.ended_because, EXIT_OK
    )


def _log_line(line: str) -> None:
    print(line, flush=True)  # a killed run keeps its log up to its last line


def cmd_run(args: argparse.Namespace) -> int:
    if not args.headless:
        return cmd_tui(args)
    from sonic_fsm import clock
    from sonic_fsm.runner import dumps
    from sonic_fsm.wiring import build_conversation

    settings = _load(args)
    if args.fast and settings.backend.kind == "bedrock":
        raise UsageError("--fast runs in virtual time, which a real service cannot follow")
    mic = _mic(args)
    if not mic:
        raise UsageError("--headless needs --mic (a WAV file, talker or null)")
    speaker = args.speaker or "null"
    if args.score and (not speaker.lower().endswith(".wav") or not mic.lower().endswith(".wav")):
        raise UsageError("--score needs --mic and --speaker WAV files")
    if speaker.lower().endswith(".wav"):
        check_output(speaker, "--speaker")
    if args.metrics_json:
        check_output(args.metrics_json, "--metrics-json")
    log_lines: list[str] = []

    def log(line: str) -> None:
        if args.score and "[TRANSITION]" in line:
            log_lines.append(line)  # the oracle reads the hand-off windows from these
        _log_line(line)

    conv = build_conversation(settings, mic, speaker, log=log, talker_repeats=False)
    caught: list[int] = []
    result = clock.run(run_until_signalled(conv, caught), virtual=args.fast)
    if args.score:
        from sonic_fsm.audio.wav import iter_wav
        from sonic_fsm.bench import oracle

        s = oracle.score_stream(
            iter_wav(mic),
            iter_wav(speaker, settings.audio.output_sample_rate),
            oracle.handoff_windows(log_lines),
        )
        result.metrics["oracle"] = s.as_dict()
    text = dumps(result)
    print(text)
    if result.error:
        print(f"sonic-fsm: the conversation stopped: {result.error}", file=sys.stderr)
    if args.metrics_json:
        Path(args.metrics_json).write_text(text + "\n")
    return exit_code(result, caught)


def cmd_diagram(args: argparse.Namespace) -> int:
    from sonic_fsm.diagram import render

    text = render()
    if args.output:
        check_output(args.output, "diagram --output")
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_signal(args: argparse.Namespace) -> int:
    from sonic_fsm import testsignal
    from sonic_fsm.audio.wav import write_wav
    from sonic_fsm.bench import script

    if args.count < 1 or args.spacing <= 0:
        raise UsageError("signal: --count must be at least 1 and --spacing positive")
    check_output(args.output, "signal --output")
    if not 0 <= args.follow_ups <= 1:
        raise UsageError(f"signal: --follow-ups is a share from 0 to 1 (got {args.follow_ups:g})")
    inside = _span("--pause-inside", args.pause_inside, testsignal.MAX_PAUSE_INSIDE_S)
    after = _span("--follow-up-after", args.follow_up_after)
    begins = script.ANSWER_BEGINS_S if args.answer_begins is None else args.answer_begins
    lines = script.conversation(
        args.count, args.spacing, args.first, inside, args.follow_ups, after, begins, args.seed
    )
    try:
        pcm = script.render(lines)
    except ValueError as e:
        raise UsageError(f"signal: {e}; use a larger --spacing") from None
    write_wav(args.output, pcm, script.RATE)
    print(f"{args.output}: {len(lines)} utterances, {len(pcm) / 2 / script.RATE:.1f} s")
    return 0


def _span(option: str, text: str, most: float | None = None) -> tuple[float, float]:
    """``MIN-MAX`` seconds (or one number): checked, as a pair."""
    low, _, high = text.partition("-")
    try:
        span = (float(low), float(high or low))
    except ValueError:
        raise UsageError(
            f"signal: {option} takes MIN-MAX seconds, e.g. 0.2-1.2 (got {text!r})"
        ) from None
    if not 0 <= span[0] <= span[1] or (most is not None and span[1] > most):
        limit = f" up to {most:g}" if most is not None else ""
        raise UsageError(f"signal: {option} must be 0 <= MIN <= MAX{limit} (got {text!r})")
    return span


def cmd_score(args: argparse.Namespace) -> int:
    from sonic_fsm.audio.wav import iter_wav
    from sonic_fsm.bench import oracle

    windows: list[tuple[float, float]] = []
    if args.log:
        try:
            windows = oracle.handoff_windows(Path(args.log).read_text().splitlines())
        except OSError as e:
            raise UsageError(f"score: --log {args.log}: {e.strerror}") from None
    s = oracle.score_stream(iter_wav(args.mic), iter_wav(args.speaker, oracle.OUTPUT_RATE), windows)
    print(json.dumps(s.as_dict(), indent=2))
    return EXIT_OK if not s.lost and not s.answered_twice else EXIT_SCORE


def cmd_bench(args: argparse.Namespace) -> int:
    if args.concurrent is not None:
        return _bench_concurrent(args)
    if args.scenario in PARTS:
        figures = {args.scenario.replace("-", "_"): _bench_part(args)}
        _write_figures(figures, args.json)
        return 0
    from sonic_fsm.bench.run import main as bench_main

    return bench_main(
        _load(args),
        minutes=args.minutes,
        json_path=args.json,
        realtime_minutes=args.realtime_minutes,
        sdk=args.sdk,
        scenario=args.scenario,
        turn_minutes=args.turn_minutes,
        seeds=args.seeds,
        hours=args.hours,
    )


def cmd_serve(args: argparse.Namespace) -> int:
    from sonic_fsm.web.server import serve

    if not 0 <= args.port <= 65535:
        raise UsageError(f"serve: --port must be 0 to 65535, not {args.port}")
    if args.workers < 1:
        raise UsageError(f"serve: --workers must be at least 1, not {args.workers}")
    serve(_load(args), host=args.host, port=args.port, workers=args.workers)
    return 0


def _counts(text: str) -> list[int]:
    """``--concurrent``: one count or several, comma-separated."""
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected N or N,N,... (whole numbers), not {text!r}"
        ) from None


def _bench_concurrent(args: argparse.Namespace) -> int:
    from sonic_fsm.bench import concurrent

    if min(args.concurrent) < 1 or args.concurrent_seconds < 20:
        raise UsageError("bench: --concurrent must be at least 1, --concurrent-seconds 20 or more")
    stagger = (
        concurrent.STAGGER_SECONDS if args.concurrent_stagger is None else args.concurrent_stagger
    )
    if not 0 <= stagger <= args.concurrent_seconds / 2:
        raise UsageError(
            "bench: --concurrent-stagger must be from 0 to half of --concurrent-seconds"
        )
    settings = _load(args)
    if len(args.concurrent) > 1:
        figures = concurrent.sweep(settings, args.concurrent, args.concurrent_seconds, stagger)
        _write_figures(figures, args.json)
        return 0 if figures["largest_clean_n"] is not None else 1
    figures = concurrent.run(settings, args.concurrent[0], args.concurrent_seconds, stagger)
    figures["line"] = concurrent.verdict([figures])["line"]
    _write_figures(figures, args.json)
    return 0 if figures["clean"] == figures["conversations"] else 1


PARTS = ("audio", "emulator", "session-open", "dashboard", "load")
"""The bench scenarios that measure one part alone, each its own module in sonic_fsm/bench."""


def _bench_part(args: argparse.Namespace) -> dict[str, Any]:
    if args.scenario == "audio":
        from sonic_fsm.bench import audio

        return audio.run()
    if args.scenario == "emulator":
        from sonic_fsm.bench import model_speed

        if not 0 < args.minutes <= model_speed.MAX_MINUTES:
            raise UsageError(
                f"bench: --minutes must be above 0 and at most {model_speed.MAX_MINUTES:g}"
            )
        return model_speed.run(_load(args), args.minutes)
    if args.scenario == "session-open":
        if args.opens < 1:
            raise UsageError("bench: --opens must be at least 1")
        from sonic_fsm.bench import session_open

        return session_open.run(_load(args), args.opens)
    if args.scenario == "load":
        if args.streams < 1 or args.per_connection < 1:
            raise UsageError("bench: --streams and --per-connection must be at least 1")
        if args.stagger < 0:
            raise UsageError("bench: --stagger must be 0 or more")
        from sonic_fsm.bench import load

        return load.run(
            args.settings,
            [*load.OVERRIDES, *args.set],
            streams=args.streams,
            per_connection=args.per_connection,
            client=args.client,
            realtime=args.paced,
            stagger=args.stagger,
        )
    if args.seconds <= 0:
        raise UsageError("bench: --seconds must be above 0")
    from sonic_fsm.bench import dashboard

    return dashboard.run(_load(args, dashboard.DEMO_OVERRIDES), args.seconds, args.burst)


def _write_figures(figures: dict[str, Any], path: str | None) -> None:
    text = json.dumps(figures, indent=2)
    print(text)
    if path:
        Path(path).write_text(text + "\n")


class UsageError(ValueError):
    """A command line that cannot work; one line."""


def _user_errors() -> tuple[type[BaseException], ...]:
    from sonic_fsm.audio.base import AudioDeviceError
    from sonic_fsm.audio.wav import WavFormatError

    errors: list[type[BaseException]] = [
        st.SettingsError,
        UsageError,
        WavFormatError,
        AudioDeviceError,
    ]
    for module, name in (
        ("sonic_fsm.credentials", "CredentialsError"),
        ("sonic_fsm.audio.talker", "TalkerError"),
        ("sonic_fsm.recording", "RecordingError"),
    ):
        with contextlib.suppress(ImportError, AttributeError):
            errors.append(getattr(__import__(module, fromlist=[name]), name))
    return tuple(errors)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    func: Any = getattr(args, "func", None)
    if func is None:  # plain `sonic-fsm`: the dashboard
        args = _parser().parse_args(["tui", *(argv or sys.argv[1:])])
        func = args.func
    try:
        return int(func(args) or 0)
    except _user_errors() as e:
        print(f"sonic-fsm: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
