"""Closed-loop workloads: N clients, each sending its next request when its last completes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import glia
from glia.policies import resolve_router
from glia.sim import (
    ClusterConfig,
    IterationRecord,
    LatencyModel,
    Trace,
    WorkloadConfig,
    build_trace,
    run_simulation,
)

from .test_engine import _cluster, _decodes, _prefill


def _closed(prompts: list[int], outputs: list[int], clients: int, think: float = 0.0) -> Trace:
    n = len(prompts)
    return Trace(
        np.zeros(n),
        np.asarray(prompts, dtype=np.int64),
        np.asarray(outputs, dtype=np.int64),
        concurrency=clients,
        think_s=think,
    )


@pytest.mark.parametrize("think", [0.0, 0.25])
@pytest.mark.parametrize("fast_forward", [True, False])
def test_one_client_sends_each_request_when_the_last_completes(
    a10: LatencyModel, think: float, fast_forward: bool
) -> None:
    prompts, outputs = [10, 100, 33], [5, 40, 1]
    result = run_simulation(
        _closed(prompts, outputs, 1, think), _cluster(), resolve_router("llq"),
        fast_forward=fast_forward,
    )  # fmt: skip
    t = result.requests
    start = 0.0
    for i, (p, d) in enumerate(zip(prompts, outputs, strict=True)):
        ttft = start + _prefill(a10, p)
        done = _decodes(a10, ttft, p, d - 1)
        assert t.arrived_at[i] == pytest.approx(start, abs=1e-12)
        assert t.prefill_completed_at[i] == pytest.approx(ttft, rel=1e-12)
        assert t.completed_at[i] == pytest.approx(done, rel=1e-12)
        start = done + think
    # Alone on the replica every time: E2E is the request's own service time.
    assert np.allclose(t.request_slowdown, 1.0, atol=0.01)


def test_more_clients_than_requests_send_everything_at_once() -> None:
    result = run_simulation(_closed([10, 20], [3, 5], 8), _cluster(), resolve_router("llq"))
    assert result.requests.arrived_at.tolist() == [0.0, 0.0]


def test_a_closed_loop_workload_from_its_config(a10: LatencyModel) -> None:
    w = WorkloadConfig(concurrency=4, isl=512, osl=64, max_requests=40)
    trace = build_trace(w, seed=3)
    assert len(trace) == 40 and trace.concurrency == 4
    assert set(trace.num_prefill_tokens.tolist()) == {512}
    assert set(trace.num_decode_tokens.tolist()) == {64}
    default = build_trace(WorkloadConfig(concurrency=30), seed=0)
    assert len(default) == 300  # ten per client
    assert len(build_trace(WorkloadConfig(concurrency=2), seed=0)) == 100  # at least 100


def test_closed_loop_is_deterministic_and_the_same_with_and_without_jit() -> None:
    w = WorkloadConfig(concurrency=12, max_requests=150)
    c = ClusterConfig(num_replicas=2, gpu="H100")
    runs = [
        run_simulation(build_trace(w, 1), c, resolve_router("llq"), workload=w, jit=jit)
        for jit in (True, True, False)
    ]
    for r in runs[1:]:
        for col in ("arrived_at", "completed_at", "prefill_completed_at", "replica_id"):
            assert np.array_equal(getattr(r.requests, col), getattr(runs[0].requests, col))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"qps": 5.0}, "a closed-loop workload (concurrency) sends each request when a client's "
         "last one completes: drop qps, duration_s and generated arrivals, and bound it with "
         "max_requests"),
        ({"concurrency": 0}, "concurrency is 0: give at least 1 client"),
        ({"isl": 0}, "isl is 0: give a length of at least 1 token"),
        ({"think_s": -1.0}, "think_s is -1.0: give seconds, >= 0"),
    ],
)  # fmt: skip
def test_bad_closed_loop_settings(changes: dict[str, float], message: str) -> None:
    w = WorkloadConfig(**({"concurrency": 4} | changes))  # type: ignore[arg-type]
    with pytest.raises(glia.InputError) as err:
        build_trace(w, 0)
    assert str(err.value) == message


@settings(max_examples=40, deadline=None)
@given(
    clients=st.integers(1, 12),
    replicas=st.integers(1, 3),
    seed=st.integers(0, 2**16),
    think=st.sampled_from([0.0, 0.1, 2.0]),
)
def test_never_more_than_n_in_flight_and_throughput_within_capacity(
    clients: int, replicas: int, seed: int, think: float
) -> None:
    rng = np.random.default_rng(seed)
    n = 30
    trace = _closed(
        rng.integers(1, 600, n).tolist(), rng.integers(1, 80, n).tolist(), clients, think
    )
    cluster = _cluster(num_replicas=replicas, num_blocks=400)
    records: list[IterationRecord] = []
    result = run_simulation(trace, cluster, resolve_router("llq"), observer=records.append)
    t = result.requests
    # In flight at any instant: arrived and not yet completed.
    events = sorted([(a, 1) for a in t.arrived_at] + [(c, -1) for c in t.completed_at],
                    key=lambda e: (e[0], e[1]))  # completions first at a tie  # fmt: skip
    live = peak = 0
    for _, step in events:
        live += step
        peak = max(peak, live)
    assert peak <= clients
    # The first `clients` requests arrive at 0; each later one exactly when a client is free.
    assert np.all(t.arrived_at[: min(clients, n)] == 0.0)
    assert np.all(np.diff(t.arrived_at) >= 0)
    # Throughput cannot beat the replicas' capacity: each iteration emits at most one token
    # per sequence, and at least its fixed time passes.
    a10 = cluster.resolve().latency
    floor = a10.iteration_time(0, 0, 0, 1, 1, 1)
    per_replica = min(cluster.max_batch_size, clients) / floor
    assert result.summary.throughput_tokens_s <= replicas * per_replica
    for r in records:
        assert r.num_seqs <= clients
