"""``gateway.asgi:app``: the gateway as a plain ASGI app, built from ``GATEWAY_*`` settings, for
any ASGI server (``hypercorn gateway.asgi:app``). It serves the whole API; what it lacks without
the gateway's own protocol (``sse-gateway`` / ``python -m gateway``) is only speed: every stream
then writes from its own task through the server's ``send`` (docs/design/transport.md).
"""

from __future__ import annotations

from gateway.app import create_app

__all__ = ["app"]

app = create_app()
