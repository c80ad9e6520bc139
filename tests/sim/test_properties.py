"""Invariants of the simulator on random small traces, clusters and baseline routers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

import glia
from glia.policies import BASELINES, resolve_router
from glia.sim import (
    COLUMNS,
    ClusterConfig,
    IterationRecord,
    RunningRequest,
    SimResult,
    Trace,
    run_simulation,
)


@dataclass(frozen=True)
class Scenario:
    trace: Trace
    cluster: ClusterConfig
    router: str

    def worst_blocks(self) -> np.ndarray:
        """Blocks each request may need at once (after a restart: prompt + output - 1)."""
        bs = self.cluster.block_size
        total = self.trace.num_prefill_tokens + self.trace.num_decode_tokens - 1
        return -(-total // bs)

    def usable_blocks(self) -> int:
        nb = self.cluster.num_blocks
        assert nb is not None
        return nb - int(self.cluster.watermark * nb)


_time = st.one_of(
    st.floats(0.0, 20.0, allow_nan=False),
    st.integers(0, 40).map(lambda k: k * 0.5),  # a coarse grid: simultaneous events are common
)


@st.composite
def traces(draw: st.DrawFn, max_requests: int = 40) -> Trace:
    n = draw(st.integers(1, max_requests))
    arrivals = sorted(draw(st.lists(_time, min_size=n, max_size=n)))
    prompts = draw(st.lists(st.integers(1, 300), min_size=n, max_size=n))
    outputs = draw(st.lists(st.integers(1, 300), min_size=n, max_size=n))
    return Trace(
        np.array(arrivals, dtype=np.float64),
        np.array(prompts, dtype=np.int64),
        np.array(outputs, dtype=np.int64),
    )


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    cluster = ClusterConfig(
        num_replicas=draw(st.integers(1, 3)),
        num_blocks=draw(st.integers(40, 200)),
        block_size=draw(st.sampled_from([4, 8, 16])),
        chunk_size=draw(st.integers(16, 512)),
        max_batch_size=draw(st.integers(1, 16)),
        watermark=draw(st.floats(0.0, 0.1)),
    )
    return Scenario(draw(traces()), cluster, draw(st.sampled_from(sorted(BASELINES))))


class Recorder:
    """An observer keeping every iteration record."""

    def __init__(self) -> None:
        self.records: list[IterationRecord] = []

    def __call__(self, record: IterationRecord) -> None:
        self.records.append(record)


def _tables_equal(a: SimResult, b: SimResult) -> bool:
    return all(np.array_equal(getattr(a.requests, c), getattr(b.requests, c)) for c in COLUMNS)


def _check_records(s: Scenario, records: list[IterationRecord]) -> None:
    last_end: dict[int, float] = {}
    for r in records:
        assert 0 <= r.replica < s.cluster.num_replicas
        assert r.end > r.start >= last_end.get(r.replica, 0.0)
        last_end[r.replica] = r.end
        assert r.num_blocks == s.cluster.num_blocks
        assert 0 <= r.allocated_blocks <= r.num_blocks
        assert 1 <= r.num_seqs <= s.cluster.max_batch_size
        assert r.decode_tokens <= r.num_seqs
        assert r.prefill_tokens + r.decode_tokens <= max(s.cluster.chunk_size, r.decode_tokens)
        assert r.preempted >= 0


def _check_table(s: Scenario, result: SimResult, records: list[IterationRecord]) -> None:
    t = result.requests
    n = len(s.trace)
    assert len(t) == n == result.summary.num_requests
    assert t.request_id.tolist() == list(range(n))
    for name in COLUMNS:
        col = getattr(t, name)
        assert col.shape == (n,)
        assert np.all(np.isfinite(col)), name
        assert np.all(col >= 0), name
    assert np.array_equal(t.arrived_at, s.trace.arrived_at)
    assert np.array_equal(t.request_num_prefill_tokens, s.trace.num_prefill_tokens)
    assert np.array_equal(t.request_num_decode_tokens, s.trace.num_decode_tokens)
    assert np.all(t.scheduled_at >= t.arrived_at)
    assert np.all(t.prefill_completed_at >= t.scheduled_at)
    assert np.all(t.completed_at >= t.prefill_completed_at)
    assert np.all(t.completed_at > t.arrived_at)
    assert np.array_equal(t.request_e2e_time, t.completed_at - t.arrived_at)
    assert np.array_equal(t.prefill_e2e_time, t.prefill_completed_at - t.arrived_at)
    assert np.array_equal(t.request_scheduling_delay, t.scheduled_at - t.arrived_at)
    assert np.all(t.replica_id < s.cluster.num_replicas)
    assert np.all(t.request_slowdown > 0)
    # A request finishes exactly when some iteration on its replica ends.
    ends = {(r.replica, r.end) for r in records}
    for rid, done in zip(t.replica_id.tolist(), t.completed_at.tolist(), strict=True):
        assert (rid, done) in ends
    restarts = int(t.request_num_restarts.sum())
    assert result.summary.restarts == restarts
    assert result.summary.requests_restarted == int(np.count_nonzero(t.request_num_restarts))
    assert sum(r.preempted for r in records) == restarts
    # Output tokens: one per completed prefill pass, the rest from decode steps. A restart
    # of a decoder adds a prefill pass; a restart mid-prefill does not.
    decoded = sum(r.decode_tokens for r in records)
    owed = int(s.trace.num_decode_tokens.sum()) - n
    assert owed - restarts <= decoded <= owed
    prefilled = sum(r.prefill_tokens for r in records)
    assert prefilled >= int(s.trace.num_prefill_tokens.sum())
    if restarts == 0:
        assert decoded == owed
        assert prefilled == int(s.trace.num_prefill_tokens.sum())


@settings(max_examples=60, deadline=None)
@given(s=scenarios(), seed=st.integers(0, 3))
def test_invariants(s: Scenario, seed: int) -> None:
    worst, room = s.worst_blocks(), s.usable_blocks()
    if np.any(worst > room):
        first = int(np.flatnonzero(worst > room)[0])
        with pytest.raises(glia.InputError, match=rf"^impossible cluster: request {first} of "):
            run_simulation(s.trace, s.cluster, resolve_router(s.router), seed=seed)
        return
    rec = Recorder()
    result = run_simulation(s.trace, s.cluster, resolve_router(s.router), seed=seed, observer=rec)
    _check_records(s, rec.records)
    _check_table(s, result, rec.records)
    again = run_simulation(s.trace, s.cluster, resolve_router(s.router), seed=seed)
    assert _tables_equal(result, again)  # same seed, and fast-forward changes nothing


# Without shrinking: a failure here is reported at once, instead of after minutes of shrinking
# whole simulations (tests/sim/test_engine.py has the minimal case).
@settings(
    max_examples=60,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
@given(s=scenarios(), seed=st.integers(0, 3))
def test_preemption_only_when_decoders_lack_memory(s: Scenario, seed: int) -> None:
    if np.any(s.worst_blocks() > s.usable_blocks()):
        return  # impossible: test_invariants checks the error
    rec = Recorder()
    run_simulation(s.trace, s.cluster, resolve_router(s.router), seed=seed, observer=rec)
    for r in rec.records:
        if r.preempted:
            assert r.blocks_needed > r.free_before, r


@st.composite
def roomy_scenarios(draw: st.DrawFn) -> Scenario:
    """Memory for every request at its largest at once, on any one replica."""
    trace = draw(traces(max_requests=25))
    bs = draw(st.sampled_from([4, 8, 16]))
    watermark = draw(st.floats(0.0, 0.1))
    need = int((-(-(trace.num_prefill_tokens + trace.num_decode_tokens - 1) // bs)).sum())
    blocks = need
    while blocks - int(watermark * blocks) < need:
        blocks += 1
    blocks += draw(st.integers(0, 20))
    cluster = ClusterConfig(
        num_replicas=draw(st.integers(1, 3)),
        num_blocks=blocks,
        block_size=bs,
        chunk_size=draw(st.integers(16, 512)),
        max_batch_size=draw(st.integers(1, 16)),
        watermark=watermark,
    )
    return Scenario(trace, cluster, draw(st.sampled_from(sorted(BASELINES))))


@settings(max_examples=40, deadline=None)
@given(s=roomy_scenarios())
def test_no_restarts_when_memory_never_runs_out(s: Scenario) -> None:
    rec = Recorder()
    result = run_simulation(s.trace, s.cluster, resolve_router(s.router), observer=rec)
    assert result.summary.restarts == 0
    assert not result.requests.request_num_restarts.any()
    assert not any(r.preempted for r in rec.records)
    _check_table(s, result, rec.records)


@settings(max_examples=30, deadline=None)
@given(trace=traces(max_requests=20), replicas=st.integers(1, 4))
def test_an_idle_cluster_serves_a_lone_request_at_once(trace: Trace, replicas: int) -> None:
    # Requests far apart never meet: each is scheduled the moment it arrives.
    n = len(trace)
    spaced = Trace(
        np.arange(n, dtype=np.float64) * 100.0,
        np.minimum(trace.num_prefill_tokens, 200),
        np.minimum(trace.num_decode_tokens, 200),
    )
    cluster = ClusterConfig(num_replicas=replicas, num_blocks=100, watermark=0.0)
    result = run_simulation(spaced, cluster, resolve_router("llq"))
    t = result.requests
    assert np.array_equal(t.scheduled_at, t.arrived_at)
    assert np.all(t.replica_id == 0)  # LLQ: all idle, the lowest index wins
    lone = run_simulation(
        Trace(np.zeros(1), spaced.num_prefill_tokens[-1:], spaced.num_decode_tokens[-1:]),
        cluster,
        resolve_router("llq"),
    )
    assert t.request_e2e_time[-1] == pytest.approx(lone.requests.request_e2e_time[0], rel=1e-9)


ReplicaSnap = tuple[tuple[glia.Request, ...], tuple[RunningRequest, ...], int, int, int]
CallSnap = tuple[float, str, tuple[glia.Request, ...], tuple[ReplicaSnap, ...]]


class ViewSpy:
    """Wraps a router; records everything its views showed at each call."""

    name = "view-spy"

    def __init__(self, inner: glia.Router) -> None:
        self.inner = inner
        self.seen: list[CallSnap] = []

    def setup(self, cluster: glia.ClusterView, rng: np.random.Generator) -> None:
        self.inner.setup(cluster, rng)

    def schedule(self, cluster: glia.ClusterView) -> list[tuple[int, glia.Request]]:
        replicas = tuple(
            (r.queue, r.running, r.num_allocated_blocks, r.num_free_blocks, r.num_running)
            for r in cluster.replicas
        )
        self.seen.append((cluster.now, cluster.trigger, cluster.queue, replicas))
        return list(self.inner.schedule(cluster))


def _check_view(state: CallSnap, s: Scenario) -> None:
    nb, bs = s.cluster.num_blocks, s.cluster.block_size
    for replica in state[3]:
        _, running, allocated, free, num_running = replica
        assert allocated + free == nb
        assert free >= 0
        assert num_running == len(running)
        for x in running:
            assert x.num_allocated_blocks == -(-x.num_processed_tokens // bs) or x.in_prefill
            assert x.num_generated_tokens >= 1 or x.in_prefill
        # The replica's allocation is the sum of its running requests' blocks.
        assert sum(x.num_allocated_blocks for x in running) == allocated, replica


@settings(max_examples=40, deadline=None)
@given(s=scenarios(), seed=st.integers(0, 3))
def test_views_are_the_same_with_fast_forward(s: Scenario, seed: int) -> None:
    if np.any(s.worst_blocks() > s.usable_blocks()):
        return
    stepped, fast = ViewSpy(resolve_router(s.router)), ViewSpy(resolve_router(s.router))
    run_simulation(s.trace, s.cluster, stepped, seed=seed, fast_forward=False)
    run_simulation(s.trace, s.cluster, fast, seed=seed, fast_forward=True)
    assert stepped.seen == fast.seen


# Without shrinking, like test_preemption_only_when_decoders_lack_memory (tests/sim/test_engine.py
# has the minimal case).
@settings(
    max_examples=40,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
@given(s=scenarios(), seed=st.integers(0, 3))
def test_views_are_consistent(s: Scenario, seed: int) -> None:
    if np.any(s.worst_blocks() > s.usable_blocks()):
        return
    spy = ViewSpy(resolve_router(s.router))
    run_simulation(s.trace, s.cluster, spy, seed=seed)
    for state in spy.seen:
        _check_view(state, s)
