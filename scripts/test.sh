#!/usr/bin/env bash
# The one test command (README, CI): system packages, virtualenv, lint, type check, every test.
set -euo pipefail
cd "$(dirname "$0")/.."
for ensure in scripts/ensure/*.sh; do bash "$ensure"; done
source scripts/venv.sh "[dev]"
ruff check .
ruff format --check .
mypy
# One worker per core (at most 4: each runs its own redis-servers, gateways and browsers). Whole
# files go to one worker, so a module's shared cluster or replicas are started once. On 2 cores
# this took the suite from ~9 to ~7 minutes; it is CPU-bound (gateway process start-ups).
workers=$(nproc)
workers=$((workers > 4 ? 4 : workers))
exec pytest --numprocesses "$workers" --dist loadfile "$@"
