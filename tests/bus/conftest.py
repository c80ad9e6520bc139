"""Fixtures for bus tests: a real nats-server per test, on a free loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import glia
from glia import Experiment
from glia.bus import NatsServer, nats_server


@pytest.fixture
async def nats(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[NatsServer]:
    async with nats_server(store_dir=tmp_path_factory.mktemp("js")) as server:
        yield server


def small_experiments(n: int, duration_s: float = 6.0) -> list[Experiment]:
    """``n`` distinct, quick experiments (a few hundred requests each)."""
    cluster, workload = glia.experiment_config("glia-routing", duration_s=duration_s)
    routers = sorted(glia.BASELINES)
    return [
        Experiment(cluster=cluster, workload=workload, seed=i // len(routers), router=r)
        for i, r in zip(range(n), (routers * (n // len(routers) + 1)), strict=False)
    ]
