"""Reading Mercure requests: a subscription's selectors, a publish form. Bad input -> 400/413.

One rule per field, from the spec (v0.24.2 and draft-08 agree on these):

* topics and ids must be UTF-8 without control or format characters; ids must not start with
  ``#`` (the hub's own id space) nor be ``earliest``; ``retry`` is ASCII digits only;
* ``type: mercure`` and topics in the hub's own namespace (``/.well-known/mercure/...``,
  resolved, dot segments removed) are reserved for subscription events; ``*`` is no topic;
* any query parameter in the ``match`` namespace that names no matcher type we serve is a 400.
"""

from __future__ import annotations

import posixpath
import unicodedata
import uuid
from urllib.parse import parse_qsl, unquote, urljoin, urlsplit

from gateway.errors import ClientError
from gateway.mercure.selectors import Matcher, SelectorError, compile_matcher
from gateway.mercure.update import Update

__all__ = ["HUB_PATH", "parse_selectors", "parse_update", "reserved_topic"]

HUB_PATH = "/.well-known/mercure"
SELECTOR_PARAMETERS = {
    "topic": "template",
    "match": "exact",
    "match_exact": "exact",
    "match_urlpattern": "urlpattern",
}
FORM = "application/x-www-form-urlencoded"


def bad(code: str, detail: str, status: int = 400) -> ClientError:
    return ClientError(status, code, detail)


def check_text(value: str, what: str) -> str:
    """No C0/C1 controls, DEL or format (Cf) characters: they would break SSE framing or hide."""
    for char in value:
        if ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F or unicodedata.category(char) == "Cf":
            raise bad("invalid_" + what, f"the {what} contains a control or format character")
    return value


def parse_selectors(
    items: list[tuple[str, str]], base: str, limit: int
) -> list[tuple[str, str, Matcher]]:
    """``(kind, selector, matcher)`` for every selector parameter, in order."""
    selectors: list[tuple[str, str, Matcher]] = []
    for name, value in items:
        kind = SELECTOR_PARAMETERS.get(name)
        if kind is None:
            if name.lower().startswith("match"):
                raise bad("unknown_matcher", f"unsupported matcher parameter {name!r}")
            continue
        try:
            matcher = compile_matcher(kind, check_text(value, "selector"), base)
        except SelectorError as exc:
            raise bad("invalid_selector", str(exc)) from None
        selectors.append((kind, value, matcher))
    if not selectors:
        raise bad("missing_topic", "subscribe to at least one topic: ?topic=... or ?match=...")
    if len(selectors) > limit:
        raise bad("too_many_topics", f"{len(selectors)} selectors; at most {limit}")
    return selectors


def parse_update(body: bytes, content_type: str | None, base: str, limit: int) -> Update:
    if (content_type or "").split(";")[0].strip().lower() != FORM:
        raise bad("unsupported_media_type", f"publish as {FORM}", 415)
    try:
        fields = parse_qsl(body.decode("utf-8", "strict"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        raise bad("invalid_form", "the form is not valid UTF-8 form data") from None
    topics = tuple(check_text(value, "topic") for name, value in fields if name == "topic")
    if not topics:
        raise bad("missing_topic", "an update needs at least one topic field")
    if len(topics) > limit:
        raise bad("too_many_topics", f"{len(topics)} topics; at most {limit}", 413)
    for topic in topics:
        if topic == "*" or reserved_topic(topic, base):
            raise bad("reserved_topic", f"{topic!r} is reserved for the hub")
    form = dict(fields)  # single-valued fields: the last one wins, as in Go's url.Values.Get
    return Update(
        id=_id(form.get("id")),
        topics=topics,
        data=form.get("data", ""),
        private="private" in form,
        type=_type(form.get("type")),
        retry=_retry(form.get("retry")),
    )


def reserved_topic(topic: str, base: str) -> bool:
    try:
        path = urlsplit(urljoin(base, topic)).path
    except ValueError:
        return False
    path = posixpath.normpath(unquote(path)) if path else ""
    return path == HUB_PATH or path.startswith(HUB_PATH + "/")


def _id(value: str | None) -> str:
    if value is None or value == "":
        return f"urn:uuid:{uuid.uuid4()}"
    if value.startswith("#") or value == "earliest":
        raise bad("invalid_id", "an id must not start with '#' nor be 'earliest'")
    return check_text(value, "id")


def _type(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if value == "mercure":
        raise bad("invalid_type", "the type 'mercure' is reserved for subscription events")
    return check_text(value, "type")


def _retry(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    if not value.isascii() or not value.isdigit() or len(value) > 10:
        raise bad("invalid_retry", "retry must be a number of milliseconds (digits only)")
    return int(value)
