#!/usr/bin/env bash
# tests/bridge start their own PostgreSQL server (initdb + postgres on an ephemeral port).
set -euo pipefail
source "$(dirname "$0")/../lib/apt.sh"
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 \
  || apt_install postgresql
