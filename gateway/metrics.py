"""Prometheus metrics, served on ``GET /metrics``; names and meanings in docs/observability.md.

Divergences from the obvious, on purpose:

* The hot path never touches a Prometheus object per subscriber or per publish. Fan-out adds the
  number of subscribers it handed a message to into a plain int (:data:`TALLY`), a publish adds
  its messages, and the sampler moves the tallies into the counters once a second. The received
  counter and the sampled lag and publish-time histograms are the only Prometheus calls left
  per message.
* Gauges (open streams, subscriptions, hub channels, asyncio tasks) are *sampled* from the live
  objects by :mod:`gateway.sampling`, once a second and right before a scrape, instead of being
  incremented and decremented along every code path: a sampled gauge cannot drift, so "back to
  baseline" means no leak. This module only defines the metrics and renders them.
* Several worker processes (``--workers N``) share one port, so a scrape lands on any one of them.
  The CLI therefore runs prometheus-client's multiprocess mode: every worker writes its values to
  files under ``PROMETHEUS_MULTIPROC_DIR`` (set, and emptied, before the workers start), and
  whichever worker is scraped aggregates all of them. That env var is read when prometheus-client
  is first imported, which is why it must be set by the CLI before any worker starts.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
import time
from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

__all__ = [
    "CONTENT_TYPE_LATEST",
    "MULTIPROC_ENV",
    "PUBLISH_TIMER",
    "TALLY",
    "observe_delivery_lag",
    "prepare_multiprocess_dir",
    "render",
    "stream_closed",
]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created series add only noise
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

# -- gauges: sampled, summed over live workers -------------------------------------------------
CONNECTIONS = Gauge("sse_connections", "Open SSE/NDJSON streams.", multiprocess_mode="livesum")
SUBSCRIPTIONS = Gauge(
    "sse_subscriptions",
    "Channel subscriptions of open streams (a stream on 3 channels counts 3).",
    multiprocess_mode="livesum",
)
HUB_CHANNELS = Gauge(
    "sse_hub_channels", "Channels subscribed upstream in Redis.", multiprocess_mode="livesum"
)
TASKS = Gauge("sse_asyncio_tasks", "asyncio tasks alive.", multiprocess_mode="livesum")
REDIS_CONNECTED = Gauge(
    "sse_redis_connected",
    "1 while the pub/sub connection is up (the minimum over workers).",
    multiprocess_mode="livemin",
)

# -- counters ------------------------------------------------------------------------------
STREAMS_OPENED = Counter("sse_streams_opened", "Streams opened.")
STREAM_CLOSES = Counter(
    "sse_stream_closes",
    "Streams ended, by reason: client, slow, send_timeout, shutdown, expired, revoked, error.",
    ["reason"],
)
OVER_CAPACITY = Counter("sse_over_capacity", "Streams refused at max_connections (503).")
MESSAGES_PUBLISHED = Counter(
    "sse_messages_published", "Messages accepted by POST /publish and written to Redis."
)
MESSAGES_RECEIVED = Counter(
    "sse_messages_received", "Pub/sub messages received for channels with local subscribers."
)
EVENTS_DELIVERED = Counter(
    "sse_events_delivered", "Live events handed to subscribers (one per subscriber per message)."
)
EVENTS_REPLAYED = Counter("sse_events_replayed", "Events replayed from history on resume.")
REDIS_RECONNECTS = Counter("sse_redis_reconnects", "Pub/sub connections re-established.")
RESUMES = Counter(
    "sse_resumes",
    "Streams opened with a Last-Event-ID, by outcome: resumed, truncated, unknown, malformed.",
    ["outcome"],
)
RECOVERIES = Counter(
    "sse_recoveries",
    "Channel feeds repaired from history after a hole (reconnect, skipped announcement), "
    "by outcome: recovered, gap.",
    ["outcome"],
)

# -- histograms ----------------------------------------------------------------------------
PUBLISH_SECONDS = Histogram(
    "sse_publish_seconds",
    "Time for a publish batch to be written to Redis (the Lua script round trip; at most one "
    "publish per millisecond is timed).",
    buckets=_LATENCY_BUCKETS,
)
DELIVERY_LAG = Histogram(
    "sse_delivery_lag_seconds",
    "From Redis assigning a message's id to its fan-out in this gateway (Redis' clock vs ours; "
    "at most one message per millisecond is sampled).",
    buckets=_LATENCY_BUCKETS,
)


class _Tally:
    """Plain ints the hot path adds to; :class:`gateway.sampling.Sampler` moves them into the
    counters."""

    __slots__ = ("delivered", "published", "received")

    def __init__(self) -> None:
        self.delivered = 0
        self.received = 0
        self.published = 0

    def flush(self) -> None:
        delivered, received, published = self.delivered, self.received, self.published
        self.delivered = self.received = self.published = 0
        if delivered:
            EVENTS_DELIVERED.inc(delivered)
        if received:
            MESSAGES_RECEIVED.inc(received)
        if published:
            MESSAGES_PUBLISHED.inc(published)


TALLY = _Tally()


class _LagSampler:
    """At most one lag observation per millisecond per process: every message at ordinary rates,
    a fair sample under a flood, where a histogram update per message (2-4 us) would show."""

    __slots__ = ("next_at",)

    def __init__(self) -> None:
        self.next_at = 0.0

    def observe(self, stream_id: str) -> None:
        now = time.time()
        if now < self.next_at:
            return
        self.next_at = now + 0.001
        ms, _, _ = stream_id.partition("-")
        if ms.isdigit():  # Redis' clock when it assigned the id, vs ours now
            DELIVERY_LAG.observe(max(0.0, now - int(ms) / 1000))


observe_delivery_lag = _LagSampler().observe


class _PublishTimer:
    """Times at most one publish per millisecond per process, as :class:`_LagSampler` samples."""

    __slots__ = ("next_at",)

    def __init__(self) -> None:
        self.next_at = 0.0

    def start(self) -> float:
        """A start time to hand to :meth:`done`, or 0.0 when this publish is not timed."""
        now = time.perf_counter()
        if now < self.next_at:
            return 0.0
        self.next_at = now + 0.001
        return now

    def done(self, started: float, messages: int) -> None:
        TALLY.published += messages
        if started:
            PUBLISH_SECONDS.observe(time.perf_counter() - started)


PUBLISH_TIMER = _PublishTimer()


def stream_closed(reason: str) -> None:
    STREAM_CLOSES.labels(reason).inc()


def render(sample: Callable[[], None] | None = None) -> bytes:
    """The exposition text: this process alone, or every worker's files in multiprocess mode."""
    if sample is not None:
        sample()
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        return bytes(generate_latest(REGISTRY))
    forget_dead_workers()
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return bytes(generate_latest(registry))


def prepare_multiprocess_dir(workers: int) -> str | None:
    """Called by the CLI before uvicorn starts workers: an empty directory for their files.

    A directory named in ``PROMETHEUS_MULTIPROC_DIR`` is honoured (only its ``*.db`` files are
    removed: stale ones from a previous run would be summed in); otherwise a fresh one under the
    system temp dir. One worker needs none: it serves its own in-memory registry.
    """
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        os.makedirs(directory, exist_ok=True)
        for stale in glob.glob(os.path.join(directory, "*.db")):
            os.unlink(stale)
        return directory
    if workers <= 1:
        return None
    directory = tempfile.mkdtemp(prefix="sse-gateway-metrics-")
    os.environ[MULTIPROC_ENV] = directory
    return directory


def remove_multiprocess_dir(directory: str | None) -> None:
    if directory and directory.startswith(tempfile.gettempdir() + os.sep + "sse-gateway-metrics-"):
        shutil.rmtree(directory, ignore_errors=True)


def forget_dead_workers() -> None:
    """Drop the live gauges of workers that died without saying so (OOM-killed, crashed): they
    would otherwise be summed in for ever - a dead worker's 500 streams inflating
    ``sse_connections``, and the autoscaler with it. Any worker may do this for all of them."""
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        return
    for path in glob.glob(os.path.join(directory, "gauge_live*_*.db")):
        pid = int(path.rsplit("_", 1)[1].removesuffix(".db"))
        if not _alive(pid):
            multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def mark_worker_exited() -> None:
    """Drop this worker's live gauges from the aggregate (counters stay: they are totals)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
