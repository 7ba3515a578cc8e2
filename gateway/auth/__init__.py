"""JWT authentication and per-channel rights.

    keys.py       key material from settings (secret, secret file, PEM, JWKS) + weak-secret check
    tokens.py     where a request's token comes from (header, cookie, query)
    rights.py     Grant: the channel patterns a caller may subscribe to and publish on
    verify.py     Authenticator: request -> Grant (PyJWT does the cryptography)
    http.py       the FastAPI dependency and the 401 handler (``WWW-Authenticate: Bearer``)

Errors (both are ClientErrors, so they answer with the usual ``{"error", "detail"}`` body):

    ClientError
    └── AuthError
        ├── Unauthenticated   401 + WWW-Authenticate: Bearer: no usable token where one is needed
        └── Forbidden         403: a valid token (or anonymous access) without the right
    ValueError
    └── KeyConfigError        the configured key material is missing, unreadable or weak

With no key configured, auth is off: every request gets :meth:`Grant.everything` (the embedded dev
default; the start-up log says so loudly).
"""

from gateway.auth.errors import AuthError, Forbidden, KeyConfigError, Unauthenticated
from gateway.auth.rights import Grant
from gateway.auth.verify import Authenticator

__all__ = [
    "AuthError",
    "Authenticator",
    "Forbidden",
    "Grant",
    "KeyConfigError",
    "Unauthenticated",
]
