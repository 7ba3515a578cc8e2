"""The publish pipe (gateway.broker.pipe) against a real redis-server: pipelined calls keep their
own ids and atomicity, and every failure it promises to handle - a forgotten script, a restart,
a dead or hung server, an error reply, a caller that went away - is handled as documented."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis

from gateway.broker import create_broker
from gateway.broker.redis import RedisBroker
from gateway.errors import BrokerUnavailable
from gateway.settings import Settings
from publisher.wire import stream_key
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration


async def _broker(url: str, timeout: float = 0.5) -> RedisBroker:
    broker = create_broker(Settings(redis_url=url, redis_timeout=timeout))
    await broker.start()
    assert broker.ready
    return broker


@pytest.fixture
async def broker(own_redis: RedisServer) -> AsyncIterator[RedisBroker]:
    broker = await _broker(own_redis.url)
    yield broker
    await broker.close()


def _redis(server: RedisServer, command: str, *args: object) -> Any:
    """One command on a connection of its own, closed again (it would outlive the test)."""
    with server.client() as client:
        return client.execute_command(command, *args)


def _connections_received(server: RedisServer) -> int:
    with server.client() as client:
        return int(client.info("stats")["total_connections_received"])


def _entries(server: RedisServer, channel: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
    with server.client() as client:
        return client.xrange(stream_key(channel))


async def test_concurrent_publishes_share_one_connection_and_keep_their_ids(broker, own_redis):
    await broker.publish("warm", [("", b"0")])  # the pipe's connection exists from here on
    connections = _connections_received(own_redis)
    batches = [[("", b'{"n":%d}' % n), ("e", b'{"m":%d}' % n)] for n in range(300)]
    results = await asyncio.gather(
        *(broker.publish(f"pp{n % 3}", batch) for n, batch in enumerate(batches))
    )
    assert _connections_received(own_redis) - connections == 1  # only ours, to count them
    assert all(len(ids) == 2 for ids in results)
    for c in range(3):
        entries = _entries(own_redis, f"pp{c}")
        assert len(entries) == 200
        prevs = [fields[b"p"].decode() for _, fields in entries]
        assert prevs == ["0-0", *[entry_id.decode() for entry_id, _ in entries[:-1]]]
        by_id = {entry_id.decode(): fields for entry_id, fields in entries}
        for n, ids in enumerate(results):
            if n % 3 == c:  # each request's batch landed whole, in order, under its ids
                assert by_id[ids[0]][b"d"] == b'{"n":%d}' % n
                assert by_id[ids[1]][b"d"] == b'{"m":%d}' % n
                assert by_id[ids[1]][b"p"].decode() == ids[0]


async def test_a_forgotten_script_is_sent_again_in_full(broker, own_redis):
    await broker.publish("sf", [("", b"1")])
    _redis(own_redis, "SCRIPT", "FLUSH")
    ids = await asyncio.gather(*(broker.publish("sf", [("", b"%d" % n)]) for n in range(10)))
    assert len({i[0] for i in ids}) == 10
    assert len(_entries(own_redis, "sf")) == 11


async def test_a_restarted_redis_is_reconnected_to_without_a_failed_publish(broker, own_redis):
    await broker.publish("rs", [("", b"1")])
    own_redis.restart()  # same port; the pipe's connection is closed by the old process
    await asyncio.sleep(0.2)
    [id_] = await broker.publish("rs", [("", b"2")])  # NOSCRIPT too: a new process
    assert _entries(own_redis, "rs")[0][0].decode() == id_


async def test_redis_down_fails_fast_and_recovers(broker, own_redis):
    await broker.publish("dn", [("", b"1")])
    own_redis.stop()
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable):
        await broker.publish("dn", [("", b"2")])
    assert time.monotonic() - started < 0.5
    own_redis.start()
    await broker.publish("dn", [("", b"3")])


async def test_a_hung_redis_fails_the_calls_in_flight_after_the_timeout(broker, own_redis):
    await broker.publish("hg", [("", b"1")])
    own_redis.pause()
    try:
        started = time.monotonic()
        results = await asyncio.gather(
            *(broker.publish("hg", [("", b"x")]) for _ in range(5)), return_exceptions=True
        )
        elapsed = time.monotonic() - started
    finally:
        own_redis.resume()
    assert all(isinstance(r, BrokerUnavailable) for r in results), results
    assert 0.4 < elapsed < 2.0  # about one GATEWAY_REDIS_TIMEOUT (0.5 s here), not more
    await broker.publish("hg", [("", b"2")])  # a fresh connection once Redis answers again


async def test_an_error_reply_fails_only_its_own_call(broker, own_redis):
    _redis(own_redis, "SET", stream_key("wrongtype"), "not a stream")
    results = await asyncio.gather(
        broker.publish("ok1", [("", b"1")]),
        broker.publish("wrongtype", [("", b"1")]),
        broker.publish("ok2", [("", b"1")]),
        return_exceptions=True,
    )
    assert isinstance(results[1], BrokerUnavailable) and "WRONGTYPE" in str(results[1])
    assert isinstance(results[0], list) and isinstance(results[2], list)
    assert len(_entries(own_redis, "ok2")) == 1


async def test_callers_that_go_away_do_not_shift_the_replies_of_others(broker, own_redis):
    await broker.publish("cx", [("", b"0")])
    own_redis.pause()  # keeps the calls in flight while some callers are cancelled
    tasks = [asyncio.create_task(broker.publish("cx", [("", b"%d" % n)])) for n in range(1, 9)]
    await asyncio.sleep(0.05)
    for task in tasks[::2]:
        task.cancel()
    own_redis.resume()
    kept = await asyncio.gather(*tasks[1::2])
    by_id = {i.decode(): f[b"d"] for i, f in _entries(own_redis, "cx")}
    for n, ids in zip(range(2, 9, 2), kept, strict=True):
        assert by_id[ids[0]] == b"%d" % n  # Redis ran the cancelled ones too: they were sent


async def test_a_unix_socket_with_a_password(tmp_path):
    server = RedisServer(password="s3cret-pass")
    socket_path = tmp_path / "redis.sock"
    server.extra_args = ["--unixsocket", str(socket_path)]
    try:
        server.start()
        broker = await _broker(f"unix://:s3cret-pass@{socket_path}?db=3")
        try:
            [id_] = await broker.publish("ux", [("", b"1")])
        finally:
            await broker.close()
        with redis.Redis(unix_socket_path=str(socket_path), password="s3cret-pass", db=3) as c:
            assert c.xrange(stream_key("ux"))[0][0].decode() == id_
    finally:
        server.close()
