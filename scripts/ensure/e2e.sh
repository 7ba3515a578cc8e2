#!/usr/bin/env bash
# The e2e suite (tests/e2e) drives real third-party pieces: nginx in front of the replicas,
# Debian's chromium (Playwright cannot download its own browser here) and Node with the npm
# packages pinned in tests/e2e/package-lock.json. Idempotent: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/apt.sh
missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ "${#missing[@]}" -gt 0 ]; then apt_install "${missing[@]}"; fi
# npm ci again whenever package-lock.json changed since the last install (a stamp copy of it).
stamp=tests/e2e/node_modules/.installed-from-lock
if ! cmp -s tests/e2e/package-lock.json "$stamp" 2>/dev/null; then
  # PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: playwright-core never downloads, but say so explicitly.
  (cd tests/e2e && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 \
    npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  cp tests/e2e/package-lock.json "$stamp"
fi
