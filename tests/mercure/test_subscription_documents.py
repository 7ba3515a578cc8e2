"""Subscription event documents in both dialects (in-process)."""

from __future__ import annotations

import json

from gateway.mercure.subscriptions import subscription_document, subscription_event


def test_legacy_document_is_json_ld_with_encoded_ids():
    doc = subscription_document("template", "https://e.test/{id}", "urn:uuid:1", {"a": 1})
    assert doc == {
        "@context": "https://mercure.rocks/",
        "id": "/.well-known/mercure/subscriptions/https%3A%2F%2Fe.test%2F%7Bid%7D/urn%3Auuid%3A1",
        "type": "Subscription",
        "topic": "https://e.test/{id}",
        "subscriber": "urn:uuid:1",
        "active": True,
        "payload": {"a": 1},
    }
    update = subscription_event(doc)
    assert update.private and update.type is None and update.topics == (doc["id"],)


def test_draft08_document_names_the_matcher_type_and_uses_the_mercure_event_type():
    doc = subscription_document("urlpattern", "https://e.test/:id", "urn:uuid:2", None)
    assert doc["id"] == (
        "/.well-known/mercure/subscriptions/urlpattern/https%3A%2F%2Fe.test%2F%3Aid/urn%3Auuid%3A2"
    )
    assert (doc["type"], doc["match_type"], doc["match"]) == (
        "subscription",
        "urlpattern",
        "https://e.test/:id",
    )
    assert "payload" not in doc
    update = subscription_event(doc | {"active": False})
    assert update.type == "mercure" and json.loads(update.data)["active"] is False
