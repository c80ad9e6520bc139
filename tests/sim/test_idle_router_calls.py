"""Skipped router calls on an empty global queue: only for schedules marked idle, and the results
are the same as when every call is made."""

from __future__ import annotations

import numpy as np
import pytest

import glia
from glia.policies import BASELINES, LeastLoadedQueueRouter, Router, resolve_router
from glia.sim import COLUMNS, ClusterView, run_simulation
from glia.sim._engine import _idle_when_queue_empty

MARKED = {"llq", "lor", "power-of-two", "least-kv", "llm-d", "llm-d-prefix", "sglang-cache"} | {
    "expert",
    "hra",
    "llm-d-1-1",  # their prefix index changes only when they route
    "llm-d-3-2-2",
}


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_which_built_in_routers_are_skipped_on_an_empty_queue(name: str) -> None:
    # random draws from its generator and round-robin loops over the queue: not marked.
    assert _idle_when_queue_empty(resolve_router(name)) is (name in MARKED)


class _CountingLLQ(LeastLoadedQueueRouter):
    """LLQ with its schedule overridden: unmarked, so called at every event."""

    def setup(self, cluster: ClusterView, rng: np.random.Generator) -> None:
        super().setup(cluster, rng)
        self.empty_calls = 0

    def schedule(self, cluster: ClusterView) -> list[tuple[int, glia.sim.Request]]:
        if not cluster.num_queued:
            self.empty_calls += 1
        out: list[tuple[int, glia.sim.Request]] = super().schedule(cluster)
        return out


def test_an_overriding_subclass_is_called_on_an_empty_queue_and_results_match() -> None:
    cluster, workload = glia.experiment_config("glia-routing", duration_s=60.0)
    trace = glia.sim.build_trace(workload, 3, max_context=8192)
    counting = _CountingLLQ()
    assert isinstance(counting, Router)
    assert not _idle_when_queue_empty(counting)
    called = run_simulation(trace, cluster, counting, seed=3)
    skipped = run_simulation(trace, cluster, resolve_router("llq"), seed=3)
    assert counting.empty_calls > 0  # the subclass saw the calls LLQ's mark skips
    for c in COLUMNS:
        assert np.array_equal(getattr(called.requests, c), getattr(skipped.requests, c)), c
