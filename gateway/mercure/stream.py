"""A Mercure subscription on our stream: one filter and one format per subscriber, nothing else.

Every Mercure update is an entry of one log channel (:data:`LOG`), so a Mercure subscriber is an
ordinary subscription to that channel - same hub fan-out, buffers, replay, resume, heartbeat, send
timeout and drain as our own streams. What differs is decided here, per subscription:

* :class:`MercureView` - does this update reach this subscriber? Any topic (canonical or alternate)
  matches any of its selectors (compiled once, when it subscribes), and a private update needs a
  subscribe right matching any of its topics. :meth:`MercureView.admits` is the subscription's
  ``accepts`` (gateway.subscription): the hub asks it before pushing a live update and the replay
  before rendering one, so an update a subscriber will not receive never enters its buffer, and a
  subscriber that receives nothing keeps getting keepalives on a busy log. Such a subscription is
  never written to directly with a frame shared by the channel's other streams (gateway.hub).
* :class:`MercureFormat` - the bytes: the update's frame, built once per process
  (gateway.mercure.update). No ``id:`` preamble: Mercure ids are the publishers', and the
  subscription's cursor (a log position) stays server-side.
"""

from __future__ import annotations

from typing import Final

from sse_starlette.event import ServerSentEvent

from gateway.events import SSE, Event
from gateway.mercure.auth import MercureGrant
from gateway.mercure.selectors import Matcher, any_matches
from gateway.mercure.update import Update, decode_update

__all__ = ["LOG", "MERCURE", "MercureFormat", "MercureView"]

# The one log of every Mercure update. "@" keeps it out of reach of our own publish API (it is no
# valid channel name), so only the hub's publish endpoint can write it.
LOG: Final = "@mercure"


class MercureView:
    __slots__ = ("grant", "selectors")

    def __init__(self, selectors: tuple[Matcher, ...], grant: MercureGrant) -> None:
        self.selectors = selectors
        self.grant = grant

    def accepts(self, update: Update) -> bool:
        if not any_matches(self.selectors, update.topics):
            return False
        return not update.private or self.grant.may_read(update.topics)

    def admits(self, event: Event) -> bool:
        """:meth:`accepts` for a log entry; False for one this hub never wrote."""
        decoded = decode_update(event.data)
        return decoded is not None and self.accepts(decoded.update)


class MercureFormat:
    """The StreamFormat (gateway.events) of Mercure subscribers: what reaches it passed their
    :meth:`MercureView.admits`."""

    media_type = "text/event-stream"

    def event(self, event: Event, id_line: str | None) -> bytes:
        decoded = decode_update(event.data)
        return b"" if decoded is None else decoded.frame

    def gap(self, channel: str, reason: str, resumed_at: str, id_line: str) -> bytes:
        return b""  # Mercure has no gap event; the response's Last-Event-ID header is its signal

    def passthrough(self, item: bytes) -> bytes:
        return item

    def preamble(self, retry_ms: int, position: str) -> bytes:
        return ServerSentEvent(retry=retry_ms, sep="\n").encode()

    def farewell(self, reason: str | None) -> bytes:
        return SSE.farewell(reason)

    def unavailable(self, retry_ms: int) -> bytes:
        return SSE.unavailable(retry_ms)


MERCURE: Final = MercureFormat()  # stateless: one for every Mercure subscriber
