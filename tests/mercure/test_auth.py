"""Every Mercure authorization rule, against a real gateway: where tokens come from, what each
dialect grants, private updates, anonymous access and a token's exp."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.mercure.conftest import (
    PUBLISHER_KEY,
    SUBSCRIBER_KEY,
    access_token,
    detail,
    legacy_token,
)
from tests.mercure.support import HUB, client_for_loopback, publish, subscribe, unique

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


async def _receives_private(url: str, topic: str, marker: str, **connect) -> bool:
    """Does this subscriber get a private update on ``topic``? A public one after it proves the
    stream was live and in order, so 'no' is a real no, not a timeout."""
    async with subscribe(url, [("topic", topic)], **connect) as stream:
        await publish(url, topic=topic, data=marker, private="on")
        await publish(url, topic=topic, data="public")
        first = await stream.next_event()
    assert first is not None
    return first.data == marker


async def test_private_update_reaches_only_subscribers_allowed_by_a_topic(hub):
    topic = unique()
    allowed = legacy_token(SUBSCRIBER_KEY, subscribe=[topic])
    other = legacy_token(SUBSCRIBER_KEY, subscribe=[unique()])
    assert await _receives_private(hub.url, topic, "secret", token=allowed)
    assert not await _receives_private(hub.url, topic, "secret", token=other)
    assert not await _receives_private(hub.url, topic, "secret")  # anonymous


async def test_private_update_through_an_alternate_topic(hub):
    root = unique()
    book = root + "/books/1"
    token = legacy_token(SUBSCRIBER_KEY, subscribe=[root + "/users/foo/{?topic}"])
    alternate = root + "/users/foo/?topic=" + book.replace(":", "%3A").replace("/", "%2F")
    async with subscribe(hub.url, [("topic", root + "/books/{id}")], token=token) as stream:
        await publish(hub.url, topic=root + "/books/2", data="not for foo", private="on")
        await publish(hub.url, topic=[book, alternate], data="for foo", private="on")
        event = await stream.next_event()
    assert event is not None and event.data == "for foo"


async def test_draft08_access_token_grants_by_authorization_details(hub):
    root = unique()
    token = access_token(
        SUBSCRIBER_KEY, [detail(["subscribe"], (root + "/users/42/*", "urlpattern"))]
    )
    params = [("match_urlpattern", root + "/books/:id")]
    async with subscribe(hub.url, params, token=token) as stream:
        await publish(hub.url, topic=root + "/books/2", data="no", private="on")
        await publish(
            hub.url, topic=[root + "/books/1", root + "/users/42/books/1"], data="yes", private=""
        )
        event = await stream.next_event()
    assert event is not None and event.data == "yes"


async def test_draft08_token_for_another_audience_is_refused(hub):
    token = access_token(
        SUBSCRIBER_KEY, [detail(["subscribe"], ("*", "exact"))], aud="https://other.test/"
    )
    async with client_for_loopback() as client:
        answer = await client.get(
            hub.url + HUB, params={"topic": "x"}, headers={"authorization": f"Bearer {token}"}
        )
    assert answer.status_code == 401
    assert "invalid_token" in answer.headers["www-authenticate"]


async def test_token_from_query_parameter_and_cookie(hub):
    topic = unique()
    token = legacy_token(SUBSCRIBER_KEY, subscribe=[topic])
    async with subscribe(hub.url, [("topic", topic), ("authorization", token)]) as stream:
        await publish(hub.url, topic=topic, data="via query", private="on")
        assert (await stream.next_event()).data == "via query"
    cookies = {"mercureAuthorization": token}
    assert await _receives_private(hub.url, topic, "via cookie", cookies=cookies)


async def test_header_wins_over_query_and_cookie(hub):
    topic = unique()
    good = legacy_token(SUBSCRIBER_KEY, subscribe=[topic])
    useless = legacy_token(SUBSCRIBER_KEY, subscribe=[])
    async with subscribe(
        hub.url,
        [("topic", topic), ("authorization", good)],
        token=useless,
        cookies={"mercureAuthorization": good},
    ) as stream:
        await publish(hub.url, topic=topic, data="private", private="on")
        await publish(hub.url, topic=topic, data="public")
        assert (await stream.next_event()).data == "public"


async def test_publisher_needs_a_right_on_every_topic(hub):
    root = unique()
    token = legacy_token(PUBLISHER_KEY, publish=[root + "/a/{id}"])
    async with subscribe(hub.url, [("topic", root + "/a/1")]) as stream:
        refused = await publish(hub.url, token=token, topic=[root + "/a/1", root + "/b"], data="x")
        assert refused.status_code == 403
        allowed = await publish(hub.url, token=token, topic=root + "/a/1", data="ok")
        assert allowed.status_code == 200
        assert (await stream.next_event()).data == "ok"  # the refused one was never dispatched


async def test_publisher_tokens_are_checked_with_the_publisher_key(hub):
    signed_by_subscriber_key = legacy_token(SUBSCRIBER_KEY, publish=["*"])
    answer = await publish(hub.url, token=signed_by_subscriber_key, topic=unique(), data="x")
    assert answer.status_code == 401
    assert (await publish(hub.url, token=None, topic=unique(), data="x")).status_code == 401
    draft = access_token(PUBLISHER_KEY, [detail(["publish"], ("*", "exact"))])
    assert (await publish(hub.url, token=draft, topic=unique(), data="x")).status_code == 200


async def test_bad_tokens_are_401(hub):
    for token in ("not-a-jwt", legacy_token("x" * 40, subscribe=["*"])):
        async with client_for_loopback() as client:
            answer = await client.get(
                hub.url + HUB, params={"topic": "x"}, headers={"authorization": f"Bearer {token}"}
            )
        assert answer.status_code == 401, token
        assert answer.json()["error"] == "invalid_token"


async def test_anonymous_subscribers_need_the_setting(redis_server, start_hub):
    closed = start_hub(redis_server.url)  # GATEWAY_MERCURE_ANONYMOUS unset: off
    async with client_for_loopback() as client:
        answer = await client.get(closed.url + HUB, params={"topic": "x"})
    assert answer.status_code == 401 and answer.headers["www-authenticate"].startswith("Bearer")


async def test_stream_closes_at_the_tokens_exp(hub):
    token = legacy_token(SUBSCRIBER_KEY, exp=time.time() + 2, subscribe=["*"])
    started = time.monotonic()
    async with subscribe(hub.url, [("topic", unique())], token=token) as stream:
        while await stream.next_frame(timeout=6) is not None:
            pass  # keepalives until the gateway ends the stream
    assert 1.0 < time.monotonic() - started < 5.0
    await asyncio.sleep(0)


async def test_weak_keys_only_with_the_setting(own_redis, start_gateway):
    sample = "!ChangeThisMercureHubJWTSecretKey!"  # the reference hub's sample key
    env = {"GATEWAY_MERCURE_PUBLISHER_JWT_KEY": sample, "GATEWAY_MERCURE_WEAK_JWT_KEYS": "true"}
    hub = start_gateway(own_redis.url, env=env)
    token = access_token(sample, [detail(["publish"], ("*", "exact"))])
    assert (await publish(hub.url, token=token, topic=unique(), data="x")).status_code == 200
    with pytest.raises(RuntimeError, match="exited"):
        start_gateway(own_redis.url, env={"GATEWAY_MERCURE_PUBLISHER_JWT_KEY": sample})
