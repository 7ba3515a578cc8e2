"""One typed, validated settings object, read from ``GATEWAY_*`` environment variables.

Built once at start-up (``create_app(settings)``) and passed down; nothing reads the environment
after that. ``--workers`` > 1 hands settings to each worker process through the same variables.
"""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from publisher.wire import DEFAULT_KEY_PREFIX, DEFAULT_PUBSUB_PREFIX, HistoryLimits

__all__ = ["Settings"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", frozen=True)

    # Server
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=256)
    log_level: str = "info"

    # Store: no URL means the embedded store (fakeredis, one process).
    redis_url: str | None = None
    key_prefix: str = DEFAULT_KEY_PREFIX
    pubsub_prefix: str = DEFAULT_PUBSUB_PREFIX

    # History (must match what producers writing straight to Redis use).
    history_max_len: int = Field(1000, ge=1)
    history_max_age: float = Field(3600.0, ge=0, description="seconds; 0 keeps by length only")
    history_ttl: float = Field(
        86400.0, ge=0, description="seconds of silence before a channel's history is dropped"
    )
    replay_max: int = Field(10_000, ge=1, description="most events replayed on one resume")

    # Streams
    retry_ms: int = Field(3000, ge=0, description="the retry: hint sent at stream start")
    keepalive_interval: float = Field(15.0, gt=0, description="seconds between comment keepalives")
    max_channels_per_stream: int = Field(32, ge=1)
    subscriber_buffer_messages: int = Field(1000, ge=1)
    subscriber_buffer_bytes: int = Field(1 << 20, ge=1024)
    send_timeout: float = Field(
        10.0, gt=0, description="a write blocked this long drops the client"
    )
    unsubscribe_delay: float = Field(1.0, ge=0, description="re-check before the last UNSUBSCRIBE")

    # Publishing
    max_body_bytes: int = Field(1 << 20, ge=1)
    max_batch_messages: int = Field(1000, ge=1)
    body_timeout: float = Field(10.0, gt=0, description="seconds to receive a whole request body")

    # Shutdown: drain_window < graceful_timeout < terminationGracePeriodSeconds - preStop.
    drain_window: float = Field(5.0, ge=0, description="streams are closed spread over this")
    graceful_timeout: float = Field(10.0, gt=0, description="uvicorn's graceful shutdown limit")

    # -- faults, limits and observability --------------------------------------------------

    # -- auth, CORS and hostile input -------------------------------------------------------

    # -- other consumers and sources ---------------------------------------------------------

    @model_validator(mode="after")
    def _check_budgets(self) -> Settings:
        if self.drain_window >= self.graceful_timeout:
            raise ValueError("drain_window must be shorter than graceful_timeout")
        if self.redis_url is None and self.workers > 1:
            raise ValueError("the embedded store runs in one process: set a Redis URL for workers")
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
