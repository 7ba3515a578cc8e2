"""Which address a request comes from, for per-address rate limits.

Behind ``GATEWAY_TRUSTED_PROXY_HOPS`` = N proxies of our own, each appends the address it saw to
``X-Forwarded-For``, so the client is the N-th entry from the right; whatever stands left of it
was written by the client and proves nothing. With N = 0 (the default) the header is ignored and
the peer address is the client: a header anyone can send must never move a client out of its own
bucket (which is also why uvicorn's ``proxy_headers`` is off: it trusts the header from
127.0.0.1 out of the box). Fewer entries than N means the request did not come through all our
proxies, so the peer address is used, as werkzeug's ``ProxyFix`` does.
"""

from __future__ import annotations

from starlette.types import Scope

__all__ = ["client_address"]

UNKNOWN = "unknown"  # a unix-socket peer has no address; such clients share one bucket


def client_address(scope: Scope, trusted_hops: int) -> str:
    peer = scope.get("client")
    direct = str(peer[0]) if peer else UNKNOWN
    if trusted_hops == 0:
        return direct
    forwarded: list[str] = [
        item.strip()
        for name, value in scope["headers"]
        if name == b"x-forwarded-for"
        for item in value.decode("latin-1").split(",")
    ]
    if len(forwarded) < trusted_hops or not forwarded[-trusted_hops]:
        return direct
    return forwarded[-trusted_hops][:64]  # bounded: it becomes a bucket key
