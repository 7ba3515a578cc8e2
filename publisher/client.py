"""``Publisher`` (blocking) and ``AsyncPublisher``: publish JSON messages and get their ids back.

Both write straight to Redis with the shared atomic script (:mod:`publisher.wire`) when given a
Redis URL, or POST to a gateway when given an ``http(s)://`` URL. Either way a message gets an id,
is kept in the channel's history and reaches every subscriber of every gateway replica.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import redis.asyncio.cluster
import redis.cluster
import redis.exceptions

from publisher.connect import RedisTarget, async_client, node_client, parse_redis_url, sync_client
from publisher.errors import (
    BackendUnavailable,
    InvalidChannel,
    InvalidMessage,
    PublishError,
    Rejected,
)
from publisher.idempotency import (
    DEFAULT_IDEMPOTENCY_TTL,
    IDEMPOTENT_PUBLISH_SCRIPT,
    IDEMPOTENT_SHARDED_PUBLISH_SCRIPT,
    Idempotency,
    idempotency_key,
)
from publisher.wire import (
    DEFAULT_HISTORY,
    DEFAULT_KEY_PREFIX,
    DEFAULT_PUBSUB_PREFIX,
    PUBLISH_SCRIPT,
    SHARDED_PUBLISH_SCRIPT,
    HistoryLimits,
    encode_json,
    is_valid_channel,
    is_valid_event_name,
    publish_args,
    stream_key,
)

__all__ = ["AsyncPublisher", "Publisher"]

DEFAULT_URL = "redis://localhost:6379/0"


def prepare(channel: str, messages: Iterable[Any], event: str | None) -> list[tuple[str, bytes]]:
    """Validate and encode a batch: the checks a gateway would make, done before any I/O."""
    if not is_valid_channel(channel):
        raise InvalidChannel(f"invalid channel name {channel!r}")
    if event is not None and not is_valid_event_name(event):
        raise InvalidMessage(f"invalid event name {event!r}")
    try:
        batch = [(event or "", encode_json(message)) for message in messages]
    except (TypeError, ValueError) as exc:
        raise InvalidMessage(f"message is not JSON-serialisable: {exc}") from exc
    if not batch:
        raise InvalidMessage("nothing to publish")
    return batch


def _is_http(url: str) -> bool:
    return url.startswith(("http://", "https://"))


def _decode_ids(raw: list[Any]) -> list[str]:
    return [item.decode() if isinstance(item, bytes) else str(item) for item in raw]


class _HttpGateway:
    """Blocking HTTP transport to a gateway's ``POST /publish/{channel}`` (stdlib only)."""

    def __init__(self, url: str, token: str | None, timeout: float) -> None:
        self._base = url.rstrip("/")
        self._token = token
        self._timeout = timeout

    def publish(
        self, channel: str, batch: list[tuple[str, bytes]], key: Idempotency | None = None
    ) -> list[str]:
        event = batch[0][0]
        query = "?" + urllib.parse.urlencode({"event": event}) if event else ""
        if len(batch) == 1:
            body, ctype = batch[0][1], "application/json"
        else:
            body, ctype = b"\n".join(data for _, data in batch) + b"\n", "application/x-ndjson"
        headers = {"content-type": ctype}
        if self._token:
            headers["authorization"] = f"Bearer {self._token}"
        if key is not None:  # the gateway's own GATEWAY_IDEMPOTENCY_TTL applies
            headers["idempotency-key"] = key.key
        url = f"{self._base}/publish/{urllib.parse.quote(channel)}{query}"
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        reply = self._send(request)
        return [reply["id"]] if len(batch) == 1 else list(reply["ids"])

    def _send(self, request: urllib.request.Request) -> dict[str, Any]:
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                reply: dict[str, Any] = json.loads(response.read())
                return reply
        except urllib.error.HTTPError as exc:
            body = _json_or_text(exc.read())
            if exc.code < 500:
                raise Rejected(exc.code, body) from exc
            raise BackendUnavailable(f"gateway answered HTTP {exc.code}: {body}") from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise BackendUnavailable(f"gateway unreachable: {exc}") from exc


def _json_or_text(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


CLUSTER_CLIENTS = (redis.cluster.RedisCluster, redis.asyncio.cluster.RedisCluster)


@contextmanager
def _redis_errors() -> Iterator[None]:
    """Wrap redis-py's exceptions into the library's tree (the cause is kept). asyncio raises
    RuntimeError for a write on a transport redis-py has just closed (seen in a failover)."""
    try:
        yield
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
        raise BackendUnavailable(f"redis unreachable: {exc}") from exc
    except RuntimeError as exc:
        raise BackendUnavailable(f"redis connection closed under the publish: {exc}") from exc
    except redis.exceptions.RedisError as exc:
        raise PublishError(f"redis refused the publish: {exc}") from exc


class _PublisherBase:
    """What both publishers share: the wire settings, the transport choice, the script call."""

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str,
        pubsub_prefix: str,
        history: HistoryLimits,
        token: str | None,
        timeout: float,
        min_replicas: int = 0,
        idempotency_ttl: float = DEFAULT_IDEMPOTENCY_TTL,
    ) -> None:
        if min_replicas < 0:
            raise ValueError("min_replicas must not be negative")
        self._min_replicas = min_replicas
        self._wait_ms = max(1, int(timeout * 500))  # WAIT gets half the budget of the call
        self._target: RedisTarget | None = None
        self._node_clients: dict[tuple[str, int], Any] = {}
        self._key_prefix = key_prefix
        self._idempotency_ttl_ms = int(idempotency_ttl * 1000)
        self._pubsub_prefix = pubsub_prefix
        self._history = history
        self._timeout = timeout
        self._http = _HttpGateway(url, token, timeout) if _is_http(url) else None
        self._redis: Any = None

    def _use_redis(self, client: Any) -> None:
        self._redis = client
        # On a cluster the script announces with SPUBLISH, in the stream key's slot.
        self._sharded = isinstance(client, CLUSTER_CLIENTS)
        script = SHARDED_PUBLISH_SCRIPT if self._sharded else PUBLISH_SCRIPT
        self._script = client.register_script(script)
        self._idempotent_script = client.register_script(
            IDEMPOTENT_SHARDED_PUBLISH_SCRIPT if self._sharded else IDEMPOTENT_PUBLISH_SCRIPT
        )

    def _idempotency(self, key: str | None) -> Idempotency | None:
        if key is None:
            return None
        try:
            return Idempotency(key, self._idempotency_ttl_ms)
        except ValueError as exc:
            raise InvalidMessage(str(exc)) from None

    def _call_script(
        self,
        channel: str,
        batch: list[tuple[str, bytes]],
        client: Any = None,
        idempotency: Idempotency | None = None,
    ) -> Any:
        """Run the publish script: the result for Publisher, an awaitable for AsyncPublisher
        (queued on ``client`` when that is a pipeline)."""
        sharded = self._sharded
        args = publish_args(channel, batch, self._history, self._pubsub_prefix, sharded=sharded)
        keys = [stream_key(channel, self._key_prefix)]
        if idempotency is None:
            return self._script(keys=keys, args=args, client=client)
        keys.append(idempotency_key(channel, idempotency.key, self._key_prefix))
        args.append(idempotency.ttl_ms)
        return self._idempotent_script(keys=keys, args=args, client=client)

    def _node_pipeline(self, channel: str, make: Any) -> Any:
        """A pipeline on one connection to the channel's master (WAIT covers the writes of its
        own connection only): the client's own, or for a cluster a cached ``make(address)``."""
        target = self._redis
        if self._sharded:
            node = self._redis.get_node_from_key(stream_key(channel, self._key_prefix))
            address = (node.host, node.port)
            if address not in self._node_clients:
                self._node_clients[address] = make(address)
            target = self._node_clients[address]
        return target.pipeline(transaction=False)

    def _replicated(self, replies: list[Any]) -> list[str]:
        ids, acked = replies
        if acked < self._min_replicas:
            raise BackendUnavailable(
                f"published, but {acked} of {self._min_replicas} replicas acknowledged it in "
                f"{self._wait_ms} ms: a failover now could lose it"
            )
        return _decode_ids(ids)


class Publisher(_PublisherBase):
    """Blocking publisher. ``Publisher(url).publish("orders", {"sku": "A1"})`` returns the id."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        pubsub_prefix: str = DEFAULT_PUBSUB_PREFIX,
        history: HistoryLimits = DEFAULT_HISTORY,
        token: str | None = None,
        timeout: float = 5.0,
        min_replicas: int = 0,
        idempotency_ttl: float = DEFAULT_IDEMPOTENCY_TTL,
    ) -> None:
        """``min_replicas``: a publish returns only once that many replicas hold it (Redis
        ``WAIT``), else raises BackendUnavailable; it then survives a failover."""
        super().__init__(
            url,
            key_prefix=key_prefix,
            pubsub_prefix=pubsub_prefix,
            history=history,
            token=token,
            timeout=timeout,
            min_replicas=min_replicas,
            idempotency_ttl=idempotency_ttl,
        )
        if self._http is None:
            self._target = parse_redis_url(url)
            self._use_redis(sync_client(self._target, socket_timeout=timeout))

    def publish(
        self,
        channel: str,
        message: Any,
        *,
        event: str | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        ids = self.publish_many(channel, [message], event=event, idempotency_key=idempotency_key)
        return ids[0]

    def publish_many(
        self,
        channel: str,
        messages: Iterable[Any],
        *,
        event: str | None = None,
        idempotency_key: str | None = None,
    ) -> list[str]:
        """Publish a batch atomically and in order (one round trip); returns the ids in order.

        With ``idempotency_key``, the same key on the same channel publishes once within
        ``idempotency_ttl`` seconds; a retry gets the first publish's ids back."""
        batch = prepare(channel, messages, event)
        key = self._idempotency(idempotency_key)
        if self._http is not None:
            return self._http.publish(channel, batch, key)
        with _redis_errors():
            if not self._min_replicas:
                return _decode_ids(self._call_script(channel, batch, idempotency=key))
            pipe = self._node_pipeline(channel, self._make_node_client)
            self._call_script(channel, batch, client=pipe, idempotency=key)
            pipe.execute_command("WAIT", self._min_replicas, self._wait_ms)
            return self._replicated(pipe.execute())

    def _make_node_client(self, address: tuple[str, int]) -> Any:
        assert self._target is not None
        return node_client(self._target, address, socket_timeout=self._timeout)

    def close(self) -> None:
        for client in self._node_clients.values():
            client.close()
        if self._redis is not None:
            self._redis.close()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncPublisher(_PublisherBase):
    """The asyncio twin of :class:`Publisher`; ``await publisher.publish(...)``.

    ``client`` lets the gateway hand in its own redis-py asyncio client (then ``url`` is unused).
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        pubsub_prefix: str = DEFAULT_PUBSUB_PREFIX,
        history: HistoryLimits = DEFAULT_HISTORY,
        token: str | None = None,
        timeout: float = 5.0,
        client: Any = None,
        min_replicas: int = 0,
        idempotency_ttl: float = DEFAULT_IDEMPOTENCY_TTL,
    ) -> None:
        super().__init__(
            DEFAULT_URL if client is not None else url,
            key_prefix=key_prefix,
            pubsub_prefix=pubsub_prefix,
            history=history,
            token=token,
            timeout=timeout,
            min_replicas=min_replicas,
            idempotency_ttl=idempotency_ttl,
        )
        self._owns_client = client is None
        if client is not None:
            self._use_redis(client)
        elif self._http is None:
            self._target = parse_redis_url(url)
            self._use_redis(async_client(self._target, socket_timeout=timeout))

    async def publish(
        self,
        channel: str,
        message: Any,
        *,
        event: str | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        ids = await self.publish_many(
            channel, [message], event=event, idempotency_key=idempotency_key
        )
        return ids[0]

    async def publish_many(
        self,
        channel: str,
        messages: Iterable[Any],
        *,
        event: str | None = None,
        idempotency_key: str | None = None,
    ) -> list[str]:
        batch = prepare(channel, messages, event)
        return await self.publish_encoded(channel, batch, self._idempotency(idempotency_key))

    async def publish_encoded(
        self,
        channel: str,
        batch: list[tuple[str, bytes]],
        idempotency: Idempotency | None = None,
    ) -> list[str]:
        """Publish ``(event, compact JSON)`` pairs already validated by :func:`prepare`."""
        if self._http is not None:
            return await asyncio.to_thread(self._http.publish, channel, batch, idempotency)
        with _redis_errors():
            if not self._min_replicas:
                return _decode_ids(await self._call_script(channel, batch, idempotency=idempotency))
            if self._sharded:
                await self._redis.initialize()  # a no-op once the slot map is known
            pipe = self._node_pipeline(channel, self._make_node_client)
            await self._call_script(
                channel, batch, client=pipe, idempotency=idempotency
            )  # queues it on the pipeline
            pipe.execute_command("WAIT", self._min_replicas, self._wait_ms)
            return self._replicated(await pipe.execute())

    def _make_node_client(self, address: tuple[str, int]) -> Any:
        if self._target is None:
            raise PublishError("min_replicas on a cluster needs the publisher to own its client")
        return node_client(self._target, address, asyncio=True, socket_timeout=self._timeout)

    async def publish_pipelined(
        self, batches: list[tuple[str, list[tuple[str, bytes]]]]
    ) -> list[list[str] | PublishError]:
        """Several ``(channel, encoded batch)`` publishes in one pipelined round trip (Redis only).

        Each batch stays atomic; the batches run in order. A failure of one batch is returned in
        its place; a transport failure raises BackendUnavailable for all of them.
        """
        if self._redis is None:
            raise PublishError("pipelined publishing needs a Redis URL")
        if self._min_replicas:  # a pipeline may span cluster nodes: one WAIT cannot cover it
            raise PublishError("pipelined publishing does not support min_replicas")
        pipe = self._redis.pipeline(transaction=False)
        for channel, batch in batches:
            await self._call_script(channel, batch, client=pipe)  # queues it on the pipeline
        with _redis_errors():
            replies = await pipe.execute(raise_on_error=False)
        return [
            PublishError(f"redis refused the publish: {reply}")
            if isinstance(reply, Exception)
            else _decode_ids(reply)
            for reply in replies
        ]

    async def aclose(self) -> None:
        for client in self._node_clients.values():
            await client.aclose()
        if self._redis is not None and self._owns_client:
            await self._redis.aclose()

    async def __aenter__(self) -> AsyncPublisher:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
