"""``sonic-fsm emulator serve``: run the emulator as a local Bedrock endpoint.

Prints the endpoint as a shell comment, then the environment a client needs as
``export NAME=value`` lines, so the whole output can be pasted or ``eval``-ed:

    # sonic-fsm emulator endpoint: https://127.0.0.1:8443
    export AWS_ENDPOINT_URL_BEDROCK_RUNTIME=https://127.0.0.1:8443
    export SSL_CERT_FILE=/home/me/.local/state/sonic-fsm/emulator/ca.pem
    ...

Also runnable as ``python -m sonic_fsm.local_endpoint`` (same options).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import shlex
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nova_emulator.server import Endpoint
from nova_emulator.sigv4 import Credentials, ensure_credentials
from nova_emulator.tls import TlsFiles, ensure_certificates, server_context
from sonic_fsm.settings import Settings, SettingsError, load

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sonic-fsm emulator")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    sys.exit(main())
