"""What a caller may do: channel patterns for subscribe, publish and admin.

``admin`` grants the operator endpoints (channel info, presence, revocation) on the channels it
matches; an action that reaches every channel at once (disconnecting a subject) needs it on all
of them, i.e. the pattern ``*``.

Patterns are fnmatch-style (``orders.*``, ``user.42``, ``*``), matched case-sensitively against the
whole channel name. Channel names are validated before any check (letters, digits and ``_-.:``),
so a pattern can only ever grant gateway channels, never Redis' own or internal ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Literal

from gateway.auth.errors import Forbidden, Unauthenticated

__all__ = ["Action", "Grant"]

Action = Literal["subscribe", "publish", "admin"]


@dataclass(frozen=True, slots=True)
class Grant:
    subscribe: tuple[str, ...] = ()
    publish: tuple[str, ...] = ()
    admin: tuple[str, ...] = ()
    authenticated: bool = False
    expires_at: float | None = None  # unix time; streams are closed then
    subject: str | None = None

    @classmethod
    def everything(cls) -> Grant:
        """Auth is off: anyone may do anything (the dev default)."""
        return EVERYTHING

    def allows(self, action: Action, channel: str) -> bool:
        patterns = getattr(self, action)
        return any(pattern == "*" or fnmatchcase(channel, pattern) for pattern in patterns)

    def require_everywhere(self, action: Action) -> None:
        """Raise unless ``action`` is granted on every channel (the pattern ``*``)."""
        if "*" in getattr(self, action):
            return
        if not self.authenticated:
            raise Unauthenticated("authentication_required", f"a token is required to {action}")
        raise Forbidden(f"this token may not {action} on every channel (needs the pattern '*')")

    def require(self, action: Action, channels: tuple[str, ...]) -> None:
        """Raise unless every channel is allowed: 401 for anonymous callers, 403 otherwise."""
        denied = [channel for channel in channels if not self.allows(action, channel)]
        if not denied:
            return
        names = ", ".join(repr(name) for name in denied[:5])
        if not self.authenticated:
            raise Unauthenticated(
                "authentication_required", f"a token is required to {action} on {names}"
            )
        raise Forbidden(f"this token may not {action} on {names}")


EVERYTHING = Grant(subscribe=("*",), publish=("*",), admin=("*",))
