"""The cluster form of the wire format: the shard channel shares its stream key's slot."""

from __future__ import annotations

from redis.crc import key_slot

from gateway.broker.slots import channel_slot
from publisher.wire import (
    INDEXED_PUBLISH_SCRIPT,
    PUBLISH_SCRIPT,
    SHARDED_INDEXED_PUBLISH_SCRIPT,
    SHARDED_PUBLISH_SCRIPT,
    index_keys,
    publish_args,
    shard_channel,
    stream_key,
)


def test_the_shard_channel_hashes_to_the_stream_keys_slot():
    for channel in ("orders", "a", "room:42", "x.y-z_1", "{odd"):
        slot = key_slot(stream_key(channel, "any:prefix:").encode())
        assert key_slot(shard_channel(channel, "pfx.").encode()) == slot
        assert channel_slot(channel) == slot
        assert {key_slot(key.encode()) for key in index_keys(channel, "any:prefix:")} == {slot}


def test_the_sharded_script_differs_only_in_how_it_announces():
    assert SHARDED_PUBLISH_SCRIPT.replace("'SPUBLISH'", "'PUBLISH'") == PUBLISH_SCRIPT
    assert "redis.call('SPUBLISH'," in SHARDED_PUBLISH_SCRIPT
    # Mercure's indexed publish: the same derivation, the index tail untouched.
    assert (
        SHARDED_INDEXED_PUBLISH_SCRIPT.replace("'SPUBLISH'", "'PUBLISH'") == INDEXED_PUBLISH_SCRIPT
    )
    assert "'PUBLISH'" not in SHARDED_INDEXED_PUBLISH_SCRIPT


def test_publish_args_name_the_shard_channel_when_sharded():
    assert publish_args("c", [], pubsub_prefix="p:")[0] == "p:c"
    assert publish_args("c", [], pubsub_prefix="p:", sharded=True)[0] == "p:{c}"
