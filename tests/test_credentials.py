"""Credentials: the standard chain, one-line errors, and expiry of temporary credentials.

Every test runs in a scrubbed environment: no AWS variables, config files in a temp dir,
instance metadata off. Nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import datetime
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
from smithy_aws_core.identity import AWSCredentialsIdentity

from sonic_fsm import credentials
from sonic_fsm.credentials import CredentialsError, RefreshingResolver, resolve
from sonic_fsm.settings import Backend

NOW = 1_800_000_000.0


@pytest.fixture(autouse=True)
def scrubbed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for var in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_CREDENTIAL_EXPIRATION",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return tmp_path


def found(backend: Backend | None = None, **kw: Any) -> credentials.Credentials:
    return asyncio.run(resolve(backend or Backend(), now=lambda: NOW, **kw))


def error(backend: Backend | None = None) -> str:
    with pytest.raises(CredentialsError) as caught:
        found(backend)
    text = str(caught.value)
    assert "\n" not in text and len(text) < 300
    return text


def iso(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).isoformat()


def test_nothing_found_is_the_one_line() -> None:
    assert error() == credentials.NO_CREDENTIALS


def test_environment_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAENVIRONMENT01")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cret")
    c = found()
    assert (c.source, c.access_key_id, c.expires_at) == ("environment", "AKIAENVIRONMENT01", None)
    assert "s3cret" not in repr(c) and c.key_hint == "AKIA…NT01"


def test_half_set_environment_says_which_half(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAENVIRONMENT01")
    assert "AWS_SECRET_ACCESS_KEY is not" in error()


def test_environment_session_expiry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ASIATEMPORARY0001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "token")
    monkeypatch.setenv("AWS_CREDENTIAL_EXPIRATION", iso(NOW + 900))
    assert found().expires_at == pytest.approx(NOW + 900)


def test_expired_environment_credentials_stop_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ASIATEMPORARY0001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cret")
    monkeypatch.setenv("AWS_CREDENTIAL_EXPIRATION", iso(NOW - 1))
    assert "expired at" in error()


def test_bad_expiration_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ASIATEMPORARY0001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cret")
    monkeypatch.setenv("AWS_CREDENTIAL_EXPIRATION", "tomorrow")
    assert "AWS_CREDENTIAL_EXPIRATION" in error()


def test_default_profile_from_the_credentials_file(scrubbed: Path) -> None:
    (scrubbed / "credentials").write_text(
        "[default]\naws_access_key_id = AKIAFILEDEFAULT01\naws_secret_access_key = x\n"
    )
    c = found()
    assert (c.source, c.access_key_id) == ("profile 'default'", "AKIAFILEDEFAULT01")


def test_named_profile_wins_over_the_environment(
    scrubbed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAENVIRONMENT01")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cret")
    (scrubbed / "config").write_text(
        "[profile dev]\naws_access_key_id = AKIADEVPROFILE001\naws_secret_access_key = y\n"
    )
    c = found(Backend(profile="dev"))
    assert (c.source, c.access_key_id) == ("profile 'dev'", "AKIADEVPROFILE001")


def test_aws_profile_variable(scrubbed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (scrubbed / "config").write_text(
        "[profile ops]\naws_access_key_id = AKIAOPSPROFILE001\naws_secret_access_key = y\n"
    )
    monkeypatch.setenv("AWS_PROFILE", "ops")
    assert found().access_key_id == "AKIAOPSPROFILE001"


def test_missing_profile_is_named() -> None:
    text = error(Backend(profile="nope"))
    assert "'nope'" in text and "backend.profile" in text and "aws configure" in text


def test_missing_aws_profile_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "ghost")
    assert "'ghost' (from AWS_PROFILE)" in error()


def test_sso_profile_says_how_to_export(scrubbed: Path) -> None:
    (scrubbed / "config").write_text("[profile corp]\nsso_session = corp\nregion = us-east-1\n")
    text = error(Backend(profile="corp"))
    assert "sso_session" in text and "export-credentials" in text


def test_profile_without_keys(scrubbed: Path) -> None:
    (scrubbed / "config").write_text("[profile bare]\nregion = us-east-1\n")
    assert "has no aws_access_key_id" in error(Backend(profile="bare"))


def test_credential_process_reports_its_expiry(scrubbed: Path) -> None:
    """Temporary credentials from a helper program: the expiry reaches the engine."""
    expiry = iso(NOW + 1200)
    script = scrubbed / "creds.py"
    script.write_text(
        "import json\nprint(json.dumps("
        + repr(
            {
                "Version": 1,
                "AccessKeyId": "ASIAPROCESS000001",
                "SecretAccessKey": "z",
                "SessionToken": "t",
                "Expiration": expiry,
            }
        )
        + "))\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    (scrubbed / "config").write_text(
        f"[profile proc]\ncredential_process = {sys.executable} {script}\n"
    )
    c = found(Backend(profile="proc"), margin_seconds=60)
    assert c.access_key_id == "ASIAPROCESS000001"
    assert c.expires_at == pytest.approx(NOW + 1200)


class FakeRole:
    """An SDK-style resolver that caches until expiry, like the container/IMDS ones."""

    def __init__(self, lifetimes: list[float]) -> None:
        self.lifetimes = lifetimes
        self.fetches = 0
        self.cached: AWSCredentialsIdentity | None = None

    async def get_identity(self, *, properties: Any) -> AWSCredentialsIdentity:
        if self.cached is None:
            life = self.lifetimes[self.fetches]
            self.fetches += 1
            self.cached = AWSCredentialsIdentity(
                access_key_id=f"ASIA{self.fetches:012d}",
                secret_access_key="x",
                expiration=datetime.datetime.fromtimestamp(NOW + life, datetime.UTC),
            )
        return self.cached

    async def invalidate(self) -> None:
        self.cached = None


def test_refreshing_resolver_never_hands_out_nearly_expired_keys() -> None:
    role = FakeRole([100.0, 3600.0])
    r = RefreshingResolver(role, margin_seconds=480.0, now=lambda: NOW)
    identity = asyncio.run(r.get_identity(properties={}))
    assert identity.access_key_id == "ASIA000000000002" and role.fetches == 2
    assert r.last_expires_at == pytest.approx(NOW + 3600)


def test_refreshing_resolver_keeps_keys_with_time_left() -> None:
    role = FakeRole([3600.0])
    r = RefreshingResolver(role, margin_seconds=480.0, now=lambda: NOW)
    asyncio.run(r.get_identity(properties={}))
    asyncio.run(r.get_identity(properties={}))
    assert role.fetches == 1 and r.last_expires_at == pytest.approx(NOW + 3600)


def test_static_credentials_never_expire() -> None:
    c = credentials.static("AKIASTATIC0000001", "x")
    identity = asyncio.run(c.resolver.get_identity(properties={}))
    assert identity.access_key_id == "AKIASTATIC0000001" and c.expires_at is None
