"""The one module that knows uvicorn: our protocol as uvicorn's HTTP protocol class.

uvicorn documents ``Config(http=...)`` as accepting a protocol class as well as a name
(``--http`` in its settings docs). It constructs the class with the keyword arguments below,
once per connection, and at shutdown calls ``shutdown()`` on each one it finds in
``server_state.connections``, then waits for that set and ``server_state.tasks`` to empty.
That is the whole contract we depend on; uvicorn keeps everything else it does for us (binding,
worker processes, signals, the lifespan, graceful shutdown). The contract is not versioned by
uvicorn, so it is checked against the versions we tested (:data:`TESTED`), and
tests/unit/test_uvicorn_hook.py fails loudly on any other one.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn

from gateway.server.protocol import HttpProtocol

__all__ = ["TESTED", "UvicornHttp", "check_version"]

TESTED = ("0.54.", "0.55.")  # uvicorn versions the contract above was checked on


def check_version(version: str = uvicorn.__version__) -> None:
    if not version.startswith(TESTED):
        raise RuntimeError(
            f"gateway.server.uvicorn_hook was tested with uvicorn {', '.join(TESTED)}x, not "
            f"{version}: run tests/unit/test_uvicorn_hook.py and the integration tests, then add it"
        )


class UvicornHttp(HttpProtocol):
    """``uvicorn.Config(http=UvicornHttp)``: built by uvicorn for every accepted connection."""

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not config.loaded:
            config.load()
        super().__init__(
            config.loaded_app,
            app_state,
            keep_alive_timeout=config.timeout_keep_alive,
            root_path=config.root_path,
            tasks=server_state.tasks,
            connections=server_state.connections,
        )
