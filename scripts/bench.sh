#!/usr/bin/env bash
# The fan-out benchmark (docs/performance.md): the gateway beside its baselines, loopback only.
#   scripts/bench.sh --quick        # ~20 s, gateway + hand-written baseline
#   scripts/bench.sh --all          # every server and scenario, ~6 min; installs nchan with apt
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure/redis.sh
source scripts/venv.sh "[dev]"
exec python -m tests.perf.bench "$@"
