"""Heterogeneous clusters: replicas of different GPU kinds and models behind one router."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

import glia
from glia.policies import Router
from glia.sim import (
    ClusterConfig,
    ClusterView,
    ReplicaGroup,
    WorkloadConfig,
    build_trace,
    run_simulation,
)

BASE, WORKLOAD = glia.experiment_config("glia-routing", duration_s=120.0)
MIXED = msgspec.structs.replace(
    BASE, groups=(ReplicaGroup(count=2), ReplicaGroup(count=2, gpu="A100-80"))
)


class Only(Router):
    """Routes everything to the replicas whose GPU is ``gpu`` (round robin among them)."""

    seen: list[tuple[str, ...]]

    def __init__(self, gpu: str) -> None:
        self.gpu, self.seen, self.k = gpu, [], 0

    def schedule(self, cluster: ClusterView) -> list[tuple[int, glia.Request]]:
        self.seen.append(tuple(f"{r.gpu}/{r.model}" for r in cluster.replicas))
        mine = [r.id for r in cluster.replicas if r.gpu == self.gpu]
        out = []
        for req in cluster.queue:
            out.append((mine[self.k % len(mine)], req))
            self.k += 1
        return out


def run(
    cluster: ClusterConfig,
    router: Router | str,
    workload: WorkloadConfig = WORKLOAD,
    fast_forward: bool = True,
) -> glia.SimResult:
    trace = build_trace(workload, 0, max_context=cluster.resolve().max_context)
    policy = glia.policies.resolve_router(router) if isinstance(router, str) else router
    return run_simulation(trace, cluster, policy, workload=workload, fast_forward=fast_forward)


def test_one_group_is_the_same_cluster() -> None:
    grouped = msgspec.structs.replace(BASE, groups=(ReplicaGroup(count=4),))
    a, b = run(BASE, "llq"), run(grouped, "llq")
    assert a.summary.mean_e2e_s == b.summary.mean_e2e_s
    assert np.array_equal(a.requests.completed_at, b.requests.completed_at)


def test_groups_resolve_in_order_and_derive_their_own_kv_capacity() -> None:
    rc = MIXED.resolve()
    assert [(r.gpu, r.model) for r in rc.replicas] == [("A10", "llama-3-8b")] * 2 + [
        ("A100-80", "llama-3-8b")
    ] * 2
    assert [r.num_blocks for r in rc.replicas[:2]] == [2240, 2240]  # the preset's, same GPU
    assert rc.replicas[2].num_blocks > 10 * 2240  # derived from the A100's memory
    assert rc.heterogeneous and not BASE.resolve().heterogeneous
    given = msgspec.structs.replace(
        MIXED, groups=(ReplicaGroup(count=2), ReplicaGroup(count=2, gpu="A100-80", num_blocks=5000))
    )
    assert given.resolve().replicas[3].num_blocks == 5000


def test_routers_see_each_replicas_kind_and_faster_gpus_serve_faster() -> None:
    to_a10, to_a100 = Only("A10"), Only("A100-80")
    slow, fast = run(MIXED, to_a10), run(MIXED, to_a100)
    assert to_a10.seen[0] == ("A10/llama-3-8b",) * 2 + ("A100-80/llama-3-8b",) * 2
    assert set(slow.requests.replica_id.tolist()) == {0, 1}
    assert set(fast.requests.replica_id.tolist()) == {2, 3}
    assert fast.summary.mean_e2e_s < 0.5 * slow.summary.mean_e2e_s


@pytest.mark.parametrize("router", ["llq", "hra", "least-kv"])
def test_fast_forward_gives_the_same_results_on_mixed_replicas(router: str) -> None:
    stepped = run(MIXED, router, fast_forward=False)
    fast = run(MIXED, router)
    assert np.array_equal(stepped.requests.completed_at, fast.requests.completed_at)
    assert np.array_equal(stepped.requests.replica_id, fast.requests.replica_id)


def test_mismatched_counts_are_a_clear_error() -> None:
    bad = msgspec.structs.replace(BASE, groups=(ReplicaGroup(count=1), ReplicaGroup(count=2)))
    with pytest.raises(glia.InputError) as err:
        bad.resolve()
    assert str(err.value) == (
        "cluster num_replicas is 4 but its groups have 1 + 2 replicas: give every group a count "
        "of at least 1 and set num_replicas to their total"
    )


def test_requests_must_fit_the_smallest_replica() -> None:
    tiny = msgspec.structs.replace(
        MIXED, groups=(ReplicaGroup(count=2, num_blocks=40), ReplicaGroup(count=2, gpu="A100-80"))
    )
    with pytest.raises(glia.InputError, match=r"but a replica has 40 usable \(40 minus 0"):
        run(tiny, "llq")


def test_the_cli_describes_a_mixed_cluster() -> None:
    from glia.cli._render import _cluster_line

    line = _cluster_line(run(MIXED, "llq", WORKLOAD))
    assert line.startswith("2 x A10 serving llama-3-8b (2,240 KV blocks each) + 2 x A100-80 ")
