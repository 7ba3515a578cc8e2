"""``sse-gateway`` / ``python -m gateway``: parse flags, validate settings, run uvicorn.

Flags override ``GATEWAY_*`` variables. They are written back into the environment because with
``--workers N`` uvicorn starts fresh worker processes that build their settings from it.

A configuration the gateway refuses (a weak secret, a bad setting, a malformed Redis URL, an
unreadable key file) ends the process with exit code 2 and ONE line on stderr that names the
setting and says what is wrong: what an operator reads in ``kubectl logs`` of a crash-looping
pod, where pydantic's multi-line report was mostly boilerplate. Key files are read by the
authenticator when the serving process builds it (so once per process); with ``--workers N``
the supervising process builds one first, to refuse before any worker starts.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys

import uvicorn
from pydantic import ValidationError
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from gateway.auth import Authenticator, KeyConfigError
from gateway.auth.policy import start_refusal
from gateway.logs import logging_config
from gateway.metrics import prepare_multiprocess_dir, remove_multiprocess_dir
from gateway.server.uvicorn_hook import UvicornHttp, check_version
from gateway.settings import Settings
from gateway.shutdown import DRAIN_MARGIN

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
        refusal = start_refusal(settings)
        if refusal is not None:
            raise KeyConfigError(refusal)
        if settings.workers > 1:  # this process serves nothing: check the keys before the workers
            Authenticator.from_settings(settings)
    except (ValidationError, KeyConfigError) as exc:
        return refuse(exc)
    try:
        check_version()
    except RuntimeError as exc:  # the one-line refusal, like a bad setting
        print(f"sse-gateway: refusing to start: {exc}", file=sys.stderr)
        return 2
    metrics_dir = prepare_multiprocess_dir(settings.workers)
    try:
        return serve(settings)
    except KeyConfigError as exc:  # from the app's authenticator, as uvicorn loaded the app
        return refuse(exc)
    finally:
        remove_multiprocess_dir(metrics_dir)


def refuse(exc: ValidationError | KeyConfigError) -> int:
    """One line on stderr saying which setting is wrong and why; exit code 2."""
    print(f"sse-gateway: refusing to start: {why(exc)}", file=sys.stderr)
    return 2


def why(exc: ValidationError | KeyConfigError) -> str:
    if isinstance(exc, KeyConfigError):
        return _one_line(str(exc))
    reasons = []
    for error in exc.errors(include_url=False, include_input=False):
        message = error["msg"].removeprefix("Value error, ")
        field = "_".join(str(part) for part in error["loc"])
        reasons.append(f"GATEWAY_{field.upper()}: {message}" if field else message)
    return _one_line("; ".join(reasons))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def serve(settings: Settings) -> int:
    """``uvicorn.run`` spelled out, because we bind the listening socket ourselves: accepted
    connections inherit its TCP_USER_TIMEOUT (see :func:`_listen`)."""
    config = uvicorn.Config(
        "gateway.app:server_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_config=logging_config(settings.log_level, settings.log_format),
        log_level=settings.log_level,
        # Our drain runs before uvicorn's shutdown starts (gateway.shutdown), so uvicorn only
        # needs what is left of the budget.
        timeout_graceful_shutdown=max(
            1, int(settings.graceful_timeout - settings.drain_window - DRAIN_MARGIN)
        ),
        access_log=False,
        lifespan="on",
        # uvicorn trusts X-Forwarded-For from 127.0.0.1 by default, so a local client could pick
        # its own address and dodge per-address rate limits; GATEWAY_TRUSTED_PROXY_HOPS decides
        # instead (gateway/client_address.py).
        proxy_headers=False,
        # uvicorn's 2048 overflowed when 5000 clients connected at once (a replica restart's
        # reconnect storm): the kernel drops the overflow's SYNs and they come back after 1 s.
        backlog=settings.backlog,
        http=UvicornHttp,  # our HTTP/1.1 protocol (gateway.server); uvicorn runs the process
    )
    if settings.workers == 1:
        # Build the app now (uvicorn would on start-up): a refused key file is reported before
        # the socket is bound and uvicorn logs that it is running.
        config.load()
    sock = _listen(config, settings)
    if settings.workers > 1:
        Multiprocess(config, sockets=[sock]).run()
        return 0
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
    return 0 if server.started else STARTUP_FAILURE


def _listen(config: uvicorn.Config, settings: Settings) -> socket.socket:
    """The listening socket, with a kernel-level write deadline for every accepted connection.

    A peer that vanished without a FIN, or stopped reading, leaves our writes unacknowledged. The
    stream's own send timeout ends the response, but the connection's unsent bytes would keep
    the socket (and uvicorn's shutdown) waiting for ever; TCP_USER_TIMEOUT makes the kernel drop
    it. Twice the send timeout, so the application's own timeout normally acts first.
    """
    sock = config.bind_socket()
    if hasattr(socket, "TCP_USER_TIMEOUT") and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(
            socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(settings.send_timeout * 2000)
        )
    return sock
