"""``Subscriber`` (blocking iterator) and ``AsyncSubscriber`` (async iterator) over gateway streams.

    with Subscriber("http://localhost:8000", ["orders", "alerts"]) as sub:
        for item in sub:
            if isinstance(item, Gap):
                reload_state(item.channel)      # events before item.resumed_at are gone
            else:
                handle(item.channel, item.data)

Both reconnect by themselves and resume from the last position they handed out (the multi-channel
vector id included), so across gateway restarts and replica switches nothing is lost or repeated
as long as history covers the outage; when it does not, the gateway's gap signal reaches the caller
as a :class:`Gap` item (or a :class:`~publisher.errors.GapError` with ``strict=True``).

Reconnects: after a stream ends cleanly, wait the server's ``retry:`` hint (x1..1.5, jittered;
capped at ``retry_max``);
after each failed attempt, double that (capped at ``retry_max``) with equal jitter, and move to the
next URL of the list. 4xx answers are not retried (:class:`~publisher.errors.Rejected`).

The I/O loops are thin; what they share (URLs, headers, positions, delays) is in ``_Session``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import AsyncGenerator, Callable, Generator, Iterator, Sequence
from contextlib import aclosing
from typing import Any, Literal
from urllib.parse import quote, urlencode

import httpx

from publisher.backoff import backoff_delay
from publisher.decode import Gap, Item, Message, NdjsonDecoder, SseDecoder
from publisher.errors import (
    BackendUnavailable,
    GapError,
    InvalidChannel,
    Rejected,
    StreamProtocolError,
)
from publisher.wire import is_valid_channel

__all__ = ["AsyncSubscriber", "Gap", "Item", "Message", "Subscriber"]

log = logging.getLogger("publisher.subscriber")

Format = Literal["sse", "ndjson"]
Token = str | Callable[[], str]  # a callable is asked again on every (re)connect: token refresh
Decoder = SseDecoder | NdjsonDecoder


class _Retry(Exception):
    """One attempt failed in a way worth retrying (transport error, 5xx, 429)."""

    def __init__(self, reason: str, after: float | None = None) -> None:
        super().__init__(reason)
        self.after = after


class _Session:
    """Everything a subscriber knows between connections; no I/O."""

    def __init__(
        self,
        urls: str | Sequence[str],
        channels: str | Sequence[str],
        *,
        last_event_id: str | None,
        token: Token | None,
        format: Format,
        retry_initial: float,
        retry_max: float,
        max_retries: int | None,
        headers: dict[str, str] | None,
    ) -> None:
        self.urls = [urls] if isinstance(urls, str) else list(urls)
        self.channels = (channels,) if isinstance(channels, str) else tuple(channels)
        if not self.urls:
            raise ValueError("give at least one gateway URL")
        for channel in self.channels or ("",):
            if not is_valid_channel(channel):
                raise InvalidChannel(f"invalid channel name {channel!r}")
        if format not in ("sse", "ndjson"):
            raise ValueError(f"format must be 'sse' or 'ndjson', not {format!r}")
        self.format = format
        self.last_event_id = last_event_id
        self.token = token
        self.extra_headers = headers or {}
        self.retry_initial, self.retry_max, self.max_retries = retry_initial, retry_max, max_retries
        self.index = 0
        self.failures = 0
        self.hint: float | None = None  # the server's retry: hint, seconds

    def decoder(self) -> Decoder:
        return SseDecoder(self.channels) if self.format == "sse" else NdjsonDecoder(self.channels)

    def url(self) -> str:
        base = self.urls[self.index].rstrip("/")
        if len(self.channels) == 1:
            return f"{base}/subscribe/{quote(self.channels[0])}"
        return f"{base}/subscribe?" + urlencode([("channel", c) for c in self.channels])

    def headers(self) -> dict[str, str]:
        accept = "text/event-stream" if self.format == "sse" else "application/x-ndjson"
        headers = {"accept": accept, "cache-control": "no-store", **self.extra_headers}
        if self.last_event_id:
            headers["last-event-id"] = self.last_event_id
        token = self.token() if callable(self.token) else self.token
        if token:
            headers["authorization"] = f"Bearer {token}"
        return headers

    def check(self, response: httpx.Response, body: bytes, media_type: str) -> None:
        """Raise Rejected (final), _Retry, or StreamProtocolError unless this is our stream."""
        status = response.status_code
        if status in (408, 429) or status >= 500:
            raise _Retry(f"HTTP {status}", _retry_after(response.headers.get("retry-after")))
        if status >= 400:
            raise Rejected(status, _json_or_text(body))
        content_type = response.headers.get("content-type", "")
        if status != 200 or not content_type.startswith(media_type):
            raise StreamProtocolError(f"expected {media_type}, got HTTP {status} {content_type!r}")

    def opened(self) -> None:
        self.failures = 0

    def failed(self, reason: str) -> None:
        self.failures += 1
        if self.max_retries is not None and self.failures > self.max_retries:
            raise BackendUnavailable(f"gave up after {self.failures} attempts: {reason}")
        self.index = (self.index + 1) % len(self.urls)  # try the next replica
        log.warning("subscription attempt failed (%s); retrying", reason)

    def delay(self, after: float | None = None) -> float:
        base = self.hint if self.hint is not None else self.retry_initial
        if self.failures == 0:
            return base * random.uniform(1.0, 1.5)
        return max(after or 0.0, backoff_delay(self.failures, max(base, 0.05), self.retry_max))

    def steps(self, decoder: Decoder, chunk: bytes) -> Iterator[Item]:
        """Items in order; the position moves as each one is handed out (never before)."""
        steps = decoder.feed(chunk)
        if decoder.retry_ms is not None:  # also from frames that yield nothing (a farewell)
            self.hint = min(decoder.retry_ms / 1000, self.retry_max)
        for step in steps:
            if step.position is not None and step.item is None:
                self.last_event_id = step.position
            if step.item is not None:
                self.last_event_id = step.position or self.last_event_id
                yield step.item


def _retry_after(value: str | None) -> float | None:
    try:
        return min(float(value), 300.0) if value else None
    except ValueError:
        return None


def _json_or_text(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def _timeout(connect: float, read: float | None) -> httpx.Timeout:
    return httpx.Timeout(connect, read=read, write=connect, pool=connect)


class _SubscriberBase:
    """The options and state both subscribers share; each adds its own client and iteration."""

    def __init__(
        self,
        url: str | Sequence[str],
        channels: str | Sequence[str],
        *,
        last_event_id: str | None = None,
        token: Token | None = None,
        format: Format = "sse",
        strict: bool = False,
        retry_initial: float = 1.0,
        retry_max: float = 30.0,
        max_retries: int | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float | None = 60.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        self._session = _Session(
            url, channels, last_event_id=last_event_id, token=token, format=format,
            retry_initial=retry_initial, retry_max=retry_max, max_retries=max_retries,
            headers=headers,
        )  # fmt: skip
        self._strict = strict
        self._timeout = _timeout(connect_timeout, read_timeout)
        self._closed = False
        self._open()

    def _open(self) -> None:
        """Make the HTTP client and the item generator (sync or async)."""
        raise NotImplementedError

    @property
    def last_event_id(self) -> str | None:
        """The position after the last item handed out: pass it to resume elsewhere."""
        return self._session.last_event_id

    def _checked(self, item: Item) -> Item:
        if self._strict and isinstance(item, Gap):
            raise GapError(item)
        return item


class Subscriber(_SubscriberBase):
    """Blocking iterator of :class:`Message` and :class:`Gap` items; see the module docstring.

    ``read_timeout`` must exceed the gateway's keepalive interval (15 s by default): a stream
    silent for longer is taken as dead and reconnected. Iterate and close from one thread.
    """

    def _open(self) -> None:
        self._client = httpx.Client(timeout=self._timeout)
        self._items = self._run()

    def __iter__(self) -> Subscriber:
        return self

    def __next__(self) -> Item:
        if self._closed:
            raise StopIteration
        return self._checked(next(self._items))

    def _run(self) -> Generator[Item, None, None]:
        session = self._session
        while not self._closed:
            after = None
            try:
                yield from self._attempt()
            except _Retry as exc:
                session.failed(str(exc))
                after = exc.after
            except httpx.TransportError as exc:
                session.failed(f"{type(exc).__name__}: {exc}")
            time.sleep(session.delay(after))

    def _attempt(self) -> Generator[Item, None, None]:
        session = self._session
        decoder = session.decoder()
        with self._client.stream("GET", session.url(), headers=session.headers()) as response:
            body = response.read() if response.status_code != 200 else b""
            session.check(response, body, decoder.media_type)
            session.opened()
            for chunk in response.iter_raw():
                yield from session.steps(decoder, chunk)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._items.close()
            self._client.close()

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncSubscriber(_SubscriberBase):
    """The asyncio twin of :class:`Subscriber`: ``async for item in sub``, ``await sub.aclose()``.

    Iterate from one task at a time.
    """

    def _open(self) -> None:
        self._client = httpx.AsyncClient(timeout=self._timeout)
        self._items = self._run()

    def __aiter__(self) -> AsyncSubscriber:
        return self

    async def __anext__(self) -> Item:
        if self._closed:
            raise StopAsyncIteration
        return self._checked(await anext(self._items))

    async def _run(self) -> AsyncGenerator[Item, None]:
        session = self._session
        while not self._closed:
            after = None
            try:
                async with aclosing(self._attempt()) as items:
                    async for item in items:
                        yield item
            except _Retry as exc:
                session.failed(str(exc))
                after = exc.after
            except httpx.TransportError as exc:
                session.failed(f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(session.delay(after))

    async def _attempt(self) -> AsyncGenerator[Item, None]:
        session = self._session
        decoder = session.decoder()
        request = self._client.stream("GET", session.url(), headers=session.headers())
        async with request as response:
            body = await response.aread() if response.status_code != 200 else b""
            session.check(response, body, decoder.media_type)
            session.opened()
            async for chunk in response.aiter_raw():
                for item in session.steps(decoder, chunk):
                    yield item

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._items.aclose()
            await self._client.aclose()

    async def __aenter__(self) -> AsyncSubscriber:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
