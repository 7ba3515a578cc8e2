#!/usr/bin/env bash
# Lint and type-check only (fast feedback while editing).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh "[dev]"
ruff check .
ruff format --check .
mypy
