#!/usr/bin/env bash
# Integration tests start their own redis-server on an ephemeral port; make sure the binary exists.
set -euo pipefail
source "$(dirname "$0")/../lib/apt.sh"
command -v redis-server >/dev/null 2>&1 || apt_install redis-server
