"""One typed, validated settings object, read from ``GATEWAY_*`` environment variables.

Built once at start-up (``create_app(settings)``) and passed down; nothing reads the environment
after that. ``--workers`` > 1 hands settings to each worker process through the same variables.

No I/O here: key files are named, not read (the authenticator reads them once, and the checks
that need no file run here with its rules); a Redis URL is parsed, not connected to. The one
probe of the process is the file-descriptor limit that sizes ``max_connections`` when unset.
"""

from __future__ import annotations

import re
import resource
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from publisher.connect import parse_redis_url
from publisher.wire import DEFAULT_KEY_PREFIX, DEFAULT_PUBSUB_PREFIX, HistoryLimits

__all__ = ["FD_RESERVE", "Settings", "stream_cap_from_fd_limit"]

# Descriptors a process needs besides its streams: the Redis command pool (64 by default), the
# pub/sub and publish connections, publishers' and probes' HTTP connections, the listening
# socket, epoll, logs and the metrics files.
FD_RESERVE = 256
UNLIMITED_STREAMS = 1_000_000  # RLIMIT_NOFILE unlimited: memory is the real cap


def stream_cap_from_fd_limit() -> int:
    """Open streams one process can hold: its soft RLIMIT_NOFILE less :data:`FD_RESERVE` (half
    the limit when it is under twice the reserve). A fixed cap either wasted a raised limit
    (15,000 subscribers on a process allowed 20,000 descriptors got 5,000 503s) or promised
    streams that would fail in accept() with EMFILE."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return UNLIMITED_STREAMS
    return soft - FD_RESERVE if soft >= 2 * FD_RESERVE else max(1, soft // 2)


class Settings(BaseSettings):
    # hide_input_in_errors: a rejected value (a weak JWT secret, a Redis URL with a password) must
    # never be echoed into the start-up error or a log.
    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_", extra="ignore", frozen=True, hide_input_in_errors=True
    )

    # Server
    host: str = Field("127.0.0.1", description="bind address (0.0.0.0 in a container)")
    port: int = Field(8000, ge=0, le=65535, description="HTTP port")
    workers: int = Field(1, ge=1, le=256, description="worker processes (needs a Redis URL)")
    backlog: int = Field(
        4096, ge=1, description="listen queue; capped by the kernel's net.core.somaxconn"
    )
    log_level: str = Field("info", description="debug, info, warning or error")

    # Store: no URL means the embedded store (fakeredis, one process).
    redis_url: str | None = Field(None, description="unset: embedded in-process store")
    redis_max_connections: int = Field(
        64, ge=1, description="command connections per process; callers queue when all are busy"
    )
    key_prefix: str = Field(DEFAULT_KEY_PREFIX, description="prefix of history stream keys")
    pubsub_prefix: str = Field(
        DEFAULT_PUBSUB_PREFIX, description="pub/sub name of channel C is <prefix>C"
    )

    # History (must match what producers writing straight to Redis use).
    history_max_len: int = Field(1000, ge=1, description="entries kept per channel (approx.)")
    history_max_age: float = Field(3600.0, ge=0, description="seconds; 0 keeps by length only")
    history_ttl: float = Field(
        86400.0, ge=0, description="seconds of silence before a channel's history is dropped"
    )
    replay_max: int = Field(10_000, ge=1, description="most events replayed on one resume")

    # Streams
    retry_ms: int = Field(3000, ge=0, description="the retry: hint sent at stream start")
    keepalive_interval: float = Field(15.0, gt=0, description="seconds between comment keepalives")
    max_channels_per_stream: int = Field(32, ge=1, description="channels on one stream")
    subscriber_buffer_messages: int = Field(
        1000, ge=1, description="events queued for one client before it is cut loose"
    )
    subscriber_buffer_bytes: int = Field(
        1 << 20, ge=1024, description="bytes queued for one client before it is cut loose"
    )
    send_timeout: float = Field(
        10.0, gt=0, description="a write blocked this long drops the client"
    )
    unsubscribe_delay: float = Field(1.0, ge=0, description="re-check before the last UNSUBSCRIBE")
    tcp_nodelay: bool = Field(
        True,
        description="false turns Nagle back on for streams: fewer packets under load, up to one "
        "RTT more latency (docs/performance.md)",
    )

    # Publishing
    max_body_bytes: int = Field(1 << 20, ge=1, description="largest publish request body")
    max_batch_messages: int = Field(1000, ge=1, description="most messages in one NDJSON publish")
    body_timeout: float = Field(10.0, gt=0, description="seconds to receive a whole request body")

    # Shutdown: drain_window < graceful_timeout < terminationGracePeriodSeconds - preStop.
    drain_window: float = Field(5.0, ge=0, description="streams are closed spread over this")
    graceful_timeout: float = Field(10.0, gt=0, description="uvicorn's graceful shutdown limit")

    # -- faults, limits and observability --------------------------------------------------
    max_connections: int = Field(
        0,
        ge=0,
        description="open streams per process; past it 503 + Retry-After. 0 or unset: the "
        f"process's soft RLIMIT_NOFILE less {FD_RESERVE} (half the limit below {2 * FD_RESERVE})",
    )
    redis_timeout: float = Field(
        2.0, gt=0, description="seconds a Redis command may take before publish answers 503"
    )
    publish_min_replicas: int = Field(
        0,
        ge=0,
        description="replicas that must hold a publish (WAIT) before it is acknowledged; else 503",
    )
    redis_ping_interval: float = Field(
        5.0, gt=0, description="pub/sub PING period; 3 unanswered periods drop the connection"
    )
    log_format: str = Field("json", pattern="^(json|text)$", description="json or text")
    metrics_enabled: bool = Field(True, description="serve Prometheus metrics on GET /metrics")

    # -- operator endpoints: presence and revocation ------------------------------------------
    presence_ttl: float = Field(
        15.0,
        ge=1,
        le=3600,
        description="seconds a dead replica's streams stay in subscriber counts and presence",
    )
    presence_events: bool = Field(
        True, description="relay gateway.join/gateway.leave to streams that ask (?presence=1)"
    )

    # -- auth, CORS and hostile input -------------------------------------------------------
    # Exactly one key source turns auth on. With none, the embedded store runs open (trying it
    # out); a gateway on a Redis URL refuses to start unless auth=off says so (gateway.auth.policy).
    auth: str = Field(
        "auto",
        pattern="^(auto|off)$",
        description="auto: a JWT key is required with a Redis URL; off: no key, everything open",
    )
    jwt_secret: SecretStr | None = Field(None, description="HS256 shared secret, >= 32 bytes")
    jwt_secret_file: Path | None = Field(None, description="file holding the shared secret")
    jwt_public_key_file: Path | None = Field(None, description="PEM public key (RS256/ES256)")
    jwt_jwks_file: Path | None = Field(None, description="JWKS file; keys chosen by kid")
    jwt_algorithms: str = Field("", description="comma-separated; default from the key type")
    jwt_audience: str | None = Field(None, description="when set, tokens' aud must match")
    jwt_issuer: str | None = Field(None, description="when set, tokens' iss must match")
    jwt_leeway: float = Field(0.0, ge=0, le=300, description="seconds of clock skew allowed")
    auth_cookie: str = Field(
        "sse_token", pattern=r"^[A-Za-z0-9_\-]{1,64}$", description="cookie holding the token"
    )
    auth_query_tokens: bool = Field(True, description="accept ?access_token= (ends up in logs)")
    anonymous_subscribe: str = Field("", description="comma-separated channel patterns")
    anonymous_publish: str = Field("", description="comma-separated channel patterns")
    cors_origins: str = Field("", description="comma-separated exact origins; * only without auth")

    @model_validator(mode="before")
    @classmethod
    def _stream_cap(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("max_connections") in (None, "", 0, "0"):
            data = {**data, "max_connections": stream_cap_from_fd_limit()}
        return data

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, url: str | None) -> str | None:
        if url is not None:
            parse_redis_url(url)  # the one definition of what a URL may be; raises ValueError
        return url

    @model_validator(mode="after")
    def _check_auth(self) -> Settings:
        from gateway.auth.keys import check_key_settings  # the auth package imports settings

        check_key_settings(self)
        origins = self.cors_origin_list
        if "*" in origins and (self.auth_enabled or len(origins) > 1):
            raise ValueError("GATEWAY_CORS_ORIGINS='*' is only allowed alone and with auth off")
        bad = [o for o in origins if o != "*" and not _ORIGIN_RE.fullmatch(o)]
        if bad:
            raise ValueError(f"GATEWAY_CORS_ORIGINS must look like https://host[:port]: {bad[:3]}")
        return self

    @property
    def auth_enabled(self) -> bool:
        return bool(
            self.jwt_secret
            or self.jwt_secret_file
            or self.jwt_public_key_file
            or self.jwt_jwks_file
        )

    @property
    def jwt_algorithm_list(self) -> tuple[str, ...]:
        return _split(self.jwt_algorithms)

    @property
    def anonymous_subscribe_patterns(self) -> tuple[str, ...]:
        return _split(self.anonymous_subscribe)

    @property
    def anonymous_publish_patterns(self) -> tuple[str, ...]:
        return _split(self.anonymous_publish)

    @property
    def cors_origin_list(self) -> tuple[str, ...]:
        return _split(self.cors_origins)

    # -- other consumers and sources ---------------------------------------------------------

    @model_validator(mode="after")
    def _check_budgets(self) -> Settings:
        if self.drain_window >= self.graceful_timeout:
            raise ValueError("GATEWAY_DRAIN_WINDOW must be shorter than GATEWAY_GRACEFUL_TIMEOUT")
        if self.redis_url is None and self.workers > 1:
            raise ValueError(
                "the embedded store runs in one process: set GATEWAY_REDIS_URL for "
                "GATEWAY_WORKERS > 1"
            )
        return self

    @property
    def embedded(self) -> bool:
        return self.redis_url is None

    @property
    def history(self) -> HistoryLimits:
        return HistoryLimits(
            max_len=self.history_max_len,
            max_age_ms=int(self.history_max_age * 1000),
            ttl_ms=int(self.history_ttl * 1000),
        )

    # -- operator tools: history API, idempotent publish, rate limits, console (issue 14) ----
    history_page_max: int = Field(
        1000, ge=1, description="most events in one GET /history page (a larger ?limit= is capped)"
    )
    idempotency_ttl: float = Field(
        300.0, gt=0, le=86400, description="seconds an Idempotency-Key is remembered per channel"
    )
    rate_publish: float = Field(
        0.0, ge=0, description="publish requests/s per token subject (or address); 0: no limit"
    )
    rate_publish_burst: int = Field(20, ge=1, description="publish requests allowed at once")
    rate_connect: float = Field(
        0.0, ge=0, description="streams opened/s per client address; 0: no limit"
    )
    rate_connect_burst: int = Field(20, ge=1, description="streams opened at once per address")
    rate_limit_store: str = Field(
        "process",
        pattern="^(process|redis)$",
        description="process: buckets per process; redis: shared by every replica",
    )
    rate_limit_max_keys: int = Field(
        100_000, ge=1, description="buckets kept per process (oldest dropped past it)"
    )
    trusted_proxy_hops: int = Field(
        0, ge=0, le=16, description="X-Forwarded-For entries added by our proxies; 0: ignored"
    )
    console: bool | None = Field(
        None, description="serve the console page on GET /; unset: on in embedded mode only"
    )

    @model_validator(mode="after")
    def _check_tools(self) -> Settings:
        if self.rate_limit_store == "redis" and self.redis_url is None:
            raise ValueError("GATEWAY_RATE_LIMIT_STORE=redis needs a Redis URL")
        return self

    @property
    def console_enabled(self) -> bool:
        return self.embedded if self.console is None else self.console

    # -- Mercure hub (gateway/mercure, README "Mercure hub") ---------------------------------
    mercure: bool = Field(True, description="serve the Mercure protocol at /.well-known/mercure")
    mercure_publisher_jwt_key: SecretStr | None = Field(
        None, description="HMAC secret, or a PEM / JWKS / secret file path; unset: no publishing"
    )
    mercure_publisher_jwt_alg: str = Field("", description="comma-separated; default from key")
    mercure_subscriber_jwt_key: SecretStr | None = Field(
        None, description="as the publisher key; unset: the publisher key"
    )
    mercure_subscriber_jwt_alg: str = Field("", description="comma-separated; default from key")
    mercure_weak_jwt_keys: bool = Field(
        False, description="accept HMAC keys the weak-secret check refuses (test suites' keys)"
    )
    mercure_anonymous: bool = Field(False, description="subscribers without a token (public only)")
    mercure_subscriptions: bool = Field(False, description="subscription events and API")
    mercure_subscriptions_ttl: float = Field(
        15.0, ge=0.3, description="a dead replica's subscriptions leave the API within this"
    )
    mercure_audience: str | None = Field(None, description="draft-08 tokens' aud must hold this")
    mercure_issuer: str | None = Field(None, description="draft-08 tokens' iss must be this")
    mercure_max_topics: int = Field(
        64, ge=1, le=4096, description="most topics per update and selectors per subscription"
    )


_ORIGIN_RE = re.compile(
    r"https?://[A-Za-z0-9.\-]+(:\d{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:\d{1,5})?"
)


def _split(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())
