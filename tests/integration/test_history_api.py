"""GET /history/{channel} on real gateways: any replica pages what any other published, and a
page after trimmed history says so (truncated) with what history still holds."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.support.gateway_process import replicas

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture(scope="module")
def pair(redis_server, tmp_path_factory):
    logs = tmp_path_factory.mktemp("history")
    env = {"GATEWAY_AUTH": "off", "GATEWAY_HISTORY_MAX_AGE": "1", "GATEWAY_HISTORY_PAGE_MAX": "3"}
    with replicas(redis_server.url, logs, env) as gateways:
        yield gateways


def _publish(url: str, channel: str, body: bytes) -> list[str]:
    answer = httpx.post(
        f"{url}/publish/{channel}", content=body, headers={"content-type": "application/x-ndjson"}
    )
    assert answer.status_code == 202
    return list(answer.json()["ids"])


def _history(url: str, channel: str, **query: str | int) -> dict:
    answer = httpx.get(f"{url}/history/{channel}", params=query)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_pages_forwards_and_backwards_on_another_replica(pair) -> None:
    one, two = pair
    ids = _publish(one.url, "hist1", b'{"n":0}\n{"n":1}\n{"n":2}\n{"n":3}\n')
    page = _history(two.url, "hist1", after="0-0", limit=100)  # capped at the page max, 3
    assert [e["id"] for e in page["events"]] == ids[:3]
    assert page["events"][0] == {"id": ids[0], "event": "", "data": {"n": 0}}
    assert (page["next"], page["truncated"]) == (ids[2], False)
    rest = _history(two.url, "hist1", after=page["next"])
    assert [e["id"] for e in rest["events"]] == ids[3:] and rest["next"] is None
    newest = _history(two.url, "hist1", limit=2)
    assert [e["id"] for e in newest["events"]] == ids[2:] and newest["prev"] == ids[2]
    older = _history(two.url, "hist1", before=newest["prev"], limit=2)
    assert [e["id"] for e in older["events"]] == ids[:2] and older["prev"] is None


def test_after_trimmed_history_the_page_is_truncated(pair) -> None:
    one, two = pair
    old = _publish(one.url, "hist2", b'{"n":0}\n{"n":1}\n')
    time.sleep(1.3)  # GATEWAY_HISTORY_MAX_AGE=1: the next publish trims both
    new = _publish(one.url, "hist2", b'{"n":2}\n')
    page = _history(two.url, "hist2", after=old[0])
    assert page["truncated"] is True
    assert [e["id"] for e in page["events"]] == new  # what history still holds
    assert _history(two.url, "hist2", after=new[0])["truncated"] is False


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("after=nope", "invalid_id"),
        ("before=1-2-3", "invalid_id"),
        ("after=99999999999999999999-0", "invalid_id"),
        ("limit=0", "invalid_request"),
        ("limit=x", "invalid_request"),
        ("after=" + "1" * 100, "invalid_request"),
    ],
)
def test_bad_queries_are_a_clear_400(pair, query: str, code: str) -> None:
    answer = httpx.get(f"{pair[0].url}/history/hist3?{query}")
    assert answer.status_code == 400
    assert answer.json()["error"] == code


def test_bad_channel_is_a_clear_400(pair) -> None:
    answer = httpx.get(f"{pair[0].url}/history/__keyspace")
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_channel")
