"""gateway.history: pages forwards and backwards, and the resume's gap rule, on fakeredis."""

from __future__ import annotations

import pytest

from gateway.broker.redis import RedisBroker
from gateway.history import page_after, page_before
from publisher import AsyncPublisher

pytestmark = pytest.mark.timeout(10)


async def _publish(publisher: AsyncPublisher, channel: str, n: int) -> list[str]:
    return await publisher.publish_many(channel, [{"n": i} for i in range(n)])


async def test_forward_pages_chain_with_next_until_null(
    broker: RedisBroker, publisher: AsyncPublisher
) -> None:
    ids = await _publish(publisher, "h1", 5)
    first = await page_after(broker, "h1", "0-0", 2)
    assert [e.id for e in first.entries] == ids[:2]
    assert (first.next, first.truncated, first.prev) == (ids[1], False, None)
    second = await page_after(broker, "h1", first.next or "", 2)
    third = await page_after(broker, "h1", second.next or "", 2)
    assert [e.id for e in second.entries + third.entries] == ids[2:]
    assert third.next is None
    assert second.prev == ids[2]


async def test_forward_page_from_the_newest_id_is_empty_and_whole(
    broker: RedisBroker, publisher: AsyncPublisher
) -> None:
    ids = await _publish(publisher, "h2", 2)
    page = await page_after(broker, "h2", ids[-1], 10)
    assert (page.entries, page.next, page.truncated) == ([], None, False)


async def test_forward_page_after_trimmed_history_is_truncated(
    broker: RedisBroker, publisher: AsyncPublisher, redis_client
) -> None:
    ids = await _publish(publisher, "h3", 6)
    await redis_client.xtrim("sse:stream:{h3}", maxlen=3, approximate=False)
    page = await page_after(broker, "h3", ids[0], 10)
    assert page.truncated
    assert [e.id for e in page.entries] == ids[3:]  # what history still holds
    whole = await page_after(broker, "h3", ids[2], 10)
    assert not whole.truncated  # ids[3] names ids[2]: nothing lost after it


async def test_forward_page_past_the_newest_id_is_truncated(
    broker: RedisBroker, publisher: AsyncPublisher, redis_client
) -> None:
    ids = await _publish(publisher, "h4", 2)
    await redis_client.delete("sse:stream:{h4}")  # expired or lost with Redis
    page = await page_after(broker, "h4", ids[-1], 10)
    assert page.entries == [] and page.truncated


async def test_backward_pages_from_the_newest(
    broker: RedisBroker, publisher: AsyncPublisher
) -> None:
    ids = await _publish(publisher, "h5", 5)
    newest = await page_before(broker, "h5", None, 2)
    assert [e.id for e in newest.entries] == ids[3:]
    assert (newest.prev, newest.next, newest.truncated) == (ids[3], None, False)
    older = await page_before(broker, "h5", newest.prev, 2)
    assert [e.id for e in older.entries] == ids[1:3]
    assert older.next == ids[2]
    oldest = await page_before(broker, "h5", older.prev, 2)
    assert [e.id for e in oldest.entries] == ids[:1]
    assert (oldest.prev, oldest.truncated) == (None, False)


async def test_backward_page_reaching_trimmed_start_is_truncated(
    broker: RedisBroker, publisher: AsyncPublisher, redis_client
) -> None:
    ids = await _publish(publisher, "h6", 6)
    await redis_client.xtrim("sse:stream:{h6}", maxlen=2, approximate=False)
    page = await page_before(broker, "h6", None, 10)
    assert [e.id for e in page.entries] == ids[4:]
    assert page.truncated and page.prev is None
    before_all = await page_before(broker, "h6", ids[4], 10)
    assert before_all.entries == [] and before_all.truncated


async def test_empty_channel_has_an_empty_whole_page(broker: RedisBroker) -> None:
    assert not (await page_before(broker, "h7", None, 10)).truncated
    assert not (await page_after(broker, "h7", "0-0", 10)).truncated


async def test_ids_at_the_ends_of_the_id_space_answer_empty_pages(
    broker: RedisBroker, publisher: AsyncPublisher
) -> None:
    await _publish(publisher, "h8", 1)
    # Redis refuses the intervals "(0-0" as an end and "(max-max" as a start: found by schemathesis
    assert (await page_before(broker, "h8", "0-0", 10)).entries == []
    last = f"{(1 << 64) - 1}-{(1 << 64) - 1}"
    page = await page_after(broker, "h8", last, 10)
    assert page.entries == [] and page.truncated  # a position past anything history had
