"""Key loading and the weak-secret check (gateway/auth/keys.py), and the settings that use them."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from pydantic import ValidationError

from gateway.auth.keys import KeyConfigError, check_secret, load_keys
from gateway.settings import Settings

GOOD = secrets.token_urlsafe(48)


def load(**kw: object):
    args: dict[str, object] = {
        "secret": None,
        "secret_file": None,
        "public_key_file": None,
        "jwks_file": None,
        "algorithms": (),
    }
    args.update(kw)
    return load_keys(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "secret",
    [
        "short",
        "secret" * 6,
        "changeme-changeme-changeme-changeme",
        "CHANGE_ME_" + "k" * 30,
        "please-replace-me-with-a-real-secret-value",
        "your-256-bit-secret-your-256-bit-secret",
        "a" * 64,
        "abababababababababababababababababab",
        "12345678901234567890123456789012345",
    ],
)
def test_weak_secrets_are_refused(secret: str):
    with pytest.raises(KeyConfigError) as error:
        check_secret(secret.encode())
    assert secret not in str(error.value)


def test_random_secrets_pass():
    for _ in range(50):
        check_secret(secrets.token_urlsafe(32).encode())
        check_secret(secrets.token_bytes(32))


def test_no_key_means_auth_off():
    assert load() is None


def test_one_key_source_only(tmp_path: Path):
    secret_file = tmp_path / "s"
    secret_file.write_text(GOOD)
    with pytest.raises(KeyConfigError, match="one JWT key source"):
        load(secret=GOOD, secret_file=secret_file)


def test_secret_file_loses_its_trailing_newline(tmp_path: Path):
    secret_file = tmp_path / "s"
    secret_file.write_text(GOOD + "\n")
    keys = load(secret_file=secret_file)
    assert keys is not None and keys.key == GOOD.encode() and keys.algorithms == ("HS256",)
    assert GOOD not in keys.source


def test_unreadable_files_are_named(tmp_path: Path):
    with pytest.raises(KeyConfigError, match="cannot read"):
        load(public_key_file=tmp_path / "missing.pem")
    (tmp_path / "junk.pem").write_text("not a key")
    with pytest.raises(KeyConfigError, match="not a PEM public key"):
        load(public_key_file=tmp_path / "junk.pem")
    (tmp_path / "junk.json").write_text('{"keys": "nope"}')
    with pytest.raises(KeyConfigError, match="not a usable JWKS"):
        load(jwks_file=tmp_path / "junk.json")


def _pem(tmp_path: Path, key: object) -> Path:
    path = tmp_path / "key.pem"
    path.write_bytes(
        key.public_key().public_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


def test_algorithm_follows_the_key_type(tmp_path: Path):
    rsa_keys = load(public_key_file=_pem(tmp_path, rsa.generate_private_key(65537, 2048)))
    assert rsa_keys is not None and rsa_keys.algorithms == ("RS256",)
    ec_keys = load(public_key_file=_pem(tmp_path, ec.generate_private_key(ec.SECP256R1())))
    assert ec_keys is not None and ec_keys.algorithms == ("ES256",)
    with pytest.raises(KeyConfigError, match="only RSA and EC"):
        load(public_key_file=_pem(tmp_path, ed25519.Ed25519PrivateKey.generate()))


@pytest.mark.parametrize(
    ("source", "algorithms"),
    [
        ("secret", ("RS256",)),
        ("secret", ("none",)),
        ("pem", ("HS256",)),
        ("pem", ("RS256", "HS256")),
    ],
)
def test_symmetric_and_asymmetric_algorithms_never_mix(tmp_path: Path, source: str, algorithms):
    if source == "secret":
        kw: dict[str, object] = {"secret": GOOD}
    else:
        kw = {"public_key_file": _pem(tmp_path, rsa.generate_private_key(65537, 2048))}
    with pytest.raises(KeyConfigError, match="cannot be used with"):
        load(algorithms=algorithms, **kw)


def test_jwks_refuses_symmetric_keys(tmp_path: Path):
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "x"}]}))
    with pytest.raises(KeyConfigError, match="symmetric"):
        load(jwks_file=path)


def test_jwks_key_is_chosen_by_kid(tmp_path: Path):
    first, second = (ec.generate_private_key(ec.SECP256R1()) for _ in range(2))
    jwks = {
        "keys": [
            {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(k.public_key())), "kid": kid}
            for k, kid in ((first, "one"), (second, "two"))
        ]
    }
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks))
    keys = load(jwks_file=path)
    assert keys is not None
    token = jwt.encode({"exp": 2**31}, second, algorithm="ES256", headers={"kid": "two"})
    assert jwt.decode(token, keys.key_for(token), algorithms=["ES256"]) == {"exp": 2**31}
    no_kid = jwt.encode({"exp": 2**31}, second, algorithm="ES256")
    with pytest.raises(jwt.InvalidKeyError):
        keys.key_for(no_kid)  # two keys and no kid: no guessing


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GATEWAY_JWT_SECRET": "changeme"}, "bytes"),
        ({"GATEWAY_JWT_SECRET": GOOD, "GATEWAY_CORS_ORIGINS": "*"}, "only allowed alone"),
        ({"GATEWAY_CORS_ORIGINS": "*, https://a.io"}, "only allowed alone"),
        ({"GATEWAY_CORS_ORIGINS": "https://a.io/"}, "must look like"),
        ({"GATEWAY_CORS_ORIGINS": "https://*.a.io"}, "must look like"),
        ({"GATEWAY_JWT_ALGORITHMS": "HS256"}, "no JWT key"),
        ({"GATEWAY_AUTH_COOKIE": "a;b"}, "auth_cookie"),
    ],
)
def test_settings_refuse_unsafe_auth_and_cors(monkeypatch, env: dict[str, str], message: str):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as error:
        Settings()
    assert message in str(error.value)
    assert "changeme" not in str(error.value)  # rejected input is never echoed


def test_settings_accept_a_sound_configuration(monkeypatch):
    monkeypatch.setenv("GATEWAY_JWT_SECRET", GOOD)
    monkeypatch.setenv("GATEWAY_CORS_ORIGINS", "https://a.io, http://localhost:3000")
    monkeypatch.setenv("GATEWAY_ANONYMOUS_SUBSCRIBE", "public.*, news")
    settings = Settings()
    assert settings.auth_enabled
    assert settings.cors_origin_list == ("https://a.io", "http://localhost:3000")
    assert settings.anonymous_subscribe_patterns == ("public.*", "news")
    assert GOOD not in repr(settings)
