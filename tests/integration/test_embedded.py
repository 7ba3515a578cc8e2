"""The one-command mode: no Redis URL, an embedded store, everything still works."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.support.sse import sse_connect

pytestmark = pytest.mark.integration


async def test_embedded_store_publishes_delivers_and_resumes(start_gateway, tmp_path):
    gateway = start_gateway(None)
    async with httpx.AsyncClient(base_url=gateway.url) as http:
        assert (await http.get("/readyz")).json() == {"status": "ready"}
        async with sse_connect(gateway.url + "/subscribe/emb") as stream:
            await stream.next_frame()
            first = (await http.post("/publish/emb", json={"n": 1})).json()["id"]
            assert (await stream.next_event()).json() == {"n": 1}
        await http.post("/publish/emb", json={"n": 2})
        await http.post("/publish/emb", json={"n": 3})
    async with sse_connect(gateway.url + "/subscribe/emb", last_event_id=first) as stream:
        assert [e.json()["n"] for e in await stream.collect(2)] == [2, 3]
    log = (tmp_path / "gateway-0.log").read_text()
    assert "EMBEDDED STORE" in log


def test_embedded_store_refuses_several_workers(start_gateway):
    with pytest.raises(RuntimeError, match="exited"):
        start_gateway(None, workers=2)


async def test_embedded_store_stays_open_with_its_operator_endpoints(start_gateway):
    gateway = start_gateway(None, env={"GATEWAY_AUTH": "auto"})  # the default, nothing set
    async with (
        httpx.AsyncClient(base_url=gateway.url, timeout=5) as http,
        sse_connect(gateway.url + "/subscribe/emb-ops") as stream,
    ):
        await stream.next_frame()
        for _ in range(40):  # written after the 50 ms coalescing delay
            info = (await http.get("/channels/emb-ops")).json()
            if info["subscribers"] == 1:
                break
            await asyncio.sleep(0.05)
        assert info["subscribers"] == 1
        revoked = await http.delete("/channels/emb-ops/subscribers")
        assert revoked.status_code == 202
        farewell = await stream.next_event()
        assert farewell is not None and farewell.event == "gateway.revoked"
