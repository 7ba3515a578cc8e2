"""The "ceiling" baseline: a minimal hand-written asyncio SSE fan-out server, no framework.

    python -m tests.perf.baselines.fanout_server --port 8001 --redis-port 6379 [--nagle]

It speaks just enough HTTP/1.1 for the benchmark: ``GET /subscribe/{channel}`` (an SSE stream
delimited by connection close) and ``POST /publish/{channel}`` with a JSON body or NDJSON lines
(each line becomes one Redis ``PUBLISH``; 202 once Redis has answered). Redis is spoken in raw
RESP over two connections: one subscribed, one for publishing with pipelined replies.

What makes it fast is what the gateway should copy: each message is framed once per process;
all messages one Redis read brought for a channel are joined and written to each subscriber in
one ``transport.write``; one process-wide heartbeat; no task per connection. ``--nagle`` turns
Nagle's algorithm back on for SSE sockets (asyncio and uvloop set ``TCP_NODELAY``).
Not production code: no auth, no limits beyond a per-client write buffer cap.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
from collections import deque

RETRY_FRAME = b"retry: 2000\n\n"
PING = b": ping\n\n"
MAX_BUFFERED = 4 * 1024 * 1024
SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"x-accel-buffering: no\r\nconnection: close\r\n\r\n"
)


def resp(*parts: bytes) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


def parse_resp(buf: bytes, i: int) -> tuple[object, int] | None:
    """One RESP value at ``buf[i:]``: ``(value, next index)`` or ``None`` if incomplete."""
    end = buf.find(b"\r\n", i)
    if end < 0:
        return None
    kind, line = buf[i : i + 1], buf[i + 1 : end]
    if kind == b"$":
        size = int(line)
        if size < 0:
            return None, end + 2
        stop = end + 2 + size
        return (buf[end + 2 : stop], stop + 2) if len(buf) >= stop + 2 else None
    if kind == b"*":
        items = []
        at = end + 2
        for _ in range(int(line)):
            got = parse_resp(buf, at)
            if got is None:
                return None
            items.append(got[0])
            at = got[1]
        return items, at
    if kind == b":":
        return int(line), end + 2
    return line, end + 2  # + simple string, - error


class RedisLink(asyncio.Protocol):
    """A RESP connection: replies resolve FIFO futures; pushed ``message``s go to ``hub``."""

    def __init__(self, hub: Hub | None = None) -> None:
        self.hub = hub
        self.buf = b""
        self.waiters: deque[asyncio.Future[object]] = deque()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def command(self, *parts: bytes) -> asyncio.Future[object]:
        assert self.transport is not None
        fut = asyncio.get_running_loop().create_future()
        self.waiters.append(fut)
        self.transport.write(resp(*parts))
        return fut

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        at, batch = 0, {}
        while True:
            got = parse_resp(buf, at)
            if got is None:
                break
            value, at = got
            if isinstance(value, list) and value and value[0] == b"message":
                batch.setdefault(value[1], []).append(b"data: %s\n\n" % value[2])
            elif self.hub is not None and isinstance(value, list):
                self.hub.confirmed(value)
            elif self.waiters:
                self.waiters.popleft().set_result(value)
        self.buf = buf[at:]
        if batch and self.hub is not None:
            for channel, frames in batch.items():
                self.hub.fan_out(channel, b"".join(frames))

    def connection_lost(self, exc: Exception | None) -> None:
        raise SystemExit("lost the Redis connection")


class Hub:
    """channel -> set of subscriber transports; SUBSCRIBE on the first, UNSUBSCRIBE on the last."""

    def __init__(self, nagle: bool) -> None:
        self.channels: dict[bytes, set[asyncio.Transport]] = {}
        self.waiting: dict[bytes, list[asyncio.Transport]] = {}
        self.nagle = nagle
        self.sub: RedisLink | None = None

    def add(self, channel: bytes, transport: asyncio.Transport) -> None:
        if self.nagle:
            transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
        transport.write(SSE_HEAD)
        live = self.channels.get(channel)
        if live is not None:
            live.add(transport)
            transport.write(RETRY_FRAME)
            return
        waiting = self.waiting.setdefault(channel, [])
        waiting.append(transport)
        if len(waiting) == 1:
            assert self.sub is not None and self.sub.transport is not None
            self.sub.transport.write(resp(b"SUBSCRIBE", channel))

    def confirmed(self, reply: list[object]) -> None:
        kind, channel = reply[0], reply[1]
        if kind != b"subscribe" or not isinstance(channel, bytes):
            return
        live = self.channels.setdefault(channel, set())
        for transport in self.waiting.pop(channel, []):
            if not transport.is_closing():
                live.add(transport)
                transport.write(RETRY_FRAME)  # only now: the client may start publishing

    def remove(self, channel: bytes, transport: asyncio.Transport) -> None:
        live = self.channels.get(channel)
        if live is None:
            return
        live.discard(transport)
        if not live:
            del self.channels[channel]
            assert self.sub is not None and self.sub.transport is not None
            self.sub.transport.write(resp(b"UNSUBSCRIBE", channel))

    def fan_out(self, channel: bytes, frames: bytes) -> None:
        for transport in tuple(self.channels.get(channel, ())):
            if transport.get_write_buffer_size() > MAX_BUFFERED:
                transport.abort()  # slow client: drop it, never wait for it
            else:
                transport.write(frames)

    async def heartbeat(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            for live in self.channels.values():
                for transport in live:
                    transport.write(PING)


class HttpConnection(asyncio.Protocol):
    def __init__(self, hub: Hub, pub: RedisLink) -> None:
        self.hub, self.pub = hub, pub
        self.buf = b""
        self.channel: bytes | None = None
        self.transport: asyncio.Transport | None = None
        self.busy = False
        self.task: asyncio.Future[None] | None = None  # the publish in flight, kept referenced

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        if self.channel is not None:
            return  # an SSE client has nothing more to say
        self.buf += data
        if not self.busy:
            self._next_request()

    def _next_request(self) -> None:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buf[:end].split(b"\r\n")
        method, target = head[0].split(b" ")[:2]
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        size = int(headers.get(b"content-length", b"0"))
        if len(self.buf) < end + 4 + size:
            return
        body, self.buf = self.buf[end + 4 : end + 4 + size], self.buf[end + 4 + size :]
        self._route(method, target, headers, body)

    def _route(
        self, method: bytes, target: bytes, headers: dict[bytes, bytes], body: bytes
    ) -> None:
        assert self.transport is not None
        path = target.split(b"?")[0]
        if method == b"GET" and path.startswith(b"/subscribe/"):
            self.channel = path[len(b"/subscribe/") :]
            self.hub.add(self.channel, self.transport)
        elif method == b"POST" and path.startswith(b"/publish/"):
            ndjson = b"ndjson" in headers.get(b"content-type", b"")
            lines = [line for line in body.split(b"\n") if line] if ndjson else [body]
            self.busy = True
            self.task = asyncio.ensure_future(self._publish(path[9:], lines, ndjson))
        else:
            self._reply(b"404 Not Found", b'{"error":"not found"}')

    async def _publish(self, channel: bytes, lines: list[bytes], ndjson: bool) -> None:
        replies = [self.pub.command(b"PUBLISH", channel, line) for line in lines]
        await asyncio.gather(*replies)
        key = b"ids" if ndjson else b"id"
        ids = b"[%s]" % b",".join(b'"%d"' % i for i in range(len(lines))) if ndjson else b'"0"'
        self._reply(b"202 Accepted", b'{"channel":"%s","%s":%s}' % (channel, key, ids))
        self.busy = False
        if self.buf:
            self._next_request()

    def _reply(self, status: bytes, body: bytes) -> None:
        assert self.transport is not None
        self.transport.write(
            b"HTTP/1.1 %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
            % (status, len(body), body)
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if self.channel is not None and self.transport is not None:
            self.hub.remove(self.channel, self.transport)
            waiting = self.hub.waiting.get(self.channel)
            if waiting and self.transport in waiting:
                waiting.remove(self.transport)


async def serve(port: int, redis_port: int, nagle: bool) -> None:
    loop = asyncio.get_running_loop()
    hub = Hub(nagle)
    _, hub.sub = await loop.create_connection(lambda: RedisLink(hub), "127.0.0.1", redis_port)
    _, pub = await loop.create_connection(RedisLink, "127.0.0.1", redis_port)
    server = await loop.create_server(
        lambda: HttpConnection(hub, pub), "127.0.0.1", port, backlog=4096
    )
    beat = asyncio.create_task(hub.heartbeat(15.0))
    try:
        await server.serve_forever()
    finally:
        beat.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-port", type=int, required=True)
    parser.add_argument("--nagle", action="store_true", help="leave Nagle on for SSE sockets")
    args = parser.parse_args()
    try:
        import uvloop  # optional, as uvicorn uses it when installed

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    asyncio.run(serve(args.port, args.redis_port, args.nagle))


if __name__ == "__main__":
    main()
