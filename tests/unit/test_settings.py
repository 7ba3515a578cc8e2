"""Settings do no I/O; the stream cap's default comes from the descriptor limit."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.auth import Authenticator, KeyConfigError
from gateway.settings import FD_RESERVE, UNLIMITED_STREAMS, Settings, stream_cap_from_fd_limit


@pytest.mark.parametrize(
    ("soft", "cap"),
    [
        (1024, 1024 - FD_RESERVE),
        (20_000, 20_000 - FD_RESERVE),
        (2 * FD_RESERVE, FD_RESERVE),
        (100, 50),
        (1, 1),
        (resource.RLIM_INFINITY, UNLIMITED_STREAMS),
    ],
)
def test_stream_cap_is_the_soft_limit_less_the_reserve(monkeypatch, soft: int, cap: int):
    monkeypatch.setattr(resource, "getrlimit", lambda which: (soft, resource.RLIM_INFINITY))
    assert stream_cap_from_fd_limit() == cap
    assert Settings().max_connections == cap
    assert Settings(max_connections=7).max_connections == 7


def test_settings_name_key_files_without_reading_them(tmp_path: Path):
    missing = tmp_path / "no-such-secret"
    settings = Settings(jwt_secret_file=missing)  # nothing read: the authenticator reads
    assert settings.auth_enabled
    with pytest.raises(KeyConfigError, match="GATEWAY_JWT_SECRET_FILE: cannot read"):
        Authenticator.from_settings(settings)


def test_settings_still_apply_the_key_rules_that_need_no_file(tmp_path: Path):
    pem = tmp_path / "key.pem"  # never read: the algorithm is wrong for any public key
    with pytest.raises(ValidationError, match="cannot be used with a public key"):
        Settings(jwt_public_key_file=pem, jwt_algorithms="HS256")
    with pytest.raises(ValidationError, match="one JWT key source"):
        Settings(jwt_secret_file=pem, jwt_jwks_file=pem)
    with pytest.raises(ValidationError, match="unsupported Redis URL scheme"):
        Settings(redis_url="http://127.0.0.1:6379")
