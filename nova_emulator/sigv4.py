"""SigV4 verification for the endpoint: the request's ``authorization`` and every frame's chain.

The server knows the one secret it handed out, so it can recompute what an honest client
signed. Two checks, both pure (``now`` is an argument):

* :func:`verify_request` rebuilds the canonical request from the HTTP/2 headers and checks
  the ``Signature=`` of the ``authorization`` header (it is also the seed of the chain);
* :class:`ChunkVerifier` checks each outer frame's ``:chunk-signature`` against the prior
  signature, so a frame that was altered, dropped, replayed or re-ordered breaks the chain.

Failures raise :class:`AuthError` carrying the service's error code and message.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import os
import re
import secrets
import string
import struct
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, quote

from .eventstream import encode_headers

ALGORITHM = "AWS4-HMAC-SHA256"
EVENT_STREAM_HASH = "STREAMING-AWS4-HMAC-SHA256-EVENTS"
TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
MAX_SKEW = datetime.timedelta(minutes=15)  # what the service tolerates between clocks

BAD_SIGNATURE = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method."
)


class AuthError(Exception):
    """A request or frame the service would refuse; ``code`` is its error type."""

    def __init__(self, code: str, message: str, status: int = 403) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True, kw_only=True)
class Credentials:
    access_key_id: str
    secret_access_key: str


def ensure_credentials(state_dir: Path) -> Credentials:
    """The endpoint's one key pair, minted on first start and kept (mode 0600) in ``state_dir``.

    Random rather than well known, so that an endpoint exposed with ``--allow-remote`` is
    not open to anyone who has read this source.
    """
    path = state_dir / "credentials.json"
    try:
        data = json.loads(path.read_text())
        return Credentials(
            access_key_id=str(data["access_key_id"]),
            secret_access_key=str(data["secret_access_key"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        pass
    alphabet = string.ascii_uppercase + string.digits
    creds = Credentials(
        access_key_id="AKIALOCAL" + "".join(secrets.choice(alphabet) for _ in range(11)),
        secret_access_key=secrets.token_urlsafe(30),
    )
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(
            {
                "access_key_id": creds.access_key_id,
                "secret_access_key": creds.secret_access_key,
            },
            f,
        )
    os.replace(tmp, path)
    return creds


def _hmac(key: bytes, msg: str | bytes) -> bytes:
    return hmac.new(key, msg.encode() if isinstance(msg, str) else msg, hashlib.sha256).digest()


def signing_key(secret: str, day: str, region: str, service: str) -> bytes:
    """The usual SigV4 derivation: secret -> day -> region -> service -> aws4_request."""
    k = _hmac(f"AWS4{secret}".encode(), day)
    k = _hmac(k, region)
    k = _hmac(k, service)
    return _hmac(k, "aws4_request")


_AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<cred>[^,\s]+),\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+),\s*Signature=(?P<sig>[0-9a-f]{64})$"
)


@dataclass(frozen=True, kw_only=True)
class RequestAuth:
    """What a verified request establishes: the scope and the seed of the chunk chain."""

    access_key_id: str
    region: str
    service: str
    signature: str  # hex; the first "prior signature" of the chunk chain


def canonical_request(
    method: str, path: str, headers: dict[str, str], signed: list[str], payload_hash: str
) -> str:
    """SigV4's canonical request; the verifier and the test signer share this one."""
    raw_path, _, query = path.partition("?")
    return "\n".join(
        [
            method.upper(),
            canonical_path(raw_path),
            canonical_query(query),
            "".join(f"{n}:{' '.join(headers[n].split())}\n" for n in signed),
            ";".join(signed),
            payload_hash,
        ]
    )


def canonical_path(raw_path: str) -> str:
    """The path as the SDK's signer canonicalises it: each byte of the wire path URI-encoded.

    The wire path already percent-encodes the model id (``%3A``); SigV4 encodes it once
    more (``%253A``), exactly as the signer does with ``uri_encode_path``.
    """
    return quote(raw_path, safe="/")


def canonical_query(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    return "&".join(
        f"{k}={v}" for k, v in sorted((quote(k, safe=""), quote(v, safe="")) for k, v in pairs)
    )


def verify_request(
    *,
    method: str,
    path: str,
    headers: dict[str, str],
    credentials: Credentials,
    now: datetime.datetime,
    expected_service: str = "bedrock",
) -> RequestAuth:
    """Check the ``authorization`` header of a request; ``path`` may carry ``?query``.

    ``headers`` are lower-case names with ``host`` set (from ``:authority`` for HTTP/2).
    """
    auth = headers.get("authorization", "")
    m = _AUTH_RE.match(auth.strip())
    if not m:
        raise AuthError(
            "MissingAuthenticationTokenException" if not auth else "IncompleteSignatureException",
            "Request is missing a valid SigV4 Authorization header.",
        )
    cred_parts = m["cred"].split("/")
    if len(cred_parts) != 5 or cred_parts[4] != "aws4_request":
        raise AuthError("IncompleteSignatureException", f"Malformed credential {m['cred']!r}.")
    access_key, day, region, service, _ = cred_parts
    if not hmac.compare_digest(access_key, credentials.access_key_id):
        raise AuthError(
            "UnrecognizedClientException", "The security token included in the request is invalid."
        )
    if service != expected_service:
        raise AuthError(
            "InvalidSignatureException",
            f"Credential should be scoped to service {expected_service!r}.",
        )
    amz_date = headers.get("x-amz-date", "")
    try:
        when = datetime.datetime.strptime(amz_date, TIMESTAMP_FORMAT).replace(tzinfo=datetime.UTC)
    except ValueError:
        raise AuthError(
            "IncompleteSignatureException", "Missing or malformed X-Amz-Date."
        ) from None
    if amz_date[:8] != day:
        raise AuthError("InvalidSignatureException", "Credential date does not match X-Amz-Date.")
    if abs(now - when) > MAX_SKEW:
        raise AuthError(
            "InvalidSignatureException",
            f"Signature expired or not yet valid: {amz_date} is more than 15 minutes from now.",
        )
    signed = m["signed"].split(";")
    if "host" not in signed:
        raise AuthError("IncompleteSignatureException", "SignedHeaders must include host.")
    missing = [name for name in signed if name not in headers]
    if missing:
        raise AuthError("IncompleteSignatureException", f"Signed header {missing[0]} is missing.")
    canonical = canonical_request(
        method, path, headers, signed, headers.get("x-amz-content-sha256", EVENT_STREAM_HASH)
    )
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        [ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = signing_key(credentials.secret_access_key, day, region, service)
    expected = _hmac(key, to_sign).hex()
    if not hmac.compare_digest(expected, m["sig"]):
        raise AuthError("InvalidSignatureException", BAD_SIGNATURE)
    return RequestAuth(access_key_id=access_key, region=region, service=service, signature=m["sig"])


# ---- the chunk-signature chain -------------------------------------------------------------

_VALUE_SIZES = {0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16}


def raw_headers(header_bytes: bytes) -> dict[str, bytes]:
    """Each header's exact encoded bytes (name, type and value), keyed by name.

    The chain hashes the ``:date`` header exactly as the client encoded it; re-encoding a
    decoded timestamp could round the milliseconds differently.
    """
    out: dict[str, bytes] = {}
    i = 0
    try:
        while i < len(header_bytes):
            start = i
            name_len = header_bytes[i]
            name = header_bytes[i + 1 : i + 1 + name_len].decode()
            i += 1 + name_len
            kind = header_bytes[i]
            i += 1
            if kind in (6, 7):
                (n,) = struct.unpack_from("!H", header_bytes, i)
                i += 2 + n
            else:
                i += _VALUE_SIZES[kind]
            if i > len(header_bytes):
                raise ValueError("header runs past the end")
            out[name] = header_bytes[start:i]
    except (IndexError, KeyError, ValueError, UnicodeDecodeError, struct.error):
        raise AuthError("InvalidSignatureException", "Malformed event headers.") from None
    return out


class ChunkVerifier:
    """Verifies the chain of ``:chunk-signature`` s, frame after frame, for one stream."""

    def __init__(self, *, auth: RequestAuth, credentials: Credentials) -> None:
        self._auth = auth
        self._secret = credentials.secret_access_key
        self._prior = auth.signature
        self._keys: dict[str, bytes] = {}
        self.finished = False  # the empty frame that closes the input has been verified

    def _key(self, day: str) -> bytes:
        if day not in self._keys:
            self._keys[day] = signing_key(self._secret, day, self._auth.region, self._auth.service)
        return self._keys[day]

    def verify(self, header_bytes: bytes, signature: object, payload: bytes) -> None:
        """Check one outer frame (its raw header bytes, decoded signature, payload)."""
        if self.finished:
            raise AuthError("InvalidSignatureException", "Event received after the final frame.")
        date_raw = raw_headers(header_bytes).get(":date")
        if date_raw is None or len(date_raw) != 15 or date_raw[6] != 8:
            raise AuthError("InvalidSignatureException", "Event is missing its :date header.")
        if not isinstance(signature, bytes) or len(signature) != 32:
            raise AuthError("InvalidSignatureException", "Event is missing its :chunk-signature.")
        (millis,) = struct.unpack("!q", date_raw[7:])
        when = datetime.datetime.fromtimestamp(millis // 1000, datetime.UTC)
        timestamp = when.strftime(TIMESTAMP_FORMAT)
        to_sign = chunk_string_to_sign(
            timestamp, self._auth.region, self._auth.service, self._prior, date_raw, payload
        )
        expected = _hmac(self._key(timestamp[:8]), to_sign)
        if not hmac.compare_digest(expected, signature):
            raise AuthError("InvalidSignatureException", BAD_SIGNATURE)
        self._prior = expected.hex()
        if not payload:
            self.finished = True


def chunk_string_to_sign(
    timestamp: str, region: str, service: str, prior: str, date_raw: bytes, payload: bytes
) -> str:
    """What one outer frame's signature signs: its date, the prior signature, its hashes."""
    scope = f"{timestamp[:8]}/{region}/{service}/aws4_request"
    return "\n".join(
        [
            "AWS4-HMAC-SHA256-PAYLOAD",
            timestamp,
            scope,
            prior,
            hashlib.sha256(date_raw).hexdigest(),
            hashlib.sha256(payload).hexdigest(),
        ]
    )


def sign_chunk(
    *,
    prior: str,
    payload: bytes,
    when: datetime.datetime,
    key_secret: str,
    region: str,
    service: str = "bedrock",
) -> tuple[bytes, bytes]:
    """Sign one outer frame as a client does; returns ``(raw :date header, signature)``.

    Used by light clients (tests, benchmarks) that speak the wire without the SDK.
    """
    date_raw = encode_headers({":date": when})
    timestamp = when.strftime(TIMESTAMP_FORMAT)
    to_sign = chunk_string_to_sign(timestamp, region, service, prior, date_raw, payload)
    key = signing_key(key_secret, timestamp[:8], region, service)  # same encoder as the frame
    return date_raw, _hmac(key, to_sign)


def sign_request(
    *,
    method: str,
    path: str,
    headers: dict[str, str],
    credentials: Credentials,
    region: str,
    when: datetime.datetime,
    service: str = "bedrock",
) -> dict[str, str]:
    """Headers with ``x-amz-date`` and ``authorization`` added, as a light client signs."""
    amz_date = when.strftime(TIMESTAMP_FORMAT)
    out = {k.lower(): v for k, v in headers.items()}
    out["x-amz-date"] = amz_date
    out.setdefault("x-amz-content-sha256", EVENT_STREAM_HASH)
    signed = sorted(out)
    canonical = canonical_request(method, path, out, signed, out["x-amz-content-sha256"])
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        [ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    sig = _hmac(signing_key(credentials.secret_access_key, amz_date[:8], region, service), to_sign)
    out["authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key_id}/{scope}, "
        f"SignedHeaders={';'.join(signed)}, Signature={sig.hex()}"
    )
    return out
