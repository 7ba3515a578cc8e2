#!/usr/bin/env bash
# Install the gateway into .venv and run it. Without --redis-url / GATEWAY_REDIS_URL it uses an
# embedded store, so nothing else needs to be installed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh ""  # an explicit (empty) extras argument: sourcing passes ours on otherwise
exec sse-gateway "$@"
