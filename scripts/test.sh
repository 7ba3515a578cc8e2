#!/usr/bin/env bash
# The one test command (README, CI): system packages, virtualenv, lint, type check, every test.
set -euo pipefail
cd "$(dirname "$0")/.."
for ensure in scripts/ensure/*.sh; do bash "$ensure"; done
source scripts/venv.sh "[dev]"
ruff check .
ruff format --check .
mypy
exec pytest "$@"
