"""Matching a string against an RFC 6570 URI Template (Mercure 0.x topic selectors).

Written here because no package we can install matches: ``uritemplate`` (and the other RFC 6570
packages on PyPI we could reach) only *expand* templates, and Mercure needs the reverse - does
this topic belong to the template? The reference hub uses the same approach as this module: the
template becomes one anchored regular expression, compiled once (yosida95/uritemplate
``Template.Regexp``), run by RE2 (PyPI ``google-re2``), as Go's regexp is in the reference hub:
templates come from subscribers, and adjacent expressions (``{a}{b}{c}``) make patterns that
take polynomial time on a backtracking engine such as Python's ``re`` (a 20 kB topic against
``{a}{b}{c}`` never finished); RE2 matches in time linear in the topic.

Each expression matches what its expansion can produce (RFC 6570 section 3.2): simple and label
values are unreserved characters or percent-escapes; ``+`` and ``#`` add the reserved set; the
named operators (``;``, ``?``, ``&``) produce ``name=value`` items. Values are matched loosely
(any variable name, any number of items), which is what a selector wants.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

import re2

__all__ = ["TemplateError", "TemplateMatcher", "compile_template"]

_PCT: Final = r"%[0-9A-Fa-f]{2}"
_UNRESERVED: Final = rf"(?:[A-Za-z0-9\-._~]|{_PCT})"
_RESERVED: Final = rf"(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|{_PCT})"
_NAMED_VALUE: Final = rf"(?:[A-Za-z0-9\-._~,]|{_PCT})"
_VARSPEC: Final = re.compile(r"[A-Za-z0-9_.%]+(?::[1-9][0-9]{0,3}|\*)?")

# operator -> regex of the whole expansion (it may always be empty: undefined variables)
_EXPANSIONS: Final = {
    "": rf"(?:{_UNRESERVED}*(?:,{_UNRESERVED}*)*)",
    "+": rf"{_RESERVED}*",
    "#": rf"(?:\#{_RESERVED}*)?",
    # "." is itself unreserved, so one label run covers any number of labels.
    ".": rf"(?:\.{_UNRESERVED}*)?",
    "/": rf"(?:/{_UNRESERVED}*)*",
    ";": rf"(?:;{_UNRESERVED}+(?:={_NAMED_VALUE}*)?)*",
    "?": rf"(?:\?{_UNRESERVED}+={_NAMED_VALUE}*(?:&{_UNRESERVED}+={_NAMED_VALUE}*)*)?",
    "&": rf"(?:&{_UNRESERVED}+={_NAMED_VALUE}*)*",
}
_EXPRESSION: Final = re.compile(r"\{([^{}]*)\}")


class TemplateError(ValueError):
    """The string is not a valid URI Template (it is then only ever compared exactly)."""


class TemplateMatcher:
    """A predicate telling whether a string is a possible expansion of a template.

    Two shortcuts keep the per-subscriber cost of a non-matching topic small (the common case
    when 10,000 subscribers each hold their own template): the template's literal prefix is
    compared first, and the last answer is kept for the very same topic object, which every
    subscriber sharing this (cached) matcher asks about in turn."""

    __slots__ = ("_pattern", "_prefix", "_result", "_template", "_topic")

    def __init__(self, template: str, prefix: str, pattern: str) -> None:
        self._template = template  # matches itself too (0.x: "this allows comparing templates")
        self._prefix = prefix
        self._pattern = re2.compile(pattern)
        self._topic: str | None = None
        self._result = False

    def __call__(self, topic: str) -> bool:
        if topic is self._topic:
            return self._result
        result = topic.startswith(self._prefix) and (
            topic == self._template or self._pattern.fullmatch(topic) is not None
        )
        self._topic, self._result = topic, result
        return result


def compile_template(template: str) -> Callable[[str], bool]:
    """Raises TemplateError when ``template`` is no URI Template."""
    parts: list[str] = []
    position = 0
    for match in _EXPRESSION.finditer(template):
        parts.append(_literal(template[position : match.start()]))
        parts.append(_expression(match[1]))
        position = match.end()
    parts.append(_literal(template[position:]))
    first = _EXPRESSION.search(template)
    prefix = template[: first.start()] if first else template
    return TemplateMatcher(template, prefix, "".join(parts))


def _literal(text: str) -> str:
    if "{" in text or "}" in text:
        raise TemplateError("unbalanced brace")
    return re.escape(text)


def _expression(body: str) -> str:
    operator = body[:1] if body[:1] in "+#./;?&" else ""
    names = body[len(operator) :].split(",")
    if not all(_VARSPEC.fullmatch(name) for name in names):
        raise TemplateError(f"invalid expression {{{body}}}")
    return _EXPANSIONS[operator]
