from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.bridge.postgres import PostgresServer


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server for this module (tests may stop and restart it)."""
    server = PostgresServer().init()
    try:
        yield server.start()
    finally:
        server.close()
