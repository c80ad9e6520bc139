"""The numba kernels against their references: the latency model and stepping the simulator."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import glia
from glia.kernels import (
    BETWEEN,
    IN_FLIGHT,
    NEEDS_MEMORY,
    decode_run,
    iteration_times,
    one_iteration_time,
    select,
)
from glia.policies import BASELINES, resolve_router
from glia.sim import COLUMNS, LatencyModel, Trace, catalogue, load_profile, run_simulation


def _model(gpu: str = "A10", model: str = "llama-3-8b", tp: int = 1) -> LatencyModel:
    c = catalogue()
    return LatencyModel.build(c.gpu(gpu)[1], c.model(model)[1], tp)


def test_coefficient_order_is_the_kernels_contract() -> None:
    assert LatencyModel.__struct_fields__ == (
        "linear_flops_per_token",
        "linear_bytes",
        "logits_flops_per_seq",
        "logits_bytes",
        "embed_bytes_per_token",
        "attn_flops_per_pair",
        "kv_bytes_per_token",
        "linear_flops_per_s",
        "weight_bytes_per_s",
        "attn_flops_per_s",
        "kv_bytes_per_s",
        "overhead_s",
        "overhead_per_seq_s",
        "overhead_per_token_s",
        "allreduce_bytes_per_token",
        "allreduce_bytes_per_s",
        "allreduce_fixed_s",
    )


counts = st.integers(min_value=0, max_value=200_000)
_Row = tuple[int, int, int, int, int, int]


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.tuples(*[counts] * 6), min_size=0, max_size=40),
    gpu=st.sampled_from(["A10", "A100", "H100", "H200"]),
    tp=st.sampled_from([1, 2, 4]),
    profile=st.booleans(),
    jit=st.booleans(),
)
def test_batched_latency_equals_the_model_bit_for_bit(
    rows: list[_Row], gpu: str, tp: int, profile: bool, jit: bool
) -> None:
    c = catalogue()
    eff = load_profile("h200-llama-3-8b") if profile else None  # per-token overhead too
    lm = LatencyModel.build(c.gpu(gpu)[1], c.model("llama-3-8b")[1], tp, eff)
    cols = [np.array([r[i] for r in rows], dtype=np.int64) for i in range(6)]
    got = select(iteration_times, jit)(lm.coefficients(), *cols)
    want = [lm.iteration_time(*r) for r in rows]
    assert got.tolist() == want  # exact: same operations in the same order
    singles = [select(one_iteration_time, jit)(lm.coefficients(), *r) for r in rows]
    assert singles == want


def test_batched_latency_of_an_empty_batch() -> None:
    empty = np.zeros(0, dtype=np.int64)
    out = iteration_times(_model().coefficients(), *[empty] * 6)
    assert out.shape == (0,)


def _step_reference(
    lm: LatencyModel,
    start: float,
    it: int,
    n_dec: int,
    kv_base: int,
    free: int,
    phases: list[int],
    stop_it: int,
    horizon: float,
    inclusive: bool,
) -> tuple[int, int, float, float, int]:
    """decode_run written plainly with the latency model, one iteration at a time."""
    t = start
    while True:
        if inclusive and t >= horizon:
            return BETWEEN, it, t, 0.0, free
        need = phases[it % len(phases)]
        if need > free:
            return NEEDS_MEMORY, it, t, 0.0, free
        free -= need
        kv = kv_base + n_dec * it
        dt = lm.iteration_time(0, 0, 0, n_dec, kv, n_dec)
        if it >= stop_it or t + dt > horizon or (t + dt == horizon and not inclusive):
            return IN_FLIGHT, it, t, dt, free
        t += dt
        it += 1


@settings(max_examples=150, deadline=None)
@given(
    n_dec=st.integers(1, 128),
    it=st.integers(0, 10_000),
    free=st.integers(0, 3000),
    phase_seed=st.integers(0, 2**32 - 1),
    run_len=st.integers(0, 300),
    horizon=st.one_of(st.just(float("inf")), st.floats(0.0, 30.0)),
    inclusive=st.booleans(),
    jit=st.booleans(),
)
def test_decode_run_matches_stepping(
    n_dec: int,
    it: int,
    free: int,
    phase_seed: int,
    run_len: int,
    horizon: float,
    inclusive: bool,
    jit: bool,
) -> None:
    lm = _model()
    rng = np.random.default_rng(phase_seed)
    phases = np.bincount(rng.integers(0, 16, n_dec), minlength=16).astype(np.int64)
    kv_base = int(rng.integers(0, 5000)) * n_dec - n_dec * it
    args = (1.0, it, n_dec, kv_base, free, phases, it + run_len, horizon, inclusive)
    got = select(decode_run, jit)(lm.coefficients(), *args)
    want = _step_reference(lm, 1.0, it, n_dec, kv_base, free, phases.tolist(), *args[6:])
    assert tuple(float(x) for x in got) == tuple(float(x) for x in want)


def test_decode_run_memory_runs_out_on_the_first_iteration() -> None:
    phases = np.zeros(16, dtype=np.int64)
    phases[5] = 3
    status, it, start, duration, free = decode_run(
        _model().coefficients(), 2.0, 5, 3, 0, 2, phases, 100, float("inf"), True
    )
    assert (status, it, start, duration, free) == (NEEDS_MEMORY, 5, 2.0, 0.0, 2)


def test_decode_run_stops_at_the_completing_iteration() -> None:
    lm = _model()
    phases = np.zeros(16, dtype=np.int64)
    status, it, start, duration, free = decode_run(
        lm.coefficients(), 0.0, 0, 1, 100, 10, phases, 0, float("inf"), True
    )
    assert (status, it, start, free) == (IN_FLIGHT, 0, 0.0, 10)
    assert duration == lm.iteration_time(0, 0, 0, 1, 100, 1)


def test_decode_run_between_iterations_at_an_inclusive_horizon() -> None:
    lm = _model()
    dt = lm.iteration_time(0, 0, 0, 2, 40, 2)
    phases = np.zeros(16, dtype=np.int64)
    got = decode_run(lm.coefficients(), 0.0, 0, 2, 40, 10, phases, 50, dt, True)
    assert got[:3] == (BETWEEN, 1, dt)
    got = decode_run(lm.coefficients(), 0.0, 0, 2, 40, 10, phases, 50, dt, False)
    assert got[:3] == (IN_FLIGHT, 0, 0.0)


def _tables_equal(a: glia.SimResult, b: glia.SimResult) -> bool:
    return all(np.array_equal(getattr(a.requests, c), getattr(b.requests, c)) for c in COLUMNS)


def test_the_equivalence_window_has_memory_pressure() -> None:
    result = glia.simulate("llq", seed=5, duration_s=150.0)
    assert result.summary.restarts > 0  # so the runs below exercise preemption


@pytest.mark.parametrize("router", sorted(BASELINES))
def test_fast_forward_and_jit_change_nothing_on_glia_routing(router: str) -> None:
    # Seed 5's first 150 s overload the cluster: every router hits memory pressure.
    cluster, workload = glia.experiment_config("glia-routing", duration_s=150.0)
    trace = glia.sim.build_trace(workload, 5, max_context=8192)
    runs = [
        run_simulation(trace, cluster, resolve_router(router), seed=5, fast_forward=ff, jit=jit)
        for ff, jit in ((False, True), (True, True), (True, False))
    ]
    assert _tables_equal(runs[0], runs[1])
    assert _tables_equal(runs[0], runs[2])


@settings(max_examples=40, deadline=None)
@given(
    data=st.data(),
    n=st.integers(1, 30),
    replicas=st.integers(1, 3),
    block_size=st.sampled_from([4, 16]),
    router=st.sampled_from(sorted(BASELINES)),
)
def test_fast_forward_is_exact_on_random_clusters(
    data: st.DataObject, n: int, replicas: int, block_size: int, router: str
) -> None:
    # Arrival times on a coarse grid make exact ties between events common.
    arrivals = sorted(data.draw(st.lists(st.integers(0, 40), min_size=n, max_size=n)))
    prompts = data.draw(st.lists(st.integers(1, 120), min_size=n, max_size=n))
    outputs = data.draw(st.lists(st.integers(1, 120), min_size=n, max_size=n))
    need = max(-(-(p + d - 1) // block_size) for p, d in zip(prompts, outputs, strict=True))
    blocks = data.draw(st.integers(need + 1, need + 60))
    trace = Trace(
        np.array(arrivals, dtype=np.float64) * 0.05,
        np.array(prompts, dtype=np.int64),
        np.array(outputs, dtype=np.int64),
    )
    cluster = glia.ClusterConfig(
        num_replicas=replicas,
        num_blocks=blocks,
        block_size=block_size,
        chunk_size=data.draw(st.sampled_from([32, 512])),
        max_batch_size=data.draw(st.integers(1, 8)),
        watermark=0.0,
    )
    step = run_simulation(trace, cluster, resolve_router(router), fast_forward=False)
    fast = run_simulation(trace, cluster, resolve_router(router), fast_forward=True)
    assert _tables_equal(step, fast)


@pytest.mark.slow
@pytest.mark.parametrize("router", sorted(BASELINES))
def test_jit_and_no_jit_agree_on_the_whole_glia_routing_preset(router: str) -> None:
    cluster, workload = glia.experiment_config("glia-routing")
    trace = glia.sim.build_trace(workload, 1, max_context=8192)
    jit, nojit = (
        run_simulation(trace, cluster, resolve_router(router), seed=1, jit=flag)
        for flag in (True, False)
    )
    assert _tables_equal(jit, nojit)
