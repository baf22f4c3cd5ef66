"""AWS credentials for the Bedrock backend: found once at start, refreshed before they expire.

The standard chain, in the SDK's order: environment variables, then the shared config
and credentials files (``AWS_PROFILE`` or ``backend.profile``, else ``default``: static
keys, session keys, ``credential_process``), then a container role (ECS/EKS, when its
environment variables say so), then the EC2 instance role (IMDS). The SDK 0.12 chain
stops after the files; the container and instance resolvers it still ships are added
here so a role works without extra packages.

Why this module exists rather than letting the SDK resolve lazily: a user with no
credentials must be stopped at start with one line that says what is missing and how to
provide it (not a traceback from the first request), and the engine must know when
temporary credentials expire, because an expired credential breaks a live HTTP/2 stream:
a session has to be handed off before then, not only before the 8-minute limit.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from smithy_aws_core.config import load_config
from smithy_aws_core.identity import AWSCredentialsIdentity
from smithy_aws_core.identity.chain import IdentityChain
from smithy_core.exceptions import SmithyError

from sonic_fsm.settings import Backend

log = logging.getLogger(__name__)

NO_CREDENTIALS = (
    "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
    "or AWS_PROFILE / backend.profile, or run on a role"
)
IMDS_TIMEOUT_SECONDS = 1.0
CONTAINER_TIMEOUT_SECONDS = 3.0
_ROLE_KEYS = ("role_arn", "sso_session", "sso_start_url", "web_identity_token_file")


class CredentialsError(Exception):
    """No usable credentials: the message is one line naming what is missing and the fix."""


@dataclass(frozen=True, kw_only=True)
class Credentials:
    """What was found: where from, whose key (for a log line), and when it expires."""

    source: str
    access_key_id: str
    expires_at: float | None
    """Epoch seconds at which the credentials stop working, or ``None`` if they do not."""
    resolver: RefreshingResolver

    @property
    def key_hint(self) -> str:
        """The access key id with its middle hidden, safe to print."""
        k = self.access_key_id
        return f"{k[:4]}…{k[-4:]}" if len(k) > 8 else "…"


def _epoch(value: datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


class RefreshingResolver:
    """An SDK identity resolver that never hands out credentials about to expire.

    The SDK's resolvers cache credentials until the moment they expire. A session that
    opens a minute before that would die a minute later, so: when the cached identity
    expires within ``margin_seconds`` (the session limit), invalidate and fetch anew.
    ``last_expires_at`` is the expiry of the identity most recently handed out, which
    is the one that signed the newest session.
    """

    def __init__(
        self,
        inner: Any,
        *,
        margin_seconds: float,
        now: Callable[[], float] = time.time,
        expires_at_hint: float | None = None,
    ) -> None:
        self._inner = inner
        self._margin = margin_seconds
        self._now = now
        self._hint = expires_at_hint
        self.last_expires_at: float | None = None

    async def get_identity(self, *, properties: Mapping[str, Any]) -> AWSCredentialsIdentity:
        identity: AWSCredentialsIdentity = await self._inner.get_identity(properties=properties)
        expires = _epoch(identity.expiration) or self._hint
        if expires is not None and expires - self._now() < self._margin:
            await self._inner.invalidate()
            identity = await self._inner.get_identity(properties=properties)
            expires = _epoch(identity.expiration) or self._hint
        self.last_expires_at = expires
        return identity

    async def invalidate(self) -> None:
        await self._inner.invalidate()


def _env_expiry(env: Mapping[str, str]) -> float | None:
    """``AWS_CREDENTIAL_EXPIRATION`` (ISO 8601), which botocore also honours for env keys."""
    raw = env.get("AWS_CREDENTIAL_EXPIRATION", "").strip()
    if not raw:
        return None
    try:
        return _epoch(datetime.fromisoformat(raw.replace("Z", "+00:00")))
    except ValueError:
        raise CredentialsError(
            f"AWS_CREDENTIAL_EXPIRATION is not an ISO 8601 time: {raw!r}"
        ) from None


async def _profile_problem(profile: str, explicit: bool) -> str | None:
    """A one-line explanation when the named profile cannot give keys, else ``None``."""
    config = await load_config()
    where = "~/.aws/config or ~/.aws/credentials (or AWS_CONFIG_FILE/AWS_SHARED_CREDENTIALS_FILE)"
    setting = "backend.profile" if explicit else "AWS_PROFILE"
    if profile not in config.profiles:
        return (
            f"AWS profile {profile!r} (from {setting}) not found in {where}: "
            f"create it with `aws configure --profile {profile}` or change {setting}"
        )
    if config.get(profile, "aws_access_key_id") or config.get(profile, "credential_process"):
        return None
    kinds = [k for k in _ROLE_KEYS if config.get(profile, k)]
    if kinds:
        return (
            f"AWS profile {profile!r} uses {kinds[0]}, which this SDK version cannot resolve: "
            f"run `aws configure export-credentials --profile {profile} --format env` "
            "and export the result, or use a profile with keys or credential_process"
        )
    return (
        f"AWS profile {profile!r} has no aws_access_key_id/aws_secret_access_key "
        f"or credential_process: add them with `aws configure --profile {profile}`"
    )


def _role_resolvers(env: Mapping[str, str]) -> list[tuple[str, Callable[[Any], Any], float]]:
    """Container and instance-role resolvers that apply here, with their time limits."""
    from smithy_aws_core.identity.container import (
        ContainerCredentialsConfig,
        ContainerCredentialsResolver,
    )
    from smithy_aws_core.identity.imds import IMDSCredentialsResolver

    out: list[tuple[str, Callable[[Any], Any], float]] = []
    if env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") or env.get(
        "AWS_CONTAINER_CREDENTIALS_FULL_URI"
    ):
        out.append(
            (
                "container role",
                lambda http: ContainerCredentialsResolver(
                    http, ContainerCredentialsConfig(timeout=2, retries=1)
                ),
                CONTAINER_TIMEOUT_SECONDS,
            )
        )
    if env.get("AWS_EC2_METADATA_DISABLED", "").lower() != "true":
        out.append(("instance role", IMDSCredentialsResolver, IMDS_TIMEOUT_SECONDS))
    return out


async def _try_role(
    name: str, make: Callable[[Any], Any], timeout: float
) -> tuple[Any, AWSCredentialsIdentity] | None:
    import asyncio

    from smithy_http.aio.crt import AWSCRTHTTPClient

    http = AWSCRTHTTPClient()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        resolver = make(http)
    try:
        identity = await asyncio.wait_for(resolver.get_identity(properties={}), timeout)
    except Exception as e:  # a probe: any failure (refused, timeout, garbage, CRT) is a miss
        log.debug("%s: no credentials (%s: %s)", name, type(e).__name__, e)
        await http.close()
        return None
    return resolver, identity  # the resolver keeps ``http`` to refresh the role later


async def resolve(
    backend: Backend,
    *,
    margin_seconds: float = 480.0,
    now: Callable[[], float] = time.time,
) -> Credentials:
    """Find credentials the standard way, or raise :class:`CredentialsError` (one line).

    ``margin_seconds`` is how long a session must be able to live on the credentials it
    opens with (the session limit); ``now`` is the wall clock (credentials expire in
    wall time).
    """
    env = os.environ
    profile = backend.profile or None
    if env.get("AWS_ACCESS_KEY_ID") and not env.get("AWS_SECRET_ACCESS_KEY") and not profile:
        raise CredentialsError(
            "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not: set both, "
            "or unset AWS_ACCESS_KEY_ID to use a profile or role"
        )
    named = profile or env.get("AWS_PROFILE")
    if named:
        problem = await _profile_problem(named, explicit=profile is not None)
        if problem:
            raise CredentialsError(problem)

    resolver: Any = None
    identity: AWSCredentialsIdentity | None = None
    source = ""
    hint: float | None = None
    try:
        chain = await IdentityChain.create(AWSCredentialsIdentity, profile_name=profile)
        identity = await chain.get_identity(properties={})
        resolver = chain
        from_env = profile is None and bool(env.get("AWS_ACCESS_KEY_ID"))
        source = "environment" if from_env else f"profile {named or 'default'!r}"
        hint = _env_expiry(env) if from_env else None
    except CredentialsError:
        raise
    except SmithyError as e:
        if named:  # a profile that exists and still fails: say why, in one line
            detail = " ".join(str(e).split())
            raise CredentialsError(f"AWS profile {named!r} gave no credentials: {detail}") from None

    if identity is None:
        for name, make, timeout in _role_resolvers(env):
            found = await _try_role(name, make, timeout)
            if found is not None:
                resolver, identity = found
                source = name
                break
    if identity is None:
        raise CredentialsError(NO_CREDENTIALS)

    expires_at = _epoch(identity.expiration) or hint
    if expires_at is not None and expires_at <= now():
        when = datetime.fromtimestamp(expires_at, UTC).isoformat(timespec="seconds")
        raise CredentialsError(
            f"AWS credentials from {source} expired at {when}: refresh them "
            "(new session token, `aws sso login`, or re-export the keys)"
        )
    refreshing = RefreshingResolver(
        resolver, margin_seconds=margin_seconds, now=now, expires_at_hint=hint
    )
    refreshing.last_expires_at = expires_at
    return Credentials(
        source=source,
        access_key_id=identity.access_key_id,
        expires_at=expires_at,
        resolver=refreshing,
    )


def static(
    access_key_id: str, secret_access_key: str, session_token: str | None = None
) -> Credentials:
    """Credentials given in code (tests, tools): no lookup, no expiry."""
    from smithy_aws_core.identity.static import StaticCredentialsResolver

    identity = AWSCredentialsIdentity(
        access_key_id=access_key_id,
        secret_access_key=secret_access_key,
        session_token=session_token,
    )
    resolver = RefreshingResolver(StaticCredentialsResolver(identity), margin_seconds=0.0)
    return Credentials(
        source="static", access_key_id=access_key_id, expires_at=None, resolver=resolver
    )


__all__ = ["NO_CREDENTIALS", "Credentials", "CredentialsError", "RefreshingResolver", "resolve"]
