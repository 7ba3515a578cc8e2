"""The conformance runner's own logic, on data of ours (the suite itself is not in the repo, see
docs/mercure-conformance.md): the suite's tokens are re-signed with nothing but the key
changed, a token signed with another key stops the run, and Playwright's JSON report is read
into one outcome per test."""

from __future__ import annotations

import jwt
import pytest

from tests.mercure.conformance import DEV_KEY, RUN_KEY, TOKEN_RE, outcomes, resign, summary


def test_resign_keeps_header_and_claims_and_changes_only_the_key() -> None:
    claims = {"mercure": {"publish": ["*"], "subscribe": ["https://example.test/{id}"]}}
    legacy = jwt.encode(claims, DEV_KEY, algorithm="HS256", headers={"typ": None})
    access = jwt.encode({"aud": "x", "exp": 4102444800}, DEV_KEY, headers={"typ": "at+jwt"})
    for token in (legacy, access):
        spec = f'Authorization: "Bearer {token}",'
        resigned = TOKEN_RE.sub(resign, spec)
        [new] = TOKEN_RE.findall(resigned)
        assert resigned == spec.replace(token, new)
        assert jwt.get_unverified_header(new) == jwt.get_unverified_header(token)
        options = {"verify_aud": False}
        assert jwt.decode(new, RUN_KEY, algorithms=["HS256"], options=options) == jwt.decode(
            token, DEV_KEY, algorithms=["HS256"], options=options
        )


def test_a_token_not_signed_with_the_dev_key_stops_the_run() -> None:
    stranger = jwt.encode({"mercure": {"publish": ["*"]}}, "another-key-" * 4, algorithm="HS256")
    with pytest.raises(jwt.InvalidSignatureError):
        TOKEN_RE.sub(resign, stranger)


def test_outcomes_read_nested_suites_and_summary_lists_failures() -> None:
    report = {
        "suites": [
            {
                "title": "mercure.spec.ts",
                "specs": [],
                "suites": [
                    {
                        "title": "Publish update",
                        "specs": [
                            {"title": "raw string", "tests": [{"status": "expected"}]},
                            {"title": "private URI", "tests": [{"status": "unexpected"}]},
                        ],
                    }
                ],
            }
        ]
    }
    found = outcomes(report)
    assert found == {
        "Publish update > raw string": "expected",
        "Publish update > private URI": "unexpected",
    }
    assert summary(found).splitlines() == [
        "1 passed, 1 failed",
        "  PASS Publish update > raw string",
        "  FAIL Publish update > private URI",
    ]
