"""``sonic-fsm emulator serve``: run the emulator as a local Bedrock endpoint.

Prints the endpoint as a shell comment, then the environment a client needs as
``export NAME=value`` lines, so the whole output can be pasted or ``eval``-ed:

    # sonic-fsm emulator endpoint: https://127.0.0.1:8443
    export AWS_ENDPOINT_URL_BEDROCK_RUNTIME=https://127.0.0.1:8443
    export SSL_CERT_FILE=/home/me/.local/state/sonic-fsm/emulator/ca.pem
    ...

Also runnable as ``python -m sonic_fsm.local_endpoint`` (same options).

The one way the bench and the tests start the endpoint on loopback: :func:`on_thread` (on
a thread of this process) or :func:`as_process` (``serve`` as a process of its own); each
gives what a client needs to reach it, and :meth:`Reachable.bedrock` a Bedrock backend
pointed at it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nova_emulator.server import Endpoint, EndpointThread, Stats
from nova_emulator.sigv4 import Credentials, ensure_credentials
from nova_emulator.tls import TlsFiles, ensure_certificates, server_context
from sonic_fsm import credentials
from sonic_fsm.core.backend import Backend
from sonic_fsm.settings import Settings, SettingsError, load, replace

if TYPE_CHECKING:
    from sonic_fsm.backends.bedrock import BedrockBackend

log = logging.getLogger(__name__)


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "sonic-fsm" / "emulator"


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``serve`` to the ``sonic-fsm emulator`` subcommands; it dispatches via ``func``."""
    p = subparsers.add_parser(
        "serve",
        help="run the emulator as a local Bedrock endpoint (HTTP/2, TLS, SigV4)",
        description=(
            "Serve Nova Sonic's bidirectional stream on a local HTTPS endpoint that the real "
            "AWS SDK talks to. Prints the environment a client needs as export lines."
        ),
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8443, help="port (0 picks a free one)")
    p.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help=f"where the CA, certificate and key pair live (default {default_state_dir()})",
    )
    p.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow binding a non-loopback address (anyone who can reach it can connect)",
    )
    p.add_argument("--settings", type=Path, default=None, help="settings TOML file")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one setting (repeatable)",
    )
    p.set_defaults(func=run)
    return p


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exports(url: str, tls: TlsFiles, creds: Credentials, region: str) -> list[str]:
    """The lines a shell evaluates to point the AWS SDK at this endpoint."""
    env = {
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": url,
        "SSL_CERT_FILE": str(tls.ca_cert),
        "AWS_ACCESS_KEY_ID": creds.access_key_id,
        "AWS_SECRET_ACCESS_KEY": creds.secret_access_key,
        "AWS_REGION": region,
    }
    return [f"# sonic-fsm emulator endpoint: {url}"] + [
        f"export {k}={shlex.quote(v)}" for k, v in env.items()
    ]


def _make_backend(settings: Settings) -> Any:
    from sonic_fsm.backends.local import LocalBackend  # the in-process emulator

    return LocalBackend(settings)


async def serve(
    *,
    host: str,
    port: int,
    state_dir: Path,
    settings: Settings,
    out: Callable[[str], None],
    make_backend: Callable[[Settings], Any] = _make_backend,
    stop: asyncio.Event | None = None,
) -> None:
    """Run until ``stop`` is set or SIGINT/SIGTERM arrives; then end every stream cleanly."""
    # A wildcard bind is reached by this machine's name too; a named host by that name.
    extra = (socket.gethostname(),) if host in ("0.0.0.0", "::", "") else (host,)
    tls = ensure_certificates(state_dir, extra_names=extra)
    creds = ensure_credentials(state_dir)
    backend = make_backend(settings)
    endpoint = Endpoint(
        backend=backend,
        credentials=creds,
        tls=server_context(tls),
        host=host,
        port=port,
        max_connections=settings.emulator.endpoint_max_connections,
        idle_timeout=settings.emulator.endpoint_idle_seconds,
    )
    await endpoint.start()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        for line in exports(endpoint.url, tls, creds, settings.backend.region):
            out(line)
        await stop.wait()
        log.info("endpoint: stopping")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await endpoint.aclose(goodbye=True)
        aclose = getattr(backend, "aclose", None)
        if aclose is not None:
            await aclose()


def run(args: argparse.Namespace) -> int:
    """The ``serve`` command: a one-line error for user mistakes, exit 0 on a clean stop."""
    if not is_loopback(args.host):
        if not args.allow_remote:
            print(
                f"sonic-fsm: --host {args.host} is not a loopback address; "
                "add --allow-remote to serve other machines",
                file=sys.stderr,
            )
            return 2
        print(
            f"sonic-fsm: warning: serving on {args.host}: anyone who can reach this address "
            "and holds the printed key can use the emulator",
            file=sys.stderr,
        )
    if not 0 <= args.port <= 65535:
        print(f"sonic-fsm: --port {args.port}: must be 0..65535", file=sys.stderr)
        return 2
    try:
        settings = load(args.settings, tuple(args.overrides))
    except SettingsError as e:
        print(f"sonic-fsm: {e}", file=sys.stderr)
        return 2

    def out(line: str) -> None:
        print(line, flush=True)

    try:
        asyncio.run(
            serve(
                host=args.host,
                port=args.port,
                state_dir=args.state_dir or default_state_dir(),
                settings=settings,
                out=out,
            )
        )
    except OSError as e:
        print(
            f"sonic-fsm: cannot serve on {args.host}:{args.port}: {e.strerror or e}",
            file=sys.stderr,
        )
        return 1
    return 0


# ---- the endpoint on loopback, for the bench and the tests -------------------------------

LOCAL_KEY = Credentials(
    access_key_id="AKIDLOCALENDPOINT", secret_access_key="local-endpoint-secret"
)
"""The key pair an endpoint started by :func:`on_thread` accepts unless given another."""

START_SECONDS = 30.0
"""How long a ``serve`` process (:func:`as_process`) gets to print its environment."""


@dataclass(kw_only=True)
class Reachable:
    """An endpoint on loopback: its URL, the CA that signed its certificate, the key it
    accepts."""

    url: str
    ca_file: Path
    key: Credentials

    def bedrock(
        self, settings: Settings, signer: credentials.Credentials | None = None
    ) -> tuple[Settings, BedrockBackend]:
        """``settings`` pointed at this endpoint (``backend.kind = "bedrock"``, its URL), and
        a :class:`BedrockBackend` with them that trusts its CA and signs with its key (or with
        ``signer``)."""
        from sonic_fsm.backends.bedrock import BedrockBackend

        client = replace(settings, **{"backend.kind": "bedrock", "backend.endpoint_uri": self.url})
        signer = signer or credentials.static(self.key.access_key_id, self.key.secret_access_key)
        return client, BedrockBackend(client, credentials=signer, ca_file=str(self.ca_file))


@dataclass(kw_only=True)
class ThreadEndpoint(Reachable):
    """An endpoint served on an event loop of its own, in a thread of this process."""

    endpoint: Endpoint
    thread: EndpointThread
    stopped: bool = False

    @property
    def port(self) -> int:
        return self.endpoint.port

    def stats(self) -> Stats:
        """The endpoint's counters, read on its own loop."""
        return self.thread.call(lambda: self.endpoint.stats)  # type: ignore[no-any-return]

    def stop(self) -> None:
        """GOAWAY, every stream ended, sockets closed; again is nothing."""
        if not self.stopped:
            self.stopped = True
            self.thread.__exit__(None, None, None)


@contextlib.contextmanager
def on_thread(
    make_backend: Callable[[], Backend],
    tls: TlsFiles | None = None,
    *,
    key: Credentials = LOCAL_KEY,
    **options: Any,
) -> Iterator[ThreadEndpoint]:
    """The emulator's endpoint on 127.0.0.1 (a free port) on a thread of its own, serving
    the backend ``make_backend`` builds there, with ``tls`` (a temporary CA and certificate
    when none is given) and ``key``; ``options`` are the :class:`Endpoint`'s others
    (``max_connections``, ``idle_timeout``). Stopped on exit. Bounded: 15 s to start, 10 s
    to stop."""
    with contextlib.ExitStack() as stack:
        if tls is None:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="sonic-endpoint-"))
            tls = ensure_certificates(Path(tmp))
        context = server_context(tls)
        thread = EndpointThread(
            lambda: Endpoint(backend=make_backend(), credentials=key, tls=context, **options)
        )
        try:
            endpoint = thread.__enter__()
        except BaseException:
            thread.__exit__(None, None, None)
            raise
        served = ThreadEndpoint(
            url=endpoint.url, ca_file=tls.ca_cert, key=key, endpoint=endpoint, thread=thread
        )
        try:
            yield served
        finally:
            served.stop()


@dataclass(kw_only=True)
class ProcessEndpoint(Reachable):
    """``sonic-fsm emulator serve`` as a process of its own, and the environment it printed."""

    proc: subprocess.Popen[str]
    env: dict[str, str]
    region: str

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def cpu_seconds(self) -> float:
        """User + system CPU of the server process so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def as_process(
    overrides: Sequence[str] = (), settings_file: Path | None = None
) -> Iterator[ProcessEndpoint]:
    """``sonic-fsm emulator serve`` on a free loopback port as a process of its own (so its
    CPU is its own), its state in a temporary folder, its settings the defaults,
    ``settings_file`` and ``overrides``. Stopped on exit (SIGTERM; killed after 10 s).
    Bounded: it must print its environment within :data:`START_SECONDS`."""
    with tempfile.TemporaryDirectory(prefix="sonic-serve-") as tmp:
        cmd = [sys.executable, "-m", "sonic_fsm.local_endpoint", "serve", "--port", "0"]
        cmd += ["--state-dir", tmp]
        if settings_file is not None:
            cmd += ["--settings", str(settings_file)]
        for o in overrides:
            cmd += ["--set", o]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        try:
            env = _printed_environment(proc, START_SECONDS)
            yield ProcessEndpoint(
                url=env["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"],
                ca_file=Path(env["SSL_CERT_FILE"]),
                key=Credentials(
                    access_key_id=env["AWS_ACCESS_KEY_ID"],
                    secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                ),
                region=env["AWS_REGION"],
                proc=proc,
                env=env,
            )
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def _printed_environment(proc: subprocess.Popen[str], seconds: float) -> dict[str, str]:
    """The ``export`` lines ``serve`` prints first, read for at most ``seconds``."""
    assert proc.stdout is not None
    out = proc.stdout
    env: dict[str, str] = {}

    def read() -> None:
        for _ in range(6):  # the URL comment, then five exports
            line = out.readline()
            if line.startswith("export "):
                name, value = line.removeprefix("export ").strip().split("=", 1)
                env[name] = shlex.split(value)[0]

    reader = threading.Thread(target=read, name="sonic-serve-env", daemon=True)
    reader.start()
    reader.join(seconds)
    got = dict(env)
    if reader.is_alive() or len(got) != 5:
        raise RuntimeError(
            f"emulator serve did not print its environment within {seconds:g} s "
            f"(exit {proc.poll()})"
        )
    return got


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sonic-fsm emulator")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    sys.exit(main())
