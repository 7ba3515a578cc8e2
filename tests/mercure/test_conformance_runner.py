"""The conformance runner's own logic, on data of ours (the suite itself is not in the repo, see
docs/mercure-conformance.md): Playwright's JSON report is read into one outcome per test."""

from __future__ import annotations

from tests.mercure.conformance import outcomes, summary


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
