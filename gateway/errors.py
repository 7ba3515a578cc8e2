"""Errors the gateway raises, and the HTTP answer each one maps to.

    GatewayError
    ├── ClientError            a request the client can fix: 4xx with {"error": code, "detail": ...}
    │   └── RateLimited        429 + Retry-After: a rate limit's bucket is empty
    └── BrokerUnavailable      Redis is unreachable or the process is draining: 503 + Retry-After

Transport errors from redis-py are wrapped into BrokerUnavailable inside the broker, so nothing
above the broker ever sees a redis exception.
"""

from __future__ import annotations

__all__ = ["BrokerUnavailable", "ClientError", "GatewayError", "RateLimited"]


class GatewayError(Exception):
    status = 500
    code = "internal"
    retry_after: int | None = None  # seconds; answered as Retry-After when set

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ClientError(GatewayError):
    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code


class RateLimited(ClientError):
    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(429, "rate_limited", detail)
        self.retry_after = retry_after


class BrokerUnavailable(GatewayError):
    status = 503
    code = "unavailable"

    def __init__(self, detail: str, retry_after: int = 2) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
