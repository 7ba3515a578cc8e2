"""The gateway's own HTTP/1.1 server protocol: an :class:`asyncio.Protocol` on ``httptools``.

    protocol.py      HttpProtocol: parsing, head limits, pipelining, keep-alive, flow control
    exchange.py      Exchange: one request, its body (``receive``) and an ASGI ``send``
    hot.py           the common subscribe and publish requests, on the routes' own functions
    uvicorn_hook.py  the one module that knows uvicorn: ``Config(http=UvicornHttp)``

Every request that is not a plain subscribe or publish goes to the FastAPI app through ASGI, so
the app stays the one definition of the API (docs/design/transport.md).
"""

from gateway.server.protocol import HttpProtocol

__all__ = ["HttpProtocol"]
