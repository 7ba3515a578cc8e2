"""Topic selectors (0.x) and topic matchers (draft-08), compiled once, matched many times.

Three kinds, one rule each:

* ``template`` (0.x ``topic=`` and ``mercure.subscribe``/``publish`` claims): ``*``, then exact
  equality, then an RFC 6570 URI Template match (:mod:`gateway.mercure.uritemplate`).
* ``exact`` (draft-08 ``match=`` / ``match_exact=``, ``match_type`` absent or ``exact``): ``*`` or
  byte-for-byte equality.
* ``urlpattern`` (draft-08 ``match_urlpattern=``): ``*`` or the WHATWG URL Pattern, evaluated with
  the hub's URL as base for relative patterns and topics (PyPI ``urlpattern``, a binding of the
  Rust ``urlpattern`` crate, whose regex engine matches in linear time).

Compiled matchers are shared by every subscription holding the same selector (an LRU cache), so
10,000 subscribers to one template cost one compiled pattern.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Final

import urlpattern

from gateway.mercure.uritemplate import TemplateError, compile_template

__all__ = [
    "KINDS",
    "MAX_SELECTOR_LENGTH",
    "Matcher",
    "SelectorError",
    "any_matches",
    "compile_matcher",
]

Matcher = Callable[[str], bool]
KINDS: Final = ("template", "exact", "urlpattern")
MAX_SELECTOR_LENGTH: Final = 2048
WILDCARD: Final = "*"


class SelectorError(ValueError):
    """A selector that cannot be compiled (an invalid URL pattern, one too long)."""


def _everything(_: str) -> bool:
    return True


@functools.lru_cache(maxsize=16_384)
def compile_matcher(kind: str, selector: str, base: str) -> Matcher:
    """Raises SelectorError. ``base`` (the hub's URL) matters to URL patterns only."""
    if len(selector) > MAX_SELECTOR_LENGTH:
        raise SelectorError(f"a selector is over {MAX_SELECTOR_LENGTH} characters")
    if selector == WILDCARD:
        return _everything
    if kind == "exact":
        return selector.__eq__
    if kind == "urlpattern":
        return _url_pattern(selector, base)
    return _template(selector)


def _template(selector: str) -> Matcher:
    if "{" not in selector:
        return selector.__eq__  # a plain topic (the most common selector): compared as is
    try:
        return compile_template(selector)
    except TemplateError:
        return selector.__eq__  # "a topic selector can be any string": then it is compared as is


def _url_pattern(selector: str, base: str) -> Matcher:
    try:
        pattern = urlpattern.URLPattern(selector, base)
    except (ValueError, TypeError) as exc:
        raise SelectorError(f"not a URL pattern: {selector!r} ({exc})") from None

    def test(topic: str) -> bool:
        try:
            return bool(pattern.test(topic, base))
        except (ValueError, TypeError):
            return False  # a topic that is no URL reference matches no URL pattern

    return test


def any_matches(matchers: Sequence[Matcher], topics: Iterable[str]) -> bool:
    # Plain loops: this runs once per subscriber per update (no generator frame per call).
    for topic in topics:
        for matcher in matchers:
            if matcher(topic):
                return True
    return False
