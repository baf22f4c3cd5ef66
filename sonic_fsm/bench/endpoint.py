"""The real AWS SDK against the emulator's local endpoint (HTTP/2, TLS, SigV4), for the
scenarios that measure over it."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nova_emulator.faults import FaultPlan, no_faults
from nova_emulator.server import Endpoint, EndpointThread
from nova_emulator.sigv4 import Credentials as EndpointCredentials
from nova_emulator.tls import ensure_certificates, server_context
from sonic_fsm import credentials
from sonic_fsm.backends.bedrock import BedrockBackend
from sonic_fsm.backends.local import LocalBackend
from sonic_fsm.settings import Settings, replace

KEY_ID, SECRET = "AKIDBENCHEXAMPLE", "bench-secret"


@contextmanager
def sdk_backend(
    settings: Settings, faults: FaultPlan = no_faults
) -> Iterator[tuple[Settings, BedrockBackend]]:
    """An endpoint on its own thread serving the emulator (with ``faults``), and the client's
    settings and :class:`BedrockBackend` pointed at it; both gone on exit."""
    with tempfile.TemporaryDirectory(prefix="sonic-bench-") as tmp:
        tls = ensure_certificates(Path(tmp))

        def make() -> Endpoint:
            return Endpoint(
                backend=LocalBackend(settings, faults),
                credentials=EndpointCredentials(access_key_id=KEY_ID, secret_access_key=SECRET),
                tls=server_context(tls),
            )

        with EndpointThread(make) as endpoint:
            client = replace(
                settings, **{"backend.kind": "bedrock", "backend.endpoint_uri": endpoint.url}
            )
            yield (
                client,
                BedrockBackend(
                    client, credentials=credentials.static(KEY_ID, SECRET), ca_file=str(tls.ca_cert)
                ),
            )
