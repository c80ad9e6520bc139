"""The discrete-event engine on tiny clusters: exact timings, batching, memory, and bad routers."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import glia
from glia.policies import Router, resolve_router
from glia.sim import (
    COLUMNS,
    ClusterConfig,
    ClusterView,
    IterationRecord,
    LatencyModel,
    Request,
    RunningRequest,
    SimResult,
    Trace,
    run_simulation,
)

from .conftest import trace_of as _trace


def _cluster(**kw: int | float) -> ClusterConfig:
    settings: dict[str, int | float] = {
        "num_replicas": 1,
        "num_blocks": 100,
        "block_size": 16,
        "chunk_size": 8192,
        "max_batch_size": 128,
        "watermark": 0.0,
    }
    return ClusterConfig(**(settings | kw))  # type: ignore[arg-type]


class Recorder:
    """An observer keeping every iteration record."""

    def __init__(self) -> None:
        self.records: list[IterationRecord] = []

    def __call__(self, record: IterationRecord) -> None:
        self.records.append(record)


def _run(
    trace: Trace,
    cluster: ClusterConfig,
    router: glia.policies.RouterSpec = "llq",
    *,
    observe: bool = True,
    seed: int = 0,
) -> tuple[SimResult, list[IterationRecord]]:
    rec = Recorder()
    result = run_simulation(
        trace, cluster, resolve_router(router), seed=seed, observer=rec if observe else None
    )
    return result, rec.records


def _prefill(lm: LatencyModel, p: int) -> float:
    return lm.iteration_time(p, 0, p * (p + 1) // 2, 0, 0, 1)


def _decodes(lm: LatencyModel, start: float, context: int, steps: int) -> float:
    """Time after ``steps`` batch-1 decode steps from ``start``, the first reading ``context``."""
    t = start
    for k in range(steps):
        t += lm.iteration_time(0, 0, 0, 1, context + k, 1)
    return t


def _tables_equal(a: SimResult, b: SimResult) -> bool:
    return all(np.array_equal(getattr(a.requests, c), getattr(b.requests, c)) for c in COLUMNS)


# -- one request ------------------------------------------------------------------------------


@pytest.mark.parametrize(("prompt", "output"), [(10, 1), (10, 5), (16, 20), (100, 40), (33, 17)])
@pytest.mark.parametrize("observe", [True, False])
def test_a_single_request(a10: LatencyModel, prompt: int, output: int, observe: bool) -> None:
    result, records = _run(_trace([0.0], [prompt], [output]), _cluster(), observe=observe)
    t = result.requests
    ttft = _prefill(a10, prompt)
    done = _decodes(a10, ttft, prompt, output - 1)
    assert t.scheduled_at[0] == 0.0 == t.arrived_at[0]
    assert t.prefill_completed_at[0] == pytest.approx(ttft, rel=1e-12)
    assert t.completed_at[0] == pytest.approx(done, rel=1e-12)
    assert t.prefill_e2e_time[0] == pytest.approx(ttft, rel=1e-12)
    assert t.request_e2e_time[0] == pytest.approx(done, rel=1e-12)
    if output > 1:
        assert t.decode_time_per_token[0] == pytest.approx((done - ttft) / (output - 1))
    else:
        assert t.decode_time_per_token[0] == 0.0
    assert 0.99 < t.request_slowdown[0] < 1.01  # alone on an idle replica
    assert t.request_num_restarts[0] == 0
    assert t.replica_id[0] == 0
    assert t.request_num_tokens[0] == prompt + output
    if observe:
        assert len(records) == output  # one prefill, then output - 1 decode steps
        assert (records[0].prefill_tokens, records[0].decode_tokens) == (prompt, 0)
        assert all(
            (r.prefill_tokens, r.decode_tokens, r.num_seqs) == (0, 1, 1) for r in records[1:]
        )
        blocks = [r.allocated_blocks for r in records]
        assert blocks == [-(-(prompt + k) // 16) for k in range(output)]


def test_a_late_request_starts_when_it_arrives(a10: LatencyModel) -> None:
    result, _ = _run(_trace([2.5], [10], [3]), _cluster())
    t = result.requests
    assert t.scheduled_at[0] == 2.5
    assert t.completed_at[0] == pytest.approx(_decodes(a10, 2.5 + _prefill(a10, 10), 10, 2))
    assert t.request_e2e_time[0] == pytest.approx(_decodes(a10, _prefill(a10, 10), 10, 2))
    assert result.summary.sim_duration_s == t.completed_at[0]


def test_chunked_prefill(a10: LatencyModel) -> None:
    result, records = _run(_trace([0.0], [100], [3]), _cluster(chunk_size=64))
    assert [(r.prefill_tokens, r.decode_tokens) for r in records] == [
        (64, 0),
        (36, 0),
        (0, 1),
        (0, 1),
    ]
    first = a10.iteration_time(64, 0, 64 * 65 // 2, 0, 0, 1)
    second = a10.iteration_time(36, 64, 36 * 64 + 36 * 37 // 2, 0, 0, 1)
    assert records[0].end - records[0].start == pytest.approx(first, rel=1e-12)
    assert records[1].end - records[1].start == pytest.approx(second, rel=1e-12)
    ttft = result.requests.prefill_completed_at[0]
    assert ttft == pytest.approx(a10.prefill_time(100, 64), rel=1e-12)
    assert result.requests.completed_at[0] == pytest.approx(_decodes(a10, ttft, 100, 2), rel=1e-12)
    assert records[0].allocated_blocks == 7  # the whole prompt's blocks on admission


def test_decodes_come_first_and_prefill_takes_what_is_left_of_the_chunk(a10: LatencyModel) -> None:
    # Request 0 decodes; request 1's 100-token prompt arrives mid-run: Sarathi fills each
    # 64-token iteration with the decode step plus 63, then 37, prompt tokens.
    result, records = _run(_trace([0.0, 0.1], [10, 100], [50, 2]), _cluster(chunk_size=64))
    i = next(k for k, r in enumerate(records) if k > 0 and r.prefill_tokens > 0)
    a, b = records[i], records[i + 1]
    assert (a.prefill_tokens, a.decode_tokens, a.num_seqs) == (63, 1, 2)
    assert (b.prefill_tokens, b.decode_tokens, b.num_seqs) == (37, 1, 2)
    ctx = 10 + (i - 1)  # request 0's cached tokens at its (i-1)-th decode step
    assert a.end - a.start == pytest.approx(
        a10.iteration_time(63, 0, 63 * 64 // 2, 1, ctx, 2), rel=1e-12
    )
    assert b.end - b.start == pytest.approx(
        a10.iteration_time(37, 63, 37 * 63 + 37 * 38 // 2, 1, ctx + 1, 2), rel=1e-12
    )
    t = result.requests
    # It arrived during iteration i - 1 and joined the batch formed when that one ended.
    assert records[i - 1].start < 0.1 <= records[i - 1].end == a.start
    assert t.scheduled_at[1] == a.start
    assert t.prefill_completed_at[1] == b.end


# -- batching ---------------------------------------------------------------------------------


def test_requests_arriving_together_are_batched(a10: LatencyModel) -> None:
    result, records = _run(_trace([0.0, 0.0], [10, 20], [3, 5]), _cluster())
    assert [r.num_seqs for r in records] == [2, 2, 2, 1, 1]
    assert (records[0].prefill_tokens, records[0].decode_tokens) == (30, 0)
    t0 = a10.iteration_time(30, 0, 10 * 11 // 2 + 20 * 21 // 2, 0, 0, 2)
    t1 = t0 + a10.iteration_time(0, 0, 0, 2, 30, 2)
    t2 = t1 + a10.iteration_time(0, 0, 0, 2, 32, 2)
    t3 = t2 + a10.iteration_time(0, 0, 0, 1, 22, 1)
    t4 = t3 + a10.iteration_time(0, 0, 0, 1, 23, 1)
    t = result.requests
    assert t.scheduled_at.tolist() == [0.0, 0.0]
    assert t.prefill_completed_at.tolist() == pytest.approx([t0, t0], rel=1e-12)
    assert t.completed_at.tolist() == pytest.approx([t2, t4], rel=1e-12)


def test_the_batch_cap_serialises_requests(a10: LatencyModel) -> None:
    result, records = _run(_trace([0.0, 0.0], [10, 10], [3, 3]), _cluster(max_batch_size=1))
    assert all(r.num_seqs == 1 for r in records)
    t = result.requests
    alone = _decodes(a10, _prefill(a10, 10), 10, 2)
    assert t.completed_at[0] == pytest.approx(alone, rel=1e-12)
    assert t.scheduled_at[1] == t.completed_at[0]
    assert t.completed_at[1] == pytest.approx(2 * alone, rel=1e-12)
    assert t.request_scheduling_delay[1] == t.completed_at[0]


def test_the_watermark_holds_back_admission() -> None:
    # 100 blocks, 10 kept free: after request 0's 50 (then 51) blocks, request 1's 45 would
    # leave fewer than 10, so it waits for request 0 to finish.
    trace = _trace([0.0, 0.0, 0.0], [800, 720, 5], [5, 5, 5])
    result, records = _run(trace, _cluster(watermark=0.1))
    t = result.requests
    assert t.scheduled_at[0] == 0.0
    assert t.scheduled_at[1] == t.completed_at[0]
    assert t.scheduled_at[2] == t.completed_at[0]  # FCFS: the head blocks the small one too
    assert all(r.num_blocks - r.allocated_blocks >= 10 for r in records)
    # Without the watermark both big ones fit at once.
    result, records = _run(trace, _cluster(watermark=0.0))
    assert result.requests.scheduled_at.tolist() == [0.0, 0.0, 0.0]
    assert records[0].num_seqs == 3


# -- preemption -------------------------------------------------------------------------------


def test_memory_pressure_restarts_the_most_recent_request(a10: LatencyModel) -> None:
    # 10 blocks of 16 tokens. Request 0 (64 + 60) needs blocks at decode iterations 1, 17, 33,
    # 49; request 1 (64 + 60, arriving during request 0's prefill) at 2, 18, ... At iteration
    # 17 memory is out: request 1, the later arrival, is preempted after 15 decode steps and
    # recomputed (its 64 prompt tokens and 16 output tokens) once request 0 finishes.
    trace = _trace([0.0, 0.001], [64, 64], [60, 60])
    result, records = _run(trace, _cluster(num_blocks=10))
    t = result.requests
    assert t.request_num_restarts.tolist() == [0, 1]
    assert result.summary.restarts == 1
    assert result.summary.requests_restarted == 1
    pre = [(i, r) for i, r in enumerate(records) if r.preempted]
    assert len(pre) == 1
    i, r = pre[0]
    assert i == 17
    assert (r.preempted, r.blocks_needed, r.free_before) == (1, 1, 0)
    # Every output token is produced once per pass: request 0 decodes 59 times; request 1
    # decodes 15 times, re-prefills 80 tokens (which yields one token), then decodes 43 times.
    assert sum(r.decode_tokens for r in records) == 59 + 15 + 43
    assert sum(r.prefill_tokens for r in records) == 64 + 64 + 80
    assert t.request_num_decode_tokens.tolist() == [60, 60]
    # Request 0 was never disturbed; request 1 keeps its first scheduling and first token...
    assert t.completed_at[0] < t.completed_at[1]
    assert t.scheduled_at[1] == records[1].start
    assert t.prefill_completed_at[1] == records[1].end
    # ...and after request 0 finishes, runs alone: an 80-token prefill, then 43 decode steps.
    rerun = _decodes(a10, t.completed_at[0] + _prefill(a10, 80), 80, 43)
    assert t.completed_at[1] == pytest.approx(rerun, rel=1e-12)
    assert all(r.allocated_blocks <= r.num_blocks for r in records)


def test_the_youngest_of_three_goes_first() -> None:
    trace = _trace([0.0, 0.0005, 0.001], [64, 64, 64], [60, 60, 60])
    result, records = _run(trace, _cluster(num_blocks=15))
    restarts = result.requests.request_num_restarts.tolist()
    assert restarts[0] == 0
    assert restarts[2] >= 1
    assert restarts[2] >= restarts[1]
    assert any(r.preempted for r in records)


def test_iteration_record_reports_the_blocks_needed_before_preemption() -> None:
    # 9 blocks: two 64-token prompts (4 blocks each) leave 1 free. Both decoders need a new
    # block at their first decode step: 2 needed, 1 free, so the later one is preempted.
    trace = _trace([0.0, 0.0], [64, 64], [20, 20])
    result, records = _run(trace, _cluster(num_blocks=9))
    assert result.requests.request_num_restarts.tolist() == [0, 1]
    r = records[1]
    assert (r.preempted, r.free_before) == (1, 1)
    assert r.blocks_needed == 2  # what the decoders needed when the iteration began
    assert r.blocks_needed > r.free_before


def test_running_requests_blocks_add_up_to_the_replicas() -> None:
    # Request 0 (1 prompt token, 13 output tokens, blocks of 4) takes its second block for
    # the decode step that writes its 5th token: iteration 4. Request 1 arrives during it.
    seen: list[tuple[int, list[int]]] = []

    class Look(Router):
        name = "look"

        def schedule(self, cluster: ClusterView) -> list[tuple[int, Request]]:
            r = cluster.replicas[0]
            if cluster.now == 0.13:
                seen.append((r.num_allocated_blocks, [x.num_allocated_blocks for x in r.running]))
            return [(0, q) for q in cluster.queue]

    trace = _trace([0.0, 0.13], [1, 1], [13, 1])
    rec = Recorder()
    run_simulation(trace, _cluster(num_blocks=10, block_size=4), Look(), observer=rec)
    assert rec.records[4].start < 0.13 < rec.records[4].end
    assert rec.records[4].allocated_blocks == 2
    allocated, per_request = seen[0]
    assert allocated == 2
    assert sum(per_request) == allocated  # got [1]: the block taken for the step in flight


def test_no_restarts_when_memory_suffices() -> None:
    trace = _trace([0.0, 0.001], [64, 64], [60, 60])
    result, records = _run(trace, _cluster(num_blocks=16))
    assert result.requests.request_num_restarts.tolist() == [0, 0]
    assert not any(r.preempted for r in records)


def test_fast_forward_gives_the_same_preemptions() -> None:
    trace = _trace([0.0, 0.001, 0.3, 0.31], [64, 64, 30, 200], [60, 60, 90, 40])
    cluster = _cluster(num_blocks=20)
    stepped, _ = _run(trace, cluster, observe=True)
    fast, _ = _run(trace, cluster, observe=False)
    assert stepped.summary.restarts > 0
    assert _tables_equal(stepped, fast)


# -- the impossible -----------------------------------------------------------------------------


def test_an_impossible_cluster() -> None:
    trace = _trace([0.0, 1.0], [10, 100], [1, 1])
    with pytest.raises(glia.InputError) as err:
        run_simulation(trace, _cluster(num_blocks=6, watermark=0.2), resolve_router("llq"))
    assert str(err.value) == (
        "impossible cluster: request 1 of the trace (100 prompt + 1 output tokens) needs up to 7 "
        "KV blocks but a replica has 5 usable (6 minus 1 watermark): cap request lengths "
        "(max_tokens), add KV blocks (num_blocks) or use a bigger GPU"
    )


def test_an_impossible_cluster_counts_the_output_a_restart_recomputes() -> None:
    # 60 + 60 - 1 = 119 tokens: 8 blocks, and the replica has 7.
    with pytest.raises(glia.InputError, match=r"^impossible cluster: request 0 of the trace"):
        run_simulation(_trace([0.0], [60], [60]), _cluster(num_blocks=7), resolve_router("llq"))
    run_simulation(_trace([0.0], [60], [60]), _cluster(num_blocks=8), resolve_router("llq"))


def test_an_impossible_preset_names_its_trace() -> None:
    with pytest.raises(
        glia.InputError,
        match=r"^impossible cluster: request \d+ of "
        r"sharegpt_first_turn \(\d+ prompt ",
    ):
        glia.simulate("llq", duration_s=20.0, num_blocks=20)


@pytest.mark.parametrize(
    ("arrivals", "prompts", "outputs"),
    [
        pytest.param([0.0], [5], [0], id="zero-output"),
        pytest.param([0.0], [0], [5], id="zero-prompt"),
        pytest.param([0.0], [-3], [5], id="negative-prompt"),
        pytest.param([1.0, 0.0], [5, 5], [5, 5], id="unsorted-arrivals"),
        pytest.param([-1.0], [5], [5], id="negative-arrival"),
        pytest.param([float("nan"), 0.0], [5, 5], [5, 5], id="nan-arrival"),
        pytest.param([0.0, float("inf")], [5, 5], [5, 5], id="infinite-arrival"),
        pytest.param([0.0, 1.0], [5], [5], id="unequal-lengths"),
        pytest.param([], [], [], id="empty"),
    ],
)
def test_a_malformed_in_memory_trace_is_an_input_error(
    arrivals: list[float], prompts: list[int], outputs: list[int]
) -> None:
    # Trace and run_simulation are public: a trace built in memory breaking Trace's contract
    # (equal lengths, arrival order, positive counts) must be refused with an InputError,
    # not simulated into nonsense (negative latencies, time running backwards), blamed on the
    # router, or crash with an IndexError.
    with pytest.raises(glia.InputError):
        run_simulation(_trace(arrivals, prompts, outputs), _cluster(), resolve_router("llq"))


def test_a_negative_seed() -> None:
    with pytest.raises(glia.InputError, match=r"^seed is -3: give a non-negative integer$"):
        run_simulation(_trace([0.0], [5], [5]), _cluster(), resolve_router("llq"), seed=-3)


# -- determinism and time ---------------------------------------------------------------------


@pytest.mark.parametrize("router", ["power-of-two", "random"])
def test_same_seed_same_result(router: str) -> None:
    a = glia.simulate(router, duration_s=60.0)
    b = glia.simulate(router, duration_s=60.0)
    assert len(a.requests) > 100
    assert _tables_equal(a, b)
    assert {k: v for k, v in a.to_dict().items() if k != "wall_s"} == {
        k: v for k, v in b.to_dict().items() if k != "wall_s"
    }


def test_the_router_seed_matters() -> None:
    cluster, workload = glia.experiment_config("glia-routing", duration_s=60.0)
    trace = glia.sim.build_trace(workload, 0, max_context=8192)
    a = run_simulation(trace, cluster, resolve_router("random"), seed=0)
    b = run_simulation(trace, cluster, resolve_router("random"), seed=1)
    assert not np.array_equal(a.requests.replica_id, b.requests.replica_id)
    c = run_simulation(trace, cluster, resolve_router("random"), seed=0)
    assert _tables_equal(a, c)


def test_time_never_goes_backwards_on_a_replica() -> None:
    cluster, workload = glia.experiment_config("glia-routing", duration_s=60.0)
    trace = glia.sim.build_trace(workload, 5, max_context=8192)
    rec = Recorder()
    result = run_simulation(trace, cluster, resolve_router("llq"), observer=rec)
    assert len(rec.records) > 1000
    last_end: dict[int, float] = {}
    last_start = 0.0
    for r in rec.records:
        assert r.end > r.start >= last_end.get(r.replica, 0.0)
        assert r.start >= last_start  # the engine handles events in time order
        last_end[r.replica] = r.end
        last_start = r.start
        assert 0 <= r.allocated_blocks <= r.num_blocks == 2240
        assert r.num_seqs <= 128
        assert r.prefill_tokens + r.decode_tokens <= 8192
    assert set(last_end) == {0, 1, 2, 3}
    assert max(last_end.values()) == result.summary.sim_duration_s


def test_the_router_is_called_on_every_arrival_and_completion() -> None:
    calls: list[tuple[float, str, int]] = []

    class Spy(Router):
        name = "spy"

        def schedule(self, cluster: ClusterView) -> list[tuple[int, Request]]:
            calls.append((cluster.now, cluster.trigger, cluster.num_queued))
            return [(0, q) for q in cluster.queue]

    result, _ = _run(_trace([0.0, 1.0, 2.0], [10, 10, 10], [2, 2, 2]), _cluster(), Spy())
    done = result.requests.completed_at.tolist()
    assert calls == [
        (0.0, "arrival", 1),
        (done[0], "completion", 0),
        (1.0, "arrival", 1),
        (done[1], "completion", 0),
        (2.0, "arrival", 1),
        (done[2], "completion", 0),
    ]
    assert result.router == "spy"


def test_at_a_tie_the_iteration_end_comes_before_the_arrival(a10: LatencyModel) -> None:
    calls: list[tuple[float, str, int]] = []

    class Spy(Router):
        name = "spy"

        def schedule(self, cluster: ClusterView) -> list[tuple[int, Request]]:
            calls.append((cluster.now, cluster.trigger, cluster.replicas[0].num_running))
            return [(0, q) for q in cluster.queue]

    t1 = _prefill(a10, 10)  # request 0 (one output token) completes exactly when 1 arrives
    result, records = _run(_trace([0.0, t1], [10, 20], [1, 3]), _cluster(), Spy())
    assert calls[:3] == [(0.0, "arrival", 0), (t1, "completion", 0), (t1, "arrival", 0)]
    assert result.requests.completed_at[0] == t1 == result.requests.scheduled_at[1]
    assert records[1].start == t1


Snap = tuple[int, int, tuple[RunningRequest, ...]]


def test_views_at_exact_iteration_ends_match_stepping() -> None:
    # Two long decodes run lazily (fast-forward) on two replicas; probes arrive exactly when
    # iterations end. The router must see the same state as when stepping one iteration at a
    # time: the iterations ending now already handled, the next ones not yet started.
    base = _trace([0.0, 0.0], [5, 7], [60, 45])
    cluster = _cluster(num_replicas=2, num_blocks=40, block_size=4)
    rec = Recorder()
    run_simulation(base, cluster, resolve_router("llq"), observer=rec)
    ends = [r.end for r in rec.records if r.replica == 0][::6]
    ends += [r.end for r in rec.records if r.replica == 1][3::7]
    probes = sorted(set(ends))
    n = len(probes)
    trace = _trace([0.0, 0.0, *probes], [5, 7] + [3] * n, [60, 45] + [2] * n)

    class Probe(Router):
        """Routes requests 0 and 1, holds the probes until the cluster is idle."""

        name = "probe"

        def __init__(self) -> None:
            self.seen: list[tuple[float, str, tuple[Snap, ...]]] = []

        def schedule(self, cluster: ClusterView) -> list[tuple[int, Request]]:
            state = tuple(
                (r.num_allocated_blocks, r.num_free_blocks, r.running) for r in cluster.replicas
            )
            self.seen.append((cluster.now, cluster.trigger, state))
            busy = any(r.num_outstanding for r in cluster.replicas)
            return [(q.id, q) for q in cluster.queue if q.id < 2] + (
                [] if busy else [(0, q) for q in cluster.queue if q.id >= 2]
            )

    stepped, fast = Probe(), Probe()
    run_simulation(trace, cluster, stepped, fast_forward=False)
    run_simulation(trace, cluster, fast, fast_forward=True)
    assert stepped.seen == fast.seen
    # Absolute check on replica 0: after its m-th iteration (m = 0 is the prefill), request 0
    # has 5 + m tokens cached.
    on0 = [r.end for r in rec.records if r.replica == 0]
    checked = 0
    for now, trigger, state in fast.seen:
        if trigger == "arrival" and now in on0:
            m = on0.index(now)
            running = state[0][2]
            assert running[0].num_processed_tokens == 5 + m
            checked += 1
    assert checked >= 8


# -- routers that break the rules ---------------------------------------------------------------


def _four() -> ClusterConfig:
    return _cluster(num_replicas=4)


_THREE = _trace([0.0, 0.5, 2.0], [10, 10, 10], [2, 2, 2])


class ToSeven(Router):
    name = "to-seven"

    def schedule(self, cluster: ClusterView) -> list[tuple[int, Request]]:
        return [(7, q) for q in cluster.queue]


class Twice(Router):
    name = "twice"

    def schedule(self, cluster: ClusterView) -> list[tuple[int, Request]]:
        head = cluster.queue[0]
        return [(0, head), (1, head)]


class Remember(Router):
    name = "remember"

    def setup(self, cluster: ClusterView, rng: np.random.Generator) -> None:
        super().setup(cluster, rng)
        self.seen: list[Request] = []

    def schedule(self, cluster: ClusterView) -> list[tuple[int, Request]]:
        out = [(0, q) for q in cluster.queue]
        if cluster.now >= 0.5 and self.seen:
            out.append((1, self.seen[0]))
        self.seen.extend(cluster.queue)
        return out


class Returns(Router):
    """Returns a malformed decision chosen by ``value``."""

    name = "returns"

    def __init__(self, value: object) -> None:
        self.value = value

    def schedule(self, cluster: ClusterView) -> list[tuple[int, Request]]:
        q = cluster.queue
        v = self.value
        if v == "pair-of-three":
            return [(0, q[0], 0)]  # type: ignore[list-item]
        if v == "id-not-request":
            return [(0, q[0].id)]  # type: ignore[list-item]
        if v == "float-replica":
            return [(0.0, q[0])]  # type: ignore[list-item]
        if v == "numpy-replica":
            return [(np.int64(3), r) for r in q]  # type: ignore[misc]
        if v == "forged":
            return [(0, Request(99, 0.0, 10))]
        if v == "altered":
            return [(0, Request(q[0].id, q[0].arrived_at, q[0].num_prefill_tokens + 1))]
        return [v]  # type: ignore[list-item]


class Raiser(Router):
    name = "raiser"

    def schedule(self, cluster: ClusterView) -> list[tuple[int, Request]]:
        if cluster.now >= 0.5:
            return [(0, 1 / 0)]  # type: ignore[list-item]
        return [(0, q) for q in cluster.queue]


class RaisesDesignError(Router):
    name = "strict"

    def schedule(self, cluster: ClusterView) -> list[tuple[int, Request]]:
        raise glia.DesignError("my own complaint")


class Hold(Router):
    name = "hold"

    def __init__(self, serve: int = 0, none: bool = False) -> None:
        self.serve = serve
        self.none = none

    def schedule(self, cluster: ClusterView) -> list[tuple[int, Request]]:
        if self.none:
            return None  # type: ignore[return-value]
        out = [(0, q) for q in cluster.queue if q.id < self.serve]
        return out


def _design_error(router: Router, trace: Trace = _THREE) -> str:
    with pytest.raises(glia.DesignError) as err:
        run_simulation(trace, _four(), router)
    return str(err.value)


def test_routing_to_a_replica_that_does_not_exist() -> None:
    assert _design_error(ToSeven()) == (
        "router 'to-seven' routed request 0 to replica 7 at t=0.000s, but the cluster has "
        "replicas 0..3: return an index in range(4)"
    )


def test_routing_a_request_twice_in_one_call() -> None:
    assert _design_error(Twice()) == (
        "router 'twice' routed request 0 twice (again to replica 1 at t=0.000s; first to "
        "replica 0): route each request from cluster.queue once"
    )


def test_routing_a_request_again_later() -> None:
    assert _design_error(Remember()) == (
        "router 'remember' routed request 0 twice (again to replica 1 at t=0.500s; first to "
        "replica 0): route each request from cluster.queue once"
    )


def test_returning_something_that_is_not_a_pair() -> None:
    assert _design_error(Returns(5)) == (
        "router 'returns' returned 5 at t=0.000s: schedule() must return (replica index, "
        "request) pairs"
    )
    assert _design_error(Returns("pair-of-three")) == (
        "router 'returns' returned (0, Request(id=0, arrived_at=0.0, num_prefill_tokens=10), 0) "
        "at t=0.000s: schedule() must return (replica index, request) pairs"
    )


def test_returning_something_that_is_not_a_request() -> None:
    assert _design_error(Returns("id-not-request")) == (
        "router 'returns' returned 0 as a request at t=0.000s: route the Request objects from "
        "cluster.queue"
    )


def test_returning_a_replica_that_is_not_an_int() -> None:
    assert _design_error(Returns("float-replica")) == (
        "router 'returns' routed request 0 to 0.0 at t=0.000s: a replica is an int index"
    )


def test_numpy_integers_are_replica_indices() -> None:
    result = run_simulation(_THREE, _four(), Returns("numpy-replica"))
    assert result.requests.replica_id.tolist() == [3, 3, 3]


def test_routing_a_request_that_is_not_queued() -> None:
    assert _design_error(Returns("forged")) == (
        "router 'returns' routed request 99 at t=0.000s, which is not in the global queue: "
        "route only requests from cluster.queue"
    )
    assert _design_error(Returns("altered")) == (
        "router 'returns' routed request 0 at t=0.000s, which is not in the global queue: "
        "route only requests from cluster.queue"
    )


def test_a_router_that_raises() -> None:
    with pytest.raises(glia.DesignError) as err:
        run_simulation(_THREE, _four(), Raiser())
    assert (
        str(err.value) == "router 'raiser' raised ZeroDivisionError at t=0.500s: division by zero"
    )
    assert isinstance(err.value.__cause__, ZeroDivisionError)


def test_a_router_raising_a_design_error_is_passed_through() -> None:
    assert _design_error(RaisesDesignError()) == "my own complaint"


@pytest.mark.parametrize("none", [False, True])
def test_a_router_that_holds_everything(none: bool) -> None:
    with pytest.raises(glia.SimulationError) as err:
        run_simulation(_THREE, _four(), Hold(none=none))
    assert str(err.value) == (
        "router 'hold' left 3 of 3 requests unserved when the cluster went idle at t=2.000s "
        "(first: request 0, arrived at 0.000s, in the global queue): a router may hold requests "
        "only while some replica is busy; route everything once the cluster is idle"
    )
    assert err.value.partial == 0


def test_a_router_that_serves_some() -> None:
    with pytest.raises(glia.SimulationError) as err:
        run_simulation(_THREE, _four(), Hold(serve=1))
    msg = str(err.value)
    assert msg.startswith("router 'hold' left 2 of 3 requests unserved when the cluster went idle")
    assert "(first: request 1, arrived at 0.500s, in the global queue)" in msg
    assert err.value.partial == 1


class HoldUntilIdle(Router):
    """Routes only when no replica has work: legal, since a completion always follows."""

    name = "hold-until-idle"

    def schedule(self, cluster: ClusterView) -> list[tuple[int, Request]]:
        if any(r.num_outstanding for r in cluster.replicas) or not cluster.queue:
            return []
        return [(0, cluster.queue[0])]


def test_holding_while_a_replica_is_busy_is_allowed() -> None:
    trace = _trace([0.0, 0.0, 0.01, 0.02], [10, 20, 30, 40], [5, 5, 5, 5])
    result = run_simulation(trace, _four(), HoldUntilIdle())
    t = result.requests
    order = np.argsort(t.scheduled_at)
    assert order.tolist() == [0, 1, 2, 3]
    for a, b in itertools.pairwise(order):
        assert t.scheduled_at[b] == t.completed_at[a]  # one at a time, back to back


class Generator(Router):
    """schedule() may return any iterable of pairs, e.g. a generator."""

    name = "gen"

    def schedule(self, cluster: ClusterView) -> list[tuple[int, Request]]:
        return ((1, q) for q in cluster.queue)  # type: ignore[return-value]


def test_a_router_may_return_a_generator() -> None:
    result = run_simulation(_THREE, _four(), Generator())
    assert result.requests.replica_id.tolist() == [1, 1, 1]
