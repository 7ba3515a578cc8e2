"""Key material for verifying tokens, loaded once at start-up from the environment or files.

Only the :class:`~gateway.auth.Authenticator` loads keys (:func:`keys_from_settings`), so key
files are read once per process, when it is built. The settings check what they can without
reading a file (:func:`check_key_settings`: one source, the inline secret, the algorithms), with
the same rules :func:`load_keys` applies.

Sources (exactly one): a shared HMAC secret (``GATEWAY_JWT_SECRET`` or, for Kubernetes Secrets,
``GATEWAY_JWT_SECRET_FILE``), a PEM public key file (RS256/ES256) or a JWKS file (keys chosen by
the token's ``kid``). Nothing here ever puts key material into a message or a log line.

Symmetric and asymmetric algorithms are never mixed: a public key is not a secret, and accepting
HS256 with it would let anyone who has the public key sign tokens (algorithm confusion).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from gateway.auth.errors import KeyConfigError

if TYPE_CHECKING:  # settings validates with this module, so it is imported lazily there
    from gateway.settings import Settings

__all__ = [
    "MIN_SECRET_BYTES",
    "KeySet",
    "check_key_settings",
    "check_secret",
    "keys_from_settings",
    "load_keys",
]

MIN_SECRET_BYTES = 32
HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
PUBLIC_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "ES512"})
# Fragments of the placeholders people paste from examples; compared without case or punctuation.
_PLACEHOLDERS = (
    "changeme",
    "replaceme",
    "placeholder",
    "yoursecret",
    "256bitsecret",  # jwt.io's sample secret
    "mysecret",
    "secretkey",
    "jwtsecret",
    "example",
    "password",
    "default",
    "insecure",
    "notasecret",
    "dummy",
    "xxxxxxxx",
    "00000000",
    "12345678",
)
_MIN_DISTINCT_CHARS = 10


@dataclass(frozen=True, slots=True)
class KeySet:
    """What PyJWT verifies with: one key, or a JWKS looked up by ``kid``."""

    algorithms: tuple[str, ...]
    source: str  # for the start-up log: where the key came from, never the key
    key: Any = None
    jwks: jwt.PyJWKSet | None = None

    def key_for(self, token: str) -> Any:
        """The key to verify ``token`` with. Raises ``jwt.InvalidTokenError``."""
        if self.jwks is None:
            return self.key
        kid = jwt.get_unverified_header(token).get("kid")
        keys = self.jwks.keys
        if kid is None and len(keys) == 1:
            return keys[0].key
        for candidate in keys:
            if candidate.key_id == kid:
                return candidate.key
        raise jwt.InvalidKeyError("no key in the JWKS file matches the token's kid")


def check_secret(secret: bytes) -> None:
    """Refuse secrets that are short, low-variety or an obvious placeholder."""
    if len(secret) < MIN_SECRET_BYTES:
        raise KeyConfigError(
            f"the JWT secret is {len(secret)} bytes; use at least {MIN_SECRET_BYTES} random bytes "
            '(e.g. python -c "import secrets; print(secrets.token_urlsafe(48))")'
        )
    folded = re.sub(rb"[^a-z0-9]", b"", secret.lower()).decode("ascii", "ignore")
    if any(word in folded for word in _PLACEHOLDERS) or folded.startswith("secret"):
        raise KeyConfigError("the JWT secret looks like a placeholder; use a random secret")
    if len(set(secret)) < _MIN_DISTINCT_CHARS:
        raise KeyConfigError("the JWT secret has too little variety to be random")


def keys_from_settings(settings: Settings) -> KeySet | None:
    """The key set the settings configure, key files read: for the authenticator."""
    return load_keys(**_sources(settings))


def check_key_settings(settings: Settings) -> None:
    """What the settings can check without reading a file; raises :class:`KeyConfigError`."""
    check_key_sources(**_sources(settings))


def _sources(settings: Settings) -> dict[str, Any]:
    return {
        "secret": settings.jwt_secret.get_secret_value() if settings.jwt_secret else None,
        "secret_file": settings.jwt_secret_file,
        "public_key_file": settings.jwt_public_key_file,
        "jwks_file": settings.jwt_jwks_file,
        "algorithms": settings.jwt_algorithm_list,
    }


def check_key_sources(
    *,
    secret: str | None,
    secret_file: Path | None,
    public_key_file: Path | None,
    jwks_file: Path | None,
    algorithms: tuple[str, ...],
    setting: str | None = None,
) -> None:
    """The rules that need no file: one source at most, a strong inline secret, algorithms that
    fit the kind of key, and no algorithms without a key. ``setting``: the one setting all the
    sources came from (a Mercure key), named in a refusal instead of ours."""
    given = [
        name
        for name, value in (
            ("GATEWAY_JWT_SECRET", secret),
            ("GATEWAY_JWT_SECRET_FILE", secret_file),
            ("GATEWAY_JWT_PUBLIC_KEY_FILE", public_key_file),
            ("GATEWAY_JWT_JWKS_FILE", jwks_file),
        )
        if value
    ]
    if len(given) > 1:
        raise KeyConfigError(f"configure one JWT key source, not {len(given)}: {', '.join(given)}")
    if secret:
        with _about(setting or "GATEWAY_JWT_SECRET"):
            _hmac(secret.encode(), setting or "GATEWAY_JWT_SECRET", algorithms)
    elif secret_file is not None and algorithms:
        _only(algorithms, HMAC_ALGORITHMS, "a shared secret")
    elif (public_key_file is not None or jwks_file is not None) and algorithms:
        _only(algorithms, PUBLIC_ALGORITHMS, "a public key" if public_key_file else "a JWKS")
    elif not given and algorithms:
        raise KeyConfigError("GATEWAY_JWT_ALGORITHMS is set but no JWT key is configured")


def load_keys(
    *,
    secret: str | None,
    secret_file: Path | None,
    public_key_file: Path | None,
    jwks_file: Path | None,
    algorithms: tuple[str, ...],
    setting: str | None = None,
) -> KeySet | None:
    """The configured key set, or ``None`` when no key is configured (auth off). ``setting`` as
    for :func:`check_key_sources`."""
    check_key_sources(
        secret=secret,
        secret_file=secret_file,
        public_key_file=public_key_file,
        jwks_file=jwks_file,
        algorithms=algorithms,
        setting=setting,
    )
    if secret:
        return _hmac(secret.encode(), setting or "GATEWAY_JWT_SECRET", algorithms)
    if secret_file is not None:
        with _about(setting or "GATEWAY_JWT_SECRET_FILE"):
            # Files mounted from Kubernetes Secrets often end in a newline nobody meant.
            secret_bytes = _read(secret_file).rstrip(b"\r\n")
            return _hmac(secret_bytes, f"file {secret_file}", algorithms)
    if public_key_file is not None:
        with _about(setting or "GATEWAY_JWT_PUBLIC_KEY_FILE"):
            return _public_key(public_key_file, algorithms)
    if jwks_file is not None:
        with _about(setting or "GATEWAY_JWT_JWKS_FILE"):
            return _jwks(jwks_file, algorithms)
    return None


@contextmanager
def _about(setting: str) -> Iterator[None]:
    """Name the setting in a refusal: the start-up error is one line that says what to fix."""
    try:
        yield
    except KeyConfigError as exc:
        raise KeyConfigError(f"{setting}: {exc}") from None


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise KeyConfigError(f"cannot read {path}: {exc.strerror}") from None


def _hmac(secret: bytes, source: str, algorithms: tuple[str, ...]) -> KeySet:
    check_secret(secret)
    chosen = algorithms or ("HS256",)
    _only(chosen, HMAC_ALGORITHMS, "a shared secret")
    return KeySet(algorithms=chosen, source=source, key=secret)


def _public_key(path: Path, algorithms: tuple[str, ...]) -> KeySet:
    pem = _read(path)
    try:
        key = load_pem_public_key(pem)
    except ValueError:
        raise KeyConfigError(f"{path} is not a PEM public key") from None
    if isinstance(key, rsa.RSAPublicKey):
        default: tuple[str, ...] = ("RS256",)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        default = ("ES256",)
    else:
        raise KeyConfigError(f"{path}: only RSA and EC public keys are supported")
    chosen = algorithms or default
    _only(chosen, PUBLIC_ALGORITHMS, "a public key")
    return KeySet(algorithms=chosen, source=f"file {path}", key=key)


def _jwks(path: Path, algorithms: tuple[str, ...]) -> KeySet:
    text = _read(path).decode("utf-8", "replace")
    try:
        jwks = jwt.PyJWKSet.from_json(text)
    except (jwt.PyJWKSetError, jwt.PyJWKError, ValueError) as exc:
        raise KeyConfigError(f"{path} is not a usable JWKS: {exc}") from None
    if any(key.key_type == "oct" for key in jwks.keys):
        raise KeyConfigError(f"{path}: symmetric (oct) keys belong in GATEWAY_JWT_SECRET_FILE")
    chosen = algorithms or ("RS256", "ES256")
    _only(chosen, PUBLIC_ALGORITHMS, "a JWKS")
    return KeySet(algorithms=chosen, source=f"JWKS file {path} ({len(jwks.keys)} keys)", jwks=jwks)


def _only(chosen: tuple[str, ...], allowed: frozenset[str], what: str) -> None:
    wrong = [name for name in chosen if name not in allowed]
    if wrong:
        raise KeyConfigError(
            f"GATEWAY_JWT_ALGORITHMS {', '.join(wrong)} cannot be used with {what}; "
            f"choose from {', '.join(sorted(allowed))}"
        )
