"""A Mercure subscription on our stream: one filter and one format per subscriber, nothing else.

Every Mercure update is an entry of one log channel (:data:`LOG`), so a Mercure subscriber is an
ordinary subscription to that channel - same hub fan-out, buffers, replay, resume, heartbeat, send
timeout and drain as our own streams. What differs is decided here, per subscription:

* :class:`MercureView` - does this update reach this subscriber? Any topic (canonical or alternate)
  matches any of its selectors (compiled once, when it subscribes), and a private update needs a
  subscribe right matching any of its topics.
* :class:`MercureFormat` - the bytes: the update's frame, built once per process
  (gateway.mercure.update), or nothing when the view refuses it. No ``id:`` preamble: Mercure ids
  are the publishers', and the subscription's cursor (a log position) stays server-side.

Divergence, on purpose: the filter runs where the frame is rendered, so updates a subscriber will
not receive still pass through its buffer on their way (they count against its limits). Filtering
before the buffer needs a per-subscription hook in the hub's fan-out, which the transport rewrite
can offer; ``MercureView.accepts`` is the function to call there.
"""

from __future__ import annotations

from typing import Final

from sse_starlette.event import ServerSentEvent

from gateway.events import SSE, Event
from gateway.mercure.auth import MercureGrant
from gateway.mercure.selectors import Matcher, any_matches
from gateway.mercure.update import Update, decode_update

__all__ = ["LOG", "MercureFormat", "MercureView"]

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


class MercureFormat:
    """A StreamFormat (gateway.events) for one Mercure subscriber."""

    media_type = "text/event-stream"

    def __init__(self, view: MercureView) -> None:
        self.view = view

    def event(self, event: Event, id_line: str | None) -> bytes:
        decoded = decode_update(event.data)
        if decoded is None or not self.view.accepts(decoded.update):
            return b""
        return decoded.frame

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
