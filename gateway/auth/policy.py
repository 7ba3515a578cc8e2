"""Secure by default: whether these settings may start a gateway at all.

A gateway on a Redis URL is a shared deployment; without a key anyone could publish on every
channel and use the operator endpoints. Mercure and Centrifugo refuse that, and so do we, unless
the operator says ``GATEWAY_AUTH=off`` in so many words. The embedded store (no Redis URL) lives in
one process on one machine and stays open, so ``make run`` works out of the box.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.settings import Settings

__all__ = ["start_refusal"]


def start_refusal(settings: Settings) -> str | None:
    """One line saying what to set, or ``None`` when these settings may start."""
    if settings.auth == "off" and settings.auth_enabled:
        return "GATEWAY_AUTH=off contradicts the JWT key that is configured: remove one of them"
    if settings.auth == "off" or settings.auth_enabled or settings.embedded:
        return None
    return (
        "a gateway on a Redis URL needs GATEWAY_JWT_SECRET (or "
        "GATEWAY_JWT_SECRET_FILE, GATEWAY_JWT_PUBLIC_KEY_FILE, GATEWAY_JWT_JWKS_FILE); "
        "set GATEWAY_AUTH=off to run it open on purpose"
    )
