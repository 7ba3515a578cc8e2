from __future__ import annotations

from gateway.cursor import format_vector, parse_last_event_id


def test_no_id_means_live() -> None:
    assert parse_last_event_id(None, ("a",)).positions == {}
    assert parse_last_event_id("", ("a",)).positions == {}


def test_bare_id_on_a_single_channel_stream() -> None:
    parsed = parse_last_event_id("5-1", ("a",))
    assert parsed.positions == {"a": "5-1"} and not parsed.malformed


def test_bare_id_on_a_multi_channel_stream_is_malformed() -> None:
    assert parse_last_event_id("5-1", ("a", "b")).malformed


def test_vector_ids_name_each_channel() -> None:
    parsed = parse_last_event_id("b=7-0,a=5-1,gone=1-0", ("a", "b", "c"))
    assert parsed.positions == {"a": "5-1", "b": "7-0"}  # c was never followed: starts live


def test_vector_id_also_resumes_a_single_channel_stream() -> None:
    assert parse_last_event_id("a=5-1,b=7-0", ("a",)).positions == {"a": "5-1"}


def test_malformed_ids() -> None:
    for raw in ("x", "a=x", "a=1-1,b", "a b=1-0", "=1-0", "a=1-1\nid: 2", "1-1" * 10_000):
        assert parse_last_event_id(raw, ("a", "b")).malformed, raw


def test_format_vector_puts_the_event_channel_first() -> None:
    ids = {"a": "1-0", "b": "2-0", "c": "3-0"}
    assert format_vector("b", ids) == "b=2-0,a=1-0,c=3-0"
    assert format_vector("a", {"a": "1-0"}) == "a=1-0"
