"""``sse-bridge``: forward PostgreSQL NOTIFY payloads (JSON) to gateway channels.

Every option has an environment variable (``SSE_BRIDGE_*``), so it runs unchanged in a container.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys

from publisher.bridge.core import MAX_NOTIFY_PAYLOAD, Bridge, BridgeConfig
from publisher.wire import DEFAULT_KEY_PREFIX, HistoryLimits, is_valid_channel

__all__ = ["main", "parse_args"]

log = logging.getLogger("sse_bridge")


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"SSE_BRIDGE_{name}", default)


def _mapping(items: list[str]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for item in items:
        source, sep, target = item.partition("=")
        if not sep or not source or not is_valid_channel(target):
            raise argparse.ArgumentTypeError(f"--map wants pg_channel=gateway_channel: {item!r}")
        mapping[source] = target
    return mapping


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sse-bridge", description=__doc__)
    add = parser.add_argument
    add("--dsn", default=_env("DSN"), help="PostgreSQL URL or DSN [SSE_BRIDGE_DSN]")
    add(
        "--redis-url",
        "--url",
        dest="url",
        default=_env("URL", os.environ.get("GATEWAY_REDIS_URL", "redis://localhost:6379/0")),
        help="redis://... (direct), or http(s)://gateway to POST [SSE_BRIDGE_URL]",
    )
    add("--token", default=_env("TOKEN"), help="bearer token for an http(s) URL [SSE_BRIDGE_TOKEN]")
    add(
        "--map",
        action="append",
        default=[],
        metavar="PG_CHANNEL=GATEWAY_CHANNEL",
        help="repeatable; SSE_BRIDGE_MAP takes a comma-separated list",
    )
    add("--max-payload", type=int, default=int(_env("MAX_PAYLOAD", str(MAX_NOTIFY_PAYLOAD)) or 0))
    add("--key-prefix", default=_env("KEY_PREFIX", DEFAULT_KEY_PREFIX))
    # History limits must match the gateway's: the same GATEWAY_HISTORY_* variables are read.
    add("--history-max-len", type=int, default=int(os.environ.get("GATEWAY_HISTORY_MAX_LEN", 1000)))
    add(
        "--history-max-age",
        type=float,
        default=float(os.environ.get("GATEWAY_HISTORY_MAX_AGE", 3600)),
    )
    add("--history-ttl", type=float, default=float(os.environ.get("GATEWAY_HISTORY_TTL", 86400)))
    add("--health-interval", type=float, default=float(_env("HEALTH_INTERVAL", "10") or 10))
    add("--retry-max", type=float, default=float(_env("RETRY_MAX", "30") or 30))
    add("--stats-interval", type=float, default=float(_env("STATS_INTERVAL", "60") or 60))
    add("--log-level", default=_env("LOG_LEVEL", "info"))
    return parser


def parse_args(argv: list[str] | None = None) -> tuple[BridgeConfig, str]:
    parser = _parser()
    args = parser.parse_args(argv)
    env_map = [item.strip() for item in (_env("MAP") or "").split(",") if item.strip()]
    try:
        mapping = _mapping(args.map or env_map)
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    if not args.dsn or not mapping:
        parser.error("--dsn and at least one --map are required (or SSE_BRIDGE_DSN/_MAP)")
    config = BridgeConfig(
        dsn=args.dsn,
        url=args.url,
        mapping=mapping,
        token=args.token,
        key_prefix=args.key_prefix,
        history=HistoryLimits(
            max_len=args.history_max_len,
            max_age_ms=int(args.history_max_age * 1000),
            ttl_ms=int(args.history_ttl * 1000),
        ),
        max_payload=args.max_payload,
        retry_max=args.retry_max,
        health_interval=args.health_interval,
        stats_interval=args.stats_interval,
    )
    return config, args.log_level


async def _run(config: BridgeConfig) -> None:
    task = asyncio.create_task(Bridge(config).run())
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    # Cancelling is how the bridge stops; the cancellation is ours, so it ends here.
    with contextlib.suppress(asyncio.CancelledError):
        await task


def main(argv: list[str] | None = None) -> int:
    config, level = parse_args(argv)
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    log.info("forwarding %s to %s", config.mapping, config.url.split("@")[-1])
    asyncio.run(_run(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
