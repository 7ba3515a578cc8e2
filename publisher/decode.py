"""Reading a gateway stream (SSE or NDJSON) into typed items, with no I/O (sans-IO).

Both decoders take raw bytes as they arrive, in chunks cut anywhere, and return
:class:`Step` s in order. A step carries the item to hand to the caller (``None`` for steps that
only move the position, such as the stream's opening id-only frame) and the position
(``Last-Event-ID``) that resumes the stream right after it. The subscriber commits a position
only when its caller has the item, so a reconnect neither loses nor repeats anything.

The SSE decoder follows the WHATWG parsing rules at the byte level: lines end in CR, LF or CRLF
(a CR ends its line at once; an LF right after it, even in the next chunk, belongs to it), a
leading BOM is dropped, ``id`` with NUL is ignored, ``retry`` takes digits only, comments are
skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from publisher.errors import StreamProtocolError

__all__ = ["GAP_EVENT", "Gap", "Item", "Message", "NdjsonDecoder", "SseDecoder", "Step"]

GAP_EVENT: Final = "gateway.gap"
MAX_LINE: Final = 16 << 20  # a "line" longer than this is not a stream we understand


@dataclass(frozen=True, slots=True)
class Message:
    """One message. ``id`` is what resumes the stream after it (a vector on multi-channel)."""

    id: str
    channel: str
    event: str  # "message" when the producer gave no event name
    data: Any  # the message, decoded from JSON


@dataclass(frozen=True, slots=True)
class Gap:
    """History no longer covers what was missed on ``channel``: events between your last position
    and ``resumed_at`` are gone. Delivery continues after ``resumed_at``; reload state if needed."""

    id: str
    channel: str
    reason: str  # "truncated", "unknown" or "malformed"
    resumed_at: str


Item = Message | Gap


@dataclass(frozen=True, slots=True)
class Step:
    item: Item | None
    position: str | None  # None: the position does not change


class _Decoder:
    def __init__(self, channels: tuple[str, ...]) -> None:
        self.channels = channels
        self.retry_ms: int | None = None  # the server's reconnect hint, when it sent one
        self._buffer = b""

    def channel_of(self, id_: str) -> str:
        """Multi-channel ids are vectors whose first entry names the event's own channel."""
        if len(self.channels) == 1:
            return self.channels[0]
        return id_.split("=", 1)[0]

    def _check_size(self) -> None:
        if len(self._buffer) > MAX_LINE:
            raise StreamProtocolError(f"no line end after {MAX_LINE} bytes")


def _json(text: str | bytes, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise StreamProtocolError(f"{what} is not JSON: {exc}") from exc


class SseDecoder(_Decoder):
    media_type: Final = "text/event-stream"

    def __init__(self, channels: tuple[str, ...]) -> None:
        super().__init__(channels)
        self._started = False
        self._after_cr = False
        self._reset()

    def _reset(self) -> None:
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None

    def feed(self, chunk: bytes) -> list[Step]:
        self._buffer += chunk
        if self._started and b"\n" not in chunk and b"\r" not in chunk:
            self._check_size()  # a long line still arriving: do not rescan what we have
            return []
        steps: list[Step] = []
        while True:
            line = self._next_line()
            if line is None:
                self._check_size()
                return steps
            step = self._line(line)
            if step is not None:
                steps.append(step)

    def _next_line(self) -> str | None:
        buffer = self._buffer
        if not self._started:
            if len(buffer) < 3 and b"\xef\xbb\xbf".startswith(buffer):
                return None
            self._started = True
            buffer = buffer.removeprefix(b"\xef\xbb\xbf")
        if self._after_cr and buffer:
            # A CR ended the last line at once (no waiting); an LF right after it is its pair.
            buffer = buffer.removeprefix(b"\n")
            self._after_cr = False
        self._buffer = buffer
        lf, cr = buffer.find(b"\n"), buffer.find(b"\r")
        if lf == -1 and cr == -1:
            return None
        end = cr if lf == -1 or (cr != -1 and cr < lf) else lf
        self._after_cr = end == cr
        self._buffer = buffer[end + 1 :]
        return buffer[:end].decode("utf-8", "replace")

    def _line(self, line: str) -> Step | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> Step | None:
        data, event, id_ = self._data, self._event, self._id
        self._reset()
        if not data:
            return Step(None, id_) if id_ is not None else None
        if id_ is None:
            raise StreamProtocolError("an event without an id: not a gateway stream")
        payload = _json("\n".join(data), "event data")
        if event == GAP_EVENT:
            return Step(_gap(id_, payload), id_)
        return Step(Message(id_, self.channel_of(id_), event or "message", payload), id_)


def _gap(id_: str, fields: Any) -> Gap:
    try:
        return Gap(id_, str(fields["channel"]), str(fields["reason"]), str(fields["resumed_at"]))
    except (KeyError, TypeError) as exc:
        raise StreamProtocolError(f"malformed gap signal: {fields!r}") from exc


class NdjsonDecoder(_Decoder):
    """``{"type": ...}`` per line (see the gateway's ``gateway/ndjson.py``); unknown types are
    skipped so newer gateways can add kinds without breaking older clients."""

    media_type: Final = "application/x-ndjson"

    def feed(self, chunk: bytes) -> list[Step]:
        self._buffer += chunk
        if b"\n" not in chunk:
            self._check_size()  # a long line still arriving: do not rescan what we have
            return []
        *lines, self._buffer = self._buffer.split(b"\n")
        self._check_size()
        steps = [self._line(line) for line in lines if line.strip()]
        return [step for step in steps if step is not None]

    def _line(self, line: bytes) -> Step | None:
        value = _json(line, "stream line")
        try:
            return self._kind(value)
        except (KeyError, TypeError) as exc:
            raise StreamProtocolError(f"unreadable stream line: {line[:200]!r}") from exc

    def _kind(self, value: Any) -> Step | None:
        if not isinstance(value, dict):
            raise TypeError("not a JSON object")
        kind = value.get("type")
        if isinstance(value.get("retry"), int):
            self.retry_ms = value["retry"]
        if kind == "message":
            id_ = str(value["id"])
            channel = str(value.get("channel") or self.channel_of(id_))
            return Step(
                Message(id_, channel, str(value.get("event", "message")), value["data"]), id_
            )
        if kind == "gap":
            return Step(_gap(str(value["id"]), value), str(value["id"]))
        if kind == "open":
            return Step(None, str(value["id"]))
        return None  # keepalive, close, or a kind this client does not know
