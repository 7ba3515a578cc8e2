"""The contract gateway.server.uvicorn_hook relies on, checked against the installed uvicorn:
it fails loudly on an untested version, and on a tested one it runs a real uvicorn.Server with
our protocol class in-process (construction, server_state.connections, shutdown)."""

from __future__ import annotations

import asyncio
import socket

import pytest
import uvicorn

from gateway.app import create_app
from gateway.server.uvicorn_hook import TESTED, UvicornHttp, check_version
from gateway.settings import Settings

pytestmark = pytest.mark.timeout(30)


def test_the_installed_uvicorn_is_a_tested_one():
    assert uvicorn.__version__.startswith(TESTED), (
        f"uvicorn {uvicorn.__version__} is not in gateway.server.uvicorn_hook.TESTED: check "
        "this module's contract (below) and the integration suite on it, then add it"
    )
    check_version()


def test_an_untested_version_is_refused():
    with pytest.raises(RuntimeError, match="tested with uvicorn"):
        check_version("0.99.0")


async def test_uvicorn_builds_our_protocol_per_connection_and_shuts_it_down():
    app = create_app(Settings(redis_url=None))
    config = uvicorn.Config(app, http=UvicornHttp, lifespan="on", log_level="warning")
    server = uvicorn.Server(config)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:  # noqa: ASYNC110 - uvicorn sets a flag, no event
            await asyncio.sleep(0.01)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b'{"status":"ok"}'), 10)
        assert head.startswith(b"HTTP/1.1 200 ")
        [connection] = server.server_state.connections  # ours, registered for shutdown
        assert isinstance(connection, UvicornHttp)
        server.should_exit = True  # uvicorn's shutdown calls connection.shutdown()
        assert await asyncio.wait_for(reader.read(), 10) == b""  # the idle connection closed
        writer.close()
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 20)
    assert not server.server_state.connections and not server.server_state.tasks
