from __future__ import annotations

import pytest

from publisher.wire import (
    Envelope,
    HistoryLimits,
    decode_envelope,
    encode_envelope,
    encode_json,
    is_valid_channel,
    is_valid_event_name,
    parse_stream_id,
    stream_key,
)


@pytest.mark.parametrize("name", ["orders", "a", "A-1_b.c:d", "_x", "9", "x" * 128])
def test_valid_channel_names(name: str) -> None:
    assert is_valid_channel(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "-x",
        ".x",
        "a b",
        "a\nb",
        "a*",
        "a?",
        "__keyspace@0__:foo",
        "__redis__:invalidate",
        "a/b",
        "ü",
        "x" * 129,
        "a,b",
    ],
)
def test_invalid_channel_names(name: str) -> None:
    assert not is_valid_channel(name)


def test_event_names_reserve_the_gateway_prefix() -> None:
    assert is_valid_event_name("update")
    assert not is_valid_event_name("gateway.gap")
    assert not is_valid_event_name("bad\nname")
    assert not is_valid_event_name("")


def test_parse_stream_id() -> None:
    assert parse_stream_id("1732190000000-3") == (1732190000000, 3)
    assert parse_stream_id("0-0") == (0, 0)
    for bad in ("", "1", "1-", "-1", "a-1", "1-1-1", "99999999999999999999-0", " 1-1"):
        assert parse_stream_id(bad) is None


def test_envelope_round_trip_keeps_newlines_in_data() -> None:
    envelope = Envelope(id="5-0", prev="4-0", event="", data=b'{"a":"x\\ny"}')
    assert decode_envelope(encode_envelope(envelope)) == envelope


def test_raw_json_is_not_an_envelope() -> None:
    assert decode_envelope(b'{"a":1}') is None
    assert decode_envelope(b"#sse1\nonly-two\nfields") is None


def test_encode_json_is_compact_and_strict() -> None:
    assert encode_json({"a": [1, "é"]}) == '{"a":[1,"é"]}'.encode()
    with pytest.raises(ValueError):
        encode_json(float("nan"))
    with pytest.raises(TypeError):
        encode_json(object())


def test_stream_key_is_a_cluster_hash_tag() -> None:
    assert stream_key("orders") == "sse:stream:{orders}"


def test_history_limits_validate() -> None:
    with pytest.raises(ValueError):
        HistoryLimits(max_len=0)
