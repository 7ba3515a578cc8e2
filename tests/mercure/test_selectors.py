"""Selector matching rules, in-process: URI Templates (RFC 6570), exact, URL patterns, ``*``."""

from __future__ import annotations

import time

import pytest

from gateway.mercure.selectors import SelectorError, compile_matcher
from gateway.mercure.uritemplate import TemplateError, compile_template

BASE = "https://hub.test/.well-known/mercure"


@pytest.mark.parametrize(
    ("template", "matching", "not_matching"),
    [
        (
            "https://e.test/books/{id}",
            ["https://e.test/books/1", "https://e.test/books/"],
            ["https://e.test/books/1/2", "https://e.test/books/a?b"],
        ),
        ("https://e.test/{+path}", ["https://e.test/a/b?c=d#e"], ["https://x.test/a"]),
        (
            "https://e.test/u{/seg*}",
            ["https://e.test/u/a/b/c", "https://e.test/u"],
            ["https://e.test/u/a?b"],
        ),
        (
            "https://e.test/s{?q,lang}",
            ["https://e.test/s?q=cat&lang=en", "https://e.test/s"],
            ["https://e.test/s?q=a b"],
        ),
        (
            "https://e.test/users/foo/{?topic}",
            ["https://e.test/users/foo/?topic=https%3A%2F%2Fe.test%2Fbooks%2F1"],
            ["https://e.test/users/bar/?topic=x"],
        ),
        ("{host}.e.test{#frag}", ["www.e.test#top", "www.e.test"], ["www.e.test/x"]),
        ("map{;x,y}", ["map;x=1;y=2", "map"], ["map;=1"]),
        ("x{.ext}", ["x.json", "x.tar.gz"], ["x/json"]),
    ],
)
def test_uri_template_matches_its_expansions_only(template, matching, not_matching):
    matches = compile_template(template)
    assert all(matches(value) for value in matching)
    assert not any(matches(value) for value in not_matching)


@pytest.mark.parametrize("template", ["a{b", "a}b", "a{b c}", "a{}"])
def test_invalid_templates_are_refused_and_then_compared_exactly(template):
    with pytest.raises(TemplateError):
        compile_template(template)
    matcher = compile_matcher("template", template, BASE)
    assert matcher(template) and not matcher(template + "x")


def test_a_template_also_matches_itself_and_star_matches_everything():
    assert compile_matcher("template", "https://e.test/{id}", BASE)("https://e.test/{id}")
    for kind in ("template", "exact", "urlpattern"):
        assert compile_matcher(kind, "*", BASE)("anything at all")


def test_exact_is_byte_for_byte():
    matcher = compile_matcher("exact", "https://e.test/{id}", BASE)
    assert matcher("https://e.test/{id}") and not matcher("https://e.test/1")


def test_url_patterns_relative_to_the_hub_and_topics_that_are_no_urls():
    matcher = compile_matcher("urlpattern", "/.well-known/mercure/subscriptions/:t/:s", BASE)
    assert matcher("/.well-known/mercure/subscriptions/a/b")
    assert matcher("https://hub.test/.well-known/mercure/subscriptions/a/b")
    assert not matcher("https://other.test/.well-known/mercure/subscriptions/a/b")
    assert not compile_matcher("urlpattern", "https://e.test/:id", BASE)("not a url\x7f")
    with pytest.raises(SelectorError):
        compile_matcher("urlpattern", "https://e.test/(", BASE)


def test_matching_stays_linear_on_hostile_input():
    matcher = compile_template("{a}{b}{c}{/d*}{?e,f}{.g}")
    hostile = "a" * 20_000 + "!"
    started = time.perf_counter()
    assert not matcher(hostile)
    assert time.perf_counter() - started < 2.0  # generous: a backtracking blow-up takes hours
