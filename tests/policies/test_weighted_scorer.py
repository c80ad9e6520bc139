"""The llm-d weighted scorer: weights as parameters, the 1:1 and 3:2:2 baselines, and its prefix
scorer behind scraped metrics (the router's own record of what it sent where)."""

from __future__ import annotations

import numpy as np
import pytest

import glia
from glia.policies import (
    LlmdScorerRouter,
    LlmdWeighted11Router,
    LlmdWeighted322Router,
    resolve_router,
)
from glia.policies._prefix_index import PrefixIndex
from glia.sim import ClusterConfig, Request, Trace, run_simulation


def test_the_weights_are_parameters_and_the_baselines_fix_them() -> None:
    assert LlmdScorerRouter().weights == (0.0, 1.0, 1.0)  # llm-d's default: queue and KV
    assert LlmdScorerRouter(prefix_weight=2.0, kv_weight=0.0).weights == (2.0, 1.0, 0.0)
    assert resolve_router("llm-d-1-1").weights == (1.0, 1.0, 0.0)  # type: ignore[attr-defined]
    assert resolve_router("llm-d-3-2-2").weights == (3.0, 2.0, 2.0)  # type: ignore[attr-defined]
    assert isinstance(resolve_router("llm-d-1-1"), LlmdWeighted11Router)
    assert isinstance(resolve_router("llm-d-3-2-2"), LlmdWeighted322Router)


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"queue_weight": -1.0}, "llm-d scorer queue_weight is -1.0: give a finite weight >= 0"),
        ({"prefix_weight": float("nan")},
         "llm-d scorer prefix_weight is nan: give a finite weight >= 0"),
        ({"queue_weight": 0.0, "kv_weight": 0.0},
         "llm-d scorer weights are all 0: give at least one positive weight (queue_weight, "
         "kv_weight or prefix_weight)"),
    ],
)  # fmt: skip
def test_bad_weights_are_clear_errors(weights: dict[str, float], message: str) -> None:
    with pytest.raises(glia.InputError) as err:
        LlmdScorerRouter(**weights)
    assert str(err.value) == message


def _groups_trace() -> Trace:
    """Two prefix groups of 200-token prefixes, alternating, one request every 0.1 s."""
    n = 40
    ids = np.arange(n) % 2
    return Trace(
        np.arange(n, dtype=np.float64) * 0.1,
        np.full(n, 230, dtype=np.int64),
        np.full(n, 20, dtype=np.int64),
        ids.astype(np.int64),
        np.full(n, 200, dtype=np.int64),
        shared_prefixes=True,
    )


def test_behind_scraped_metrics_the_prefix_scorer_follows_what_it_sent() -> None:
    stale = ClusterConfig(num_replicas=2, num_blocks=400, prefix_cache=0.5,
                          metrics_interval_s=0.5)  # fmt: skip
    exact = ClusterConfig(num_replicas=2, num_blocks=400, prefix_cache=0.5)
    seen = run_simulation(_groups_trace(), stale, resolve_router("llm-d-1-1"))
    read = run_simulation(_groups_trace(), exact, resolve_router("llm-d-1-1"))
    # Light load: queues stay empty (the queue scores tie), so the prefix scorer keeps both
    # groups where they first went; its record of what it sent agrees with the caches.
    assert seen.requests.replica_id.tolist() == [0] * 40
    assert np.array_equal(seen.requests.replica_id, read.requests.replica_id)
    assert np.array_equal(seen.requests.completed_at, read.requests.completed_at)
    # LLQ alternates instead.
    llq = run_simulation(_groups_trace(), stale, resolve_router("llq"))
    assert set(llq.requests.replica_id.tolist()) == {0, 1}


def test_the_index_remembers_the_latest_prefixes_within_its_budget() -> None:
    class View:
        id, block_size = 3, 16

    index = PrefixIndex(capacity_blocks=20)  # 320 tokens
    a, b = Request(0, 0.0, 200, 1, 150), Request(1, 0.0, 200, 2, 150)
    index.record(View(), a)  # type: ignore[arg-type]
    assert index.estimate(View(), a) == 150  # type: ignore[arg-type]
    index.record(View(), b)  # type: ignore[arg-type]  # 13 + 13 blocks > 20: a goes
    assert (index.estimate(View(), a), index.estimate(View(), b)) == (0, 150)  # type: ignore[arg-type]


def test_a_router_starts_each_run_with_an_empty_index() -> None:
    router = resolve_router("llm-d-1-1")
    cluster = ClusterConfig(num_replicas=2, num_blocks=400, prefix_cache=0.5,
                            metrics_interval_s=0.5)  # fmt: skip
    one = run_simulation(_groups_trace(), cluster, router)
    two = run_simulation(_groups_trace(), cluster, router)
    assert np.array_equal(one.requests.replica_id, two.requests.replica_id)
    assert np.array_equal(one.requests.completed_at, two.requests.completed_at)
