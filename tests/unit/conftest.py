"""Unit tests run the real broker code on fakeredis: one code path, no hand-written fakes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import fakeredis
import pytest

from gateway.broker.connection import ClientConnection
from gateway.broker.redis import RedisBroker
from gateway.hub import Hub
from publisher import AsyncPublisher
from publisher.wire import HistoryLimits


@pytest.fixture
def fake_server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
async def broker(fake_server: fakeredis.FakeServer) -> AsyncIterator[RedisBroker]:
    client = fakeredis.FakeAsyncRedis(server=fake_server)
    pubsub_client = fakeredis.FakeAsyncRedis(server=fake_server)

    async def connect():
        conn = await pubsub_client.connection_pool.get_connection()
        await conn.connect()
        return ClientConnection(conn)

    broker = RedisBroker(
        client=client,
        pubsub_connect=connect,
        key_prefix="sse:",
        pubsub_prefix="",
        history=HistoryLimits(max_len=1000),
        extra_clients=[pubsub_client],
    )
    await broker.start()
    yield broker
    await broker.close()


@pytest.fixture
async def hub(broker: RedisBroker) -> AsyncIterator[Hub]:
    hub = Hub(broker, unsubscribe_delay=0.05, replay_max=1000)
    yield hub
    await hub.close()


@pytest.fixture
async def publisher(fake_server: fakeredis.FakeServer) -> AsyncIterator[AsyncPublisher]:
    client = fakeredis.FakeAsyncRedis(server=fake_server)
    yield AsyncPublisher(client=client)
    await client.aclose()


@pytest.fixture
async def redis_client(
    fake_server: fakeredis.FakeServer,
) -> AsyncIterator[fakeredis.FakeAsyncRedis]:
    client = fakeredis.FakeAsyncRedis(server=fake_server)
    yield client
    await client.aclose()
