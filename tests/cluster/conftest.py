"""A loopback Redis Cluster (3 masters, 3 replicas) and two gateway processes in front of it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.gateway_process import GatewayProcess
from tests.support.topologies import ClusterSetup


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterSetup]:
    setup = ClusterSetup(tmp_path_factory.mktemp("cluster"), replicas=1)
    try:  # a start that fails half-way must not leave its redis-servers behind
        yield setup.start()
    finally:
        setup.close()


def start_gateways(url: str, logs: Path, envs: list[dict[str, str]]) -> list[GatewayProcess]:
    gateways = [
        GatewayProcess(url, env=env, log_path=logs / f"gateway-{n}.log")
        for n, env in enumerate(envs)
    ]
    try:
        for gateway in gateways:
            gateway.start()
    except BaseException:
        for gateway in gateways:
            gateway.stop()
        raise
    return gateways


@pytest.fixture(scope="module")
def gateways(
    cluster: ClusterSetup, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[GatewayProcess]]:
    """Two gateways that know only the first node: the rest come from the slot map."""
    started = start_gateways(cluster.first_url, tmp_path_factory.mktemp("gw"), [{}, {}])
    yield started
    for gateway in started:
        gateway.stop()
