"""Fixtures for the e2e suite: the tools it needs (failing loudly when one is missing) and
clusters of real replicas behind a real nginx."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.cluster import Cluster
from tests.e2e.proxy import INSTALL_HINT, nginx_binary

E2E_DIR = Path(__file__).resolve().parent
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="session", autouse=True)
def e2e_tools() -> None:
    """Never skip: a machine without the tools fails here, with the command that fixes it."""
    missing = [tool for tool in ("node", "redis-server") if shutil.which(tool) is None]
    if nginx_binary() is None:
        missing.append("nginx")
    if not CHROMIUM.exists():
        missing.append(str(CHROMIUM))
    if not (E2E_DIR / "node_modules" / "playwright-core").is_dir():
        missing.append("tests/e2e/node_modules (npm ci)")
    if missing:
        pytest.fail(f"e2e tools missing: {', '.join(missing)}; {INSTALL_HINT}", pytrace=False)


def _cluster(directory: Path, env: Callable[[Cluster], dict[str, str]]) -> Iterator[Cluster]:
    cluster = Cluster(directory)
    cluster.env.update(env(cluster))
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Auth off, 0.5 s retry: hint. Tests use their own channels; a test that restarts or kills
    replicas leaves three ready ones behind."""
    yield from _cluster(tmp_path_factory.mktemp("cluster"), lambda _: {})


# Streams start with a 60 s retry: hint. Drained streams end with a short random one (0.25-2 s):
# a client that kept the first hint would not be back within a test's wait.
LONG_RETRY_MS = "60000"
JWT_SECRET = "e2e-secret-that-is-at-least-32-bytes-long!"
PUBLIC = "e2e-public-*"  # anyone may subscribe and publish here; everything else needs a token


@pytest.fixture(scope="module")
def secure_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Auth on (HS256), CORS for the proxy's second origin, anonymous access to e2e-public-*."""
    yield from _cluster(
        tmp_path_factory.mktemp("secure-cluster"),
        lambda cluster: {
            "GATEWAY_RETRY_MS": LONG_RETRY_MS,
            "GATEWAY_JWT_SECRET": JWT_SECRET,
            "GATEWAY_CORS_ORIGINS": cluster.proxy.page_origin,
            "GATEWAY_ANONYMOUS_SUBSCRIBE": PUBLIC,
            "GATEWAY_ANONYMOUS_PUBLISH": PUBLIC,
        },
    )
