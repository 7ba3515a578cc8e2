"""``sse-publish CHANNEL JSON``: publish one message from a shell and print its id."""

from __future__ import annotations

import argparse
import json
import os
import sys

from publisher.client import Publisher
from publisher.errors import PublishError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sse-publish", description=__doc__)
    parser.add_argument("channel")
    parser.add_argument("message", help="the message, as JSON text ('-' reads standard input)")
    parser.add_argument("--event", help="SSE event name")
    parser.add_argument(
        "--url",
        default=os.environ.get("SSE_PUBLISH_URL")
        or os.environ.get("GATEWAY_REDIS_URL")
        or "redis://localhost:6379/0",
        help="redis://... to write to Redis directly, or http(s)://gateway to POST to a gateway",
    )
    parser.add_argument("--token", default=os.environ.get("SSE_PUBLISH_TOKEN"))
    parser.add_argument(
        "--idempotency-key", help="publish once per key and channel: a retry prints the same id"
    )
    args = parser.parse_args(argv)
    text = sys.stdin.read() if args.message == "-" else args.message
    try:
        message = json.loads(text)
    except ValueError as exc:
        print(f"sse-publish: the message is not valid JSON: {exc}", file=sys.stderr)
        return 2
    try:
        with Publisher(args.url, token=args.token) as publisher:
            key = args.idempotency_key
            print(publisher.publish(args.channel, message, event=args.event, idempotency_key=key))
    except PublishError as exc:
        print(f"sse-publish: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
