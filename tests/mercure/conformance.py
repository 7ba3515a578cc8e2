"""Run Mercure's own conformance suite (``conformance-tests/`` in dunglas/mercure) against the
gateway, in Debian's Chromium. Not a pytest module: the suite's code is not ours and is never
committed, so it runs only where someone has a checkout (see docs/mercure-conformance.md).

    MERCURE_CONFORMANCE_DIR=<checkout>  .venv/bin/python -m tests.mercure.conformance
    MERCURE_CONFORMANCE_DIR=<bare git dir> MERCURE_CONFORMANCE_REF=v0.24.2  (same command)
    ... -m tests.mercure.conformance --replicas 3   (three gateways behind round-robin nginx)

The suite is copied to a scratch directory, its own ``package-lock.json`` installed there
(``npm ci``: its pinned @playwright/test), and run unmodified, with a config of ours that imports
its config and changes only the browser (Debian's, ``--no-sandbox``), the projects (Chromium
only: there is no Firefox or WebKit here) and the reporters.

The hub is configured the way the reference hub's CI configures it for the suite: the reference
hub's sample key for publishers and subscribers (the suite's tokens are signed with it; the
gateway's weak-secret check refuses it unless ``GATEWAY_MERCURE_WEAK_JWT_KEYS`` is on),
anonymous subscribers, the subscriptions API, and (for the draft-08 suite's RFC 9068 token) the
audience and issuer the reference Caddyfile derives for ``https://localhost``. One configuration
serves both suites, as one deployed hub serves both dialects.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path
from typing import Any

from tests.e2e.proxy import Nginx
from tests.support.gateway_process import GatewayProcess
from tests.support.redis_server import RedisServer

# The key the suite's tokens are signed with: the reference hub's documented sample secret.
DEV_KEY = "!ChangeThisMercureHubJWTSecretKey!"
HUB_ENV = {
    "GATEWAY_MERCURE": "1",
    "GATEWAY_MERCURE_PUBLISHER_JWT_KEY": DEV_KEY,
    "GATEWAY_MERCURE_SUBSCRIBER_JWT_KEY": DEV_KEY,
    "GATEWAY_MERCURE_WEAK_JWT_KEYS": "1",  # the sample key is refused otherwise
    "GATEWAY_MERCURE_ANONYMOUS": "1",  # the suite's EventSources carry no token
    "GATEWAY_MERCURE_SUBSCRIPTIONS": "1",  # on in both reference CI configurations
    # The draft-08 suite's token: aud = the hub URL the reference hub derives, iss = the
    # Caddyfile's default trusted issuer. The 0.x suite's token carries neither.
    "GATEWAY_MERCURE_AUDIENCE": "https://localhost/.well-known/mercure",
    "GATEWAY_MERCURE_ISSUER": "https://localhost",
}
CHROMIUM = "/usr/bin/chromium"
RUN_TIMEOUT_S = 300  # ~11 tests of at most 10 s each, plus Playwright's start-up

# Ours, written next to the suite's config (so "@playwright/test" resolves from its
# node_modules); everything not set here is the suite's own.
OVERRIDE_CONFIG = """\
import { devices } from "@playwright/test";
import base from "./playwright.config";

export default {
  ...base,
  retries: 0,
  workers: 1,
  reporter: [["list"], ["json", { outputFile: "gateway-results.json" }]],
  projects: [
    {
      name: "chromium",
      use: {
        ...devices["Desktop Chrome"],
        launchOptions: { executablePath: %(chromium)s, args: ["--no-sandbox"] },
      },
    },
  ],
};
"""


def suite_source(location: Path, ref: str | None, work: Path) -> Path:
    """The suite's directory: as checked out, or exported at ``ref`` from a checkout's git dir
    or a bare one (like a snapshot fetched for reading) into ``work``."""
    if (location / "mercure.spec.ts").is_file():
        return location
    if (location / "conformance-tests").is_dir() and ref is None:
        return location / "conformance-tests"
    git_dir = location / ".git" if (location / ".git").exists() else location
    archive = subprocess.run(
        ["git", "--git-dir", str(git_dir), "archive", ref or "HEAD", "conformance-tests"],
        check=True, capture_output=True, timeout=60,
    ).stdout  # fmt: skip
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(work / "source", filter="data")
    return work / "source" / "conformance-tests"


def prepare(source: Path, work: Path) -> Path:
    """A scratch copy of the suite with its pinned dependencies installed and our config."""
    suite = work / "conformance-tests"
    shutil.copytree(source, suite, ignore=shutil.ignore_patterns("node_modules", "test-results"))
    env = {**os.environ, "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1"}
    subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=suite, env=env, check=True, timeout=180,
    )  # fmt: skip
    config = OVERRIDE_CONFIG % {"chromium": json.dumps(CHROMIUM)}
    (suite / "gateway.playwright.config.ts").write_text(config)
    return suite


def run_suite(suite: Path, base_url: str) -> int:
    # CI unset: the suite's config would otherwise retry failures, hiding flaky ones.
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["BASE_URL"] = base_url
    command = ["npx", "playwright", "test", "--config", "gateway.playwright.config.ts"]
    return subprocess.run(command, cwd=suite, env=env, timeout=RUN_TIMEOUT_S).returncode


def outcomes(report: dict[str, Any]) -> dict[str, str]:
    """Test title -> Playwright's outcome ("expected" = passed, "unexpected" = failed)."""
    found: dict[str, str] = {}

    def walk(suite: dict[str, Any], path: tuple[str, ...]) -> None:
        title = (*path, suite["title"]) if suite.get("title") else path
        for spec in suite.get("specs", []):
            for test in spec["tests"]:
                found[" > ".join((*title[1:], spec["title"]))] = test["status"]
        for child in suite.get("suites", []):
            walk(child, title)

    for root in report["suites"]:
        walk(root, ())
    return found


def summary(results: dict[str, str]) -> str:
    passed = [name for name, status in results.items() if status == "expected"]
    failed = [name for name, status in results.items() if status != "expected"]
    lines = [f"{len(passed)} passed, {len(failed)} failed"]
    lines += [f"  PASS {name}" for name in passed] + [f"  FAIL {name}" for name in failed]
    return "\n".join(lines)


class Hub:
    """One gateway, or ``replicas`` of them behind nginx round-robin (the e2e proxy): the
    suite's page, its EventSource and its POST then land on different replicas."""

    def __init__(self, work: Path, replicas: int) -> None:
        self.redis = RedisServer()
        logs = [work / f"gateway-{n}.log" for n in range(replicas)]
        self.gateways = [GatewayProcess(None, env=HUB_ENV, log_path=log) for log in logs]
        ports = [gateway.port for gateway in self.gateways]
        self.proxy = Nginx(work / "nginx", ports) if replicas > 1 else None

    def start(self) -> str:
        """The hub's URL, once every part is ready."""
        self.redis.start()
        for gateway in self.gateways:
            gateway.redis_url = self.redis.url
            gateway.start()
        if self.proxy is None:
            return f"{self.gateways[0].url}/.well-known/mercure"
        return f"{self.proxy.start().url}/.well-known/mercure"

    def spread(self) -> str:
        """Which replica served what (nginx's access log), to show the suite crossed them."""
        if self.proxy is None:
            return ""
        served: dict[str, int] = {}
        for line in self.proxy.access_log():
            method, target = line.split('"', 2)[1].split(" ")[:2]
            upstream = line.rsplit("upstream=", 1)[1].split(" ", 1)[0]
            key = f"{method} {target.split('?', 1)[0]} -> {upstream}"
            served[key] = served.get(key, 0) + 1
        return "requests per replica: " + ", ".join(f"{k}: {v}" for k, v in sorted(served.items()))

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
        for gateway in self.gateways:
            gateway.stop()
        self.redis.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", default=os.environ.get("MERCURE_CONFORMANCE_DIR"))
    parser.add_argument("--ref", default=os.environ.get("MERCURE_CONFORMANCE_REF"))
    parser.add_argument("--replicas", type=int, default=1, help="gateways (>1: behind nginx)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch dir and logs")
    args = parser.parse_args()
    if not args.dir:
        parser.error("set MERCURE_CONFORMANCE_DIR (a dunglas/mercure checkout or git dir)")
    work = Path(tempfile.mkdtemp(prefix="mercure-conformance-"))
    suite = prepare(suite_source(Path(args.dir), args.ref, work), work)
    hub = Hub(work, args.replicas)
    try:
        code = run_suite(suite, hub.start())
        print(hub.spread())
    finally:
        hub.stop()
    report = json.loads((suite / "gateway-results.json").read_text())
    print(summary(outcomes(report)))
    if args.keep:
        print(f"kept: {work} (gateway logs, the suite's playwright-report/)")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
