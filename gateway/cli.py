"""``sse-gateway`` / ``python -m gateway``: parse flags, validate settings, run uvicorn.

Flags override ``GATEWAY_*`` variables. They are written back into the environment because with
``--workers N`` uvicorn starts fresh worker processes that build their settings from it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

import uvicorn
from pydantic import ValidationError

from gateway.settings import Settings

FLAGS = ("host", "port", "redis_url", "workers", "log_level")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="sse-gateway", description="Redis-backed Server-Sent-Events broadcast gateway."
    )
    parser.add_argument("--host", help="bind address (default 127.0.0.1; GATEWAY_HOST)")
    parser.add_argument("--port", type=int, help="port (default 8000; GATEWAY_PORT)")
    parser.add_argument(
        "--redis-url",
        help="redis://, rediss://, unix://, redis+sentinel://, redis+cluster:// "
        "(default: embedded in-process store; GATEWAY_REDIS_URL)",
    )
    parser.add_argument("--workers", type=int, help="worker processes (default 1; GATEWAY_WORKERS)")
    parser.add_argument("--log-level", help="debug, info, warning, error (GATEWAY_LOG_LEVEL)")
    args = parser.parse_args(argv)
    for name in FLAGS:
        value = getattr(args, name)
        if value is not None:
            os.environ[f"GATEWAY_{name.upper()}"] = str(value)
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"sse-gateway: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    uvicorn.run(
        "gateway.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        timeout_graceful_shutdown=int(settings.graceful_timeout),
        access_log=False,
        lifespan="on",
    )
    return 0
