"""The per-subscription Mercure format and filter, in-process on real hub events."""

from __future__ import annotations

from gateway.events import Event
from gateway.mercure.auth import MercureGrant, Right
from gateway.mercure.selectors import compile_matcher
from gateway.mercure.stream import LOG, MERCURE, MercureView
from gateway.mercure.update import Update, encode_update

BASE = "https://hub.test/.well-known/mercure"


def _event(update: Update, seq: int = 1) -> Event:
    return Event(LOG, f"{seq}-0", (seq, 0), "", encode_update(update))


def _view(*selectors: str, readable: tuple[str, ...] = ()) -> MercureView:
    rights = tuple(Right("template", s, compile_matcher("template", s, BASE)) for s in readable)
    matchers = tuple(compile_matcher("template", s, BASE) for s in selectors)
    return MercureView(matchers, MercureGrant(subscribe=rights))


def test_frame_has_publisher_id_type_retry_and_one_data_line_per_line():
    update = Update("urn:x:1", ("a",), "one\r\ntwo\rthree\nfour", type="t", retry=10)
    frame = MERCURE.event(_event(update), None)
    assert frame == (
        b"id: urn:x:1\nevent: t\ndata: one\ndata: two\ndata: three\ndata: four\nretry: 10\n\n"
    )


def test_filter_by_any_topic_and_private_by_any_readable_topic():
    public = _event(Update("1", ("b", "alt/1"), "d"))
    private = _event(Update("2", ("b", "alt/1"), "d", private=True), 2)
    assert _view("alt/{id}").admits(public)
    assert not _view("c").admits(public)
    assert not _view("b").admits(private)
    assert _view("b", readable=("alt/{n}",)).admits(private)


def test_no_gap_events_and_no_id_preamble():
    assert MERCURE.gap(LOG, "truncated", "1-0", "1-0") == b""
    assert MERCURE.preamble(3000, "5-0") == b"retry: 3000\n\n"
    foreign = Event(LOG, "9-0", (9, 0), "", b'{"not":"mercure"}')
    assert not MERCURE.event(foreign, None)
    assert not _view("a").admits(foreign)
