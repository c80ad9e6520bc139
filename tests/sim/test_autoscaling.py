"""Autoscaling: the replica lifecycle (cold start, cancel, drain), GPU-hours, the autoscaler
interface and its baselines, diurnal arrivals, sandboxed scheduler and autoscaler designs, and
the ``glia baselines --task`` / ``glia simulate --autoscaler`` commands.

The fakes are tiny :class:`~glia.policies.Autoscaler` and :class:`~glia.policies.Router`
subclasses that follow a script and record what they saw; from those records the tests
rebuild what each replica was doing and when.
"""

from __future__ import annotations

import inspect
import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import msgspec
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

import glia
from glia.cli import app
from glia.policies import (
    AUTOSCALERS,
    Assignment,
    Autoscaler,
    HpaAutoscaler,
    KpaAutoscaler,
    ReplicaScheduler,
    Router,
    resolve_autoscaler,
    resolve_router,
)
from glia.sandbox import DesignFailure, run_sandboxed
from glia.sim import (
    Autoscale,
    ClusterConfig,
    ClusterView,
    LoadView,
    ReplicaView,
    Request,
    SimResult,
    Summary,
    Trace,
    WorkloadConfig,
    build_trace,
    run_simulation,
)

# --- fakes and helpers ------------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """One look at the routable replicas: a routing call or an autoscaler call."""

    now: float
    trigger: str
    ids: tuple[int, ...]


@dataclass(frozen=True)
class Tick:
    """What a scripted autoscaler saw at one call, and what it asked for."""

    now: float
    active: int
    starting: int
    draining: int
    want: int


class Scripted(Autoscaler):
    """Asks for ``plan[k]`` at its k-th call (the last entry once the plan runs out)."""

    def __init__(self, plan: Sequence[int], interval_s: float, log: list[Seen]) -> None:
        self.plan = list(plan)
        self.interval_s = interval_s
        self.log = log
        self.ticks: list[Tick] = []

    def scale(self, load: LoadView) -> int:
        want = self.plan[min(len(self.ticks), len(self.plan) - 1)]
        ids = tuple(v.id for v in load.cluster.replicas)
        assert len(ids) == load.num_active == load.cluster.num_replicas
        self.log.append(Seen(load.now, load.cluster.trigger, ids))
        self.ticks.append(
            Tick(load.now, load.num_active, load.num_starting, load.num_draining, want)
        )
        return want


class Recording(Router):
    """Least outstanding requests (lowest position on ties); logs every call and routing."""

    def __init__(self, log: list[Seen]) -> None:
        self.log = log
        self.routed: dict[int, tuple[float, int]] = {}  # request id -> (time, replica id)

    def schedule(self, cluster: ClusterView) -> list[Assignment]:
        ids = tuple(v.id for v in cluster.replicas)
        assert len(cluster.replicas) == len(ids) == len(set(ids))
        self.log.append(Seen(cluster.now, cluster.trigger, ids))
        load = [v.num_outstanding for v in cluster.replicas]
        out: list[Assignment] = []
        for req in cluster.queue if load else ():
            i = min(range(len(load)), key=load.__getitem__)
            load[i] += 1
            out.append((i, req))
            self.routed[req.id] = (cluster.now, ids[i])
        return out


@dataclass
class Observed:
    """One run of a scripted autoscaler under the recording router."""

    result: SimResult
    ticks: list[Tick]
    log: list[Seen]
    routed: dict[int, tuple[float, int]]


def make_trace(arrivals: Sequence[float], prompts: Sequence[int], outputs: Sequence[int]) -> Trace:
    return Trace(
        np.array(arrivals, dtype=np.float64),
        np.array(prompts, dtype=np.int64),
        np.array(outputs, dtype=np.int64),
    )


def pool(
    num_replicas: int,
    *,
    cold_start_s: float,
    min_replicas: int = 1,
    initial: int | None = None,
    num_blocks: int = 256,
    max_batch_size: int = 128,
    tp: int = 1,
) -> ClusterConfig:
    """A small autoscaled cluster of A10s."""
    scaling = Autoscale(
        min_replicas=min_replicas, initial_replicas=initial, cold_start_s=cold_start_s
    )
    return ClusterConfig(
        num_replicas=num_replicas,
        num_blocks=num_blocks,
        max_batch_size=max_batch_size,
        tp=tp,
        autoscale=scaling,
    )


def observe(
    trace: Trace, cluster: ClusterConfig, plan: Sequence[int], interval_s: float
) -> Observed:
    log: list[Seen] = []
    scaler, router = Scripted(plan, interval_s, log), Recording(log)
    result = run_simulation(trace, cluster, router, autoscaler=scaler)
    return Observed(result, scaler.ticks, log, router.routed)


def appearances(log: list[Seen], rid: int, initial: int = 1) -> list[tuple[float, str]]:
    """When replica ``rid`` became routable (time and trigger) after time 0, when replicas
    ``0..initial-1`` served from the start."""
    out: list[tuple[float, str]] = []
    before = rid < initial
    for seen in log:
        now_in = rid in seen.ids
        if now_in and not before:
            out.append((seen.now, seen.trigger))
        before = now_in
    return out


def without_wall(s: Summary) -> Summary:
    return msgspec.structs.replace(s, wall_s=0.0)


def assert_all_completed_once(r: SimResult, n: int) -> None:
    t = r.requests
    assert r.summary.num_requests == n == len(t)
    assert np.array_equal(t.request_id, np.arange(n))
    assert np.isfinite(t.completed_at).all()
    assert (t.arrived_at <= t.scheduled_at).all()
    assert (t.scheduled_at <= t.prefill_completed_at).all()
    assert (t.prefill_completed_at <= t.completed_at).all()
    assert (t.replica_id >= 0).all()


def invoke(command: str) -> Result:
    """Run ``glia COMMAND`` in this process; stdout and stderr are captured separately."""
    return CliRunner().invoke(app, command.split())


# --- 1. cold start: a starting replica serves nothing and is invisible -----------------------


def test_a_new_replica_serves_nothing_and_is_invisible_until_its_cold_start_has_passed() -> None:
    # One replica serves at first; at t=10 the autoscaler asks for three: replicas 1 and 2
    # start loading and may serve from t=10+30=40. Requests keep coming until t=79.5.
    n = 160
    trace = make_trace([0.5 * k for k in range(n)], [200] * n, [200] * n)
    obs = observe(trace, pool(3, cold_start_s=30.0), plan=[3], interval_s=10.0)
    assert_all_completed_once(obs.result, n)

    t = obs.result.requests
    started_at = {1: 10.0, 2: 10.0}
    for rid, t0 in started_at.items():
        on_it = t.replica_id == rid
        assert on_it.sum() > 5, "the new replica took a share of the load"
        assert (t.scheduled_at[on_it] >= t0 + 30.0).all()
        assert appearances(obs.log, rid) == [(40.0, "ready")]
    # The router saw replica 0 alone before t=40, then each replica as it became ready.
    assert all(seen.ids == (0,) for seen in obs.log if seen.now < 40.0)
    at_40 = [(seen.trigger, seen.ids) for seen in obs.log if seen.now == 40.0]
    assert at_40[:3] == [("ready", (0, 1)), ("ready", (0, 1, 2)), ("scale", (0, 1, 2))]
    assert all(seen.ids == (0, 1, 2) for seen in obs.log if seen.now > 40.0)
    assert [(k.now, k.active, k.starting, k.draining) for k in obs.ticks[:5]] == [
        (10.0, 1, 0, 0),
        (20.0, 1, 2, 0),
        (30.0, 1, 2, 0),
        (40.0, 3, 0, 0),
        (50.0, 3, 0, 0),
    ]


BUSY_200S = make_trace([1.0 * k for k in range(200)], [100] * 200, [300] * 200)
"""A request a second for 200 s, each decoding for several seconds: every replica gets work."""


@pytest.mark.parametrize(
    ("num_replicas", "plan", "restarted", "restarted_at"),
    [
        pytest.param(2, [2, 1, 2], 1, 30.0, id="the-only-starting-replica"),
        pytest.param(
            3,
            [2, 3, 2, 3],
            2,
            40.0,
            id="behind-an-earlier-starting-replica",
        ),
    ],
)
def test_a_replica_cancelled_while_starting_and_restarted_waits_a_whole_cold_start(
    num_replicas: int, plan: list[int], restarted: int, restarted_at: float
) -> None:
    # Calls every 10 s; cold start 100 s. With three replicas: replica 1 starts at 10 (ready at
    # 110), replica 2 at 20, is cancelled at 30 (the latest to become ready goes first) and
    # starts again at 40: it may serve from 140.
    obs = observe(BUSY_200S, pool(num_replicas, cold_start_s=100.0), plan, interval_s=10.0)
    assert_all_completed_once(obs.result, len(BUSY_200S))
    assert appearances(obs.log, restarted) == [(restarted_at + 100.0, "ready")]
    on_it = obs.result.requests.replica_id == restarted
    assert on_it.any()
    assert (obs.result.requests.scheduled_at[on_it] >= restarted_at + 100.0).all()


# --- 2. scale-down drains: nothing is dropped ------------------------------------------------


def test_scaling_down_to_one_while_every_replica_holds_work_drains_them_and_drops_nothing() -> None:
    # 40 long requests at t=0 on three replicas; from t=1 the autoscaler wants one replica.
    n = 40
    trace = make_trace([0.0] * n, [300] * n, [400] * n)
    cluster = pool(3, cold_start_s=60.0, initial=3, max_batch_size=4)
    obs = observe(trace, cluster, plan=[1], interval_s=1.0)
    assert_all_completed_once(obs.result, n)

    t = obs.result.requests
    # The two replicas holding the fewest requests drained (ties: the highest id first); the
    # drained replicas finished what they held, long after they stopped being routable.
    assert (obs.ticks[0].active, obs.ticks[1].active, obs.ticks[1].draining) == (3, 1, 2)
    kept = obs.log[-1].ids
    assert len(kept) == 1
    drained = sorted({0, 1, 2} - set(kept))
    for rid in drained:
        on_it = t.replica_id == rid
        assert on_it.sum() > 4  # more than one batch: some waited in its queue while draining
        assert t.completed_at[on_it].max() > 5.0
        assert all(rid not in s.ids for s in obs.log if s.now > 1.0)
    # Each drained replica turned off as its last request completed; two drains, two turn-offs.
    s = obs.result.summary
    off_at = [t.completed_at[t.replica_id == rid].max() for rid in drained]
    assert s.gpu_hours == pytest.approx((s.sim_duration_s + sum(off_at)) / 3600, rel=1e-12)
    assert s.scale_events == 4


@st.composite
def scaled_runs(draw: st.DrawFn) -> tuple[Trace, ClusterConfig, list[int], float]:
    n = draw(st.integers(1, 25))
    arrivals = sorted(
        draw(st.lists(st.integers(0, 40).map(lambda k: k * 0.5), min_size=n, max_size=n))
    )
    prompts = draw(st.lists(st.integers(1, 300), min_size=n, max_size=n))
    outputs = draw(st.lists(st.integers(1, 400), min_size=n, max_size=n))
    size = draw(st.integers(1, 4))
    lowest = draw(st.integers(1, max(1, size - 1)))
    cluster = ClusterConfig(
        num_replicas=size,
        num_blocks=draw(st.integers(64, 200)),
        chunk_size=draw(st.integers(16, 512)),
        max_batch_size=draw(st.integers(1, 8)),
        autoscale=Autoscale(
            min_replicas=lowest,
            initial_replicas=draw(st.integers(lowest, size)),
            cold_start_s=draw(st.sampled_from([0.0, 1.5, 4.0, 12.0])),
        ),
    )
    plan = draw(st.lists(st.integers(-1, size + 1), min_size=2, max_size=20))
    interval = draw(st.sampled_from([1.0, 2.0, 5.0]))
    return make_trace(arrivals, prompts, outputs), cluster, plan, interval


def expected_count(tick: Tick, scaling: Autoscale, size: int) -> int:
    """Active plus starting replicas right after the call ``tick`` (the documented rule: grow
    by starting replicas that are off; shrink to exactly the count asked for)."""
    current = tick.active + tick.starting
    desired = max(scaling.min_replicas, min(tick.want, size))
    if desired > current:
        return current + min(desired - current, size - current - tick.draining)
    return desired


@settings(max_examples=100, deadline=None)
@given(scaled_runs())
def test_any_scaling_sequence_completes_every_request_once_on_routable_replicas(
    case: tuple[Trace, ClusterConfig, list[int], float],
) -> None:
    trace, cluster, plan, interval = case
    scaling, size, n = cluster.autoscale, cluster.num_replicas, len(trace)
    assert scaling is not None
    _, initial = scaling.check(size)
    obs = observe(trace, cluster, plan, interval)
    r, t = obs.result, obs.result.requests
    assert_all_completed_once(r, n)

    # Every request went where the router sent it, to a replica it could see, and was
    # scheduled only after that; it completed before its replica could have started again.
    for i in range(n):
        routed_at, rid = obs.routed[i]
        assert t.replica_id[i] == rid
        assert t.scheduled_at[i] >= routed_at
        later = [a for a, _ in appearances(obs.log, rid, initial) if a > routed_at]
        if later:
            assert t.completed_at[i] <= later[0] - scaling.cold_start_s
    # A replica becomes routable only when it is ready (or at time 0).
    for rid in range(size):
        assert {trigger for _, trigger in appearances(obs.log, rid, initial)} <= {"ready"}

    # The count asked for is what the fleet holds at the next call.
    for k, tick in enumerate(obs.ticks):
        assert tick.active + tick.starting + tick.draining <= size
        assert tick.active >= 1
        before = expected_count(obs.ticks[k - 1], scaling, size) if k else None
        assert before is None or tick.active + tick.starting == before, (k, obs.ticks)

    # GPU time: at least the replicas active or starting, at most the whole pool, over the run,
    # which ends with the last completion (no call or readiness comes later).
    end = r.summary.sim_duration_s
    assert all(x.now <= end for x in obs.log) and all(k.now <= end for k in obs.ticks)
    steps = [(0.0, initial)] + [(k.now, expected_count(k, scaling, size)) for k in obs.ticks]
    on_s = sum(
        count * (until - since)
        for (since, count), until in zip(steps, [s for s, _ in steps[1:]] + [end], strict=True)
    )
    s = r.summary
    assert on_s / 3600 - 1e-9 <= s.gpu_hours <= size * end / 3600 + 1e-9
    assert s.gpu_hours == pytest.approx(s.mean_replicas * end / 3600, rel=1e-9)
    assert scaling.min_replicas - 1e-9 <= s.mean_replicas <= size + 1e-9

    again = observe(trace, cluster, plan, interval)
    assert without_wall(again.result.summary) == without_wall(s)
    assert np.array_equal(again.result.requests.completed_at, t.completed_at)
    assert np.array_equal(again.result.requests.replica_id, t.replica_id)
    assert again.ticks == obs.ticks


BURIED_RESTART = (
    BUSY_200S,
    pool(3, cold_start_s=100.0),
    [2, 3, 2, 3],
    10.0,
)
"""Replica 2 starts, is cancelled and starts again while replica 1 is still loading."""


@settings(max_examples=60, deadline=None)
@given(scaled_runs())
@example(BURIED_RESTART)
def test_replicas_become_ready_exactly_one_cold_start_after_they_start(
    case: tuple[Trace, ClusterConfig, list[int], float],
) -> None:
    trace, cluster, plan, interval = case
    scaling, size = cluster.autoscale, cluster.num_replicas
    assert scaling is not None
    obs = observe(trace, cluster, plan, interval)
    # Replay the documented rules on ready times alone: a start at t is ready at t + cold
    # start; shrinking cancels the starting replicas latest-ready first.
    pending: list[float] = []
    ready: list[float] = []
    for tick in obs.ticks:
        ready += [x for x in pending if x <= tick.now]
        pending = sorted(x for x in pending if x > tick.now)
        assert tick.starting == len(pending), (tick, pending)
        after = expected_count(tick, scaling, size)
        current = tick.active + tick.starting
        if after > current:
            pending += [tick.now + scaling.cold_start_s] * (after - current)
        else:
            del pending[len(pending) - min(current - after, len(pending)) :]
    # The run ends with its last completion: later readiness never happens.
    ready += [x for x in pending if x <= obs.result.summary.sim_duration_s]
    assert sorted(ready) == [s.now for s in obs.log if s.trigger == "ready"]


# --- 3. GPU-hours -----------------------------------------------------------------------------


@pytest.mark.parametrize("tp", [1, 2])
def test_a_fixed_cluster_costs_every_replica_for_the_whole_run(tp: int) -> None:
    n = 30
    trace = make_trace([0.5 * k for k in range(n)], [100 + 7 * k for k in range(n)], [50] * n)
    cluster = ClusterConfig(num_replicas=3, num_blocks=256, tp=tp)
    s = run_simulation(trace, cluster, resolve_router("llq")).summary
    assert s.gpu_hours == pytest.approx(3 * tp * s.sim_duration_s / 3600, rel=1e-12)
    assert s.mean_replicas == pytest.approx(3.0, rel=1e-12)
    assert s.scale_events == 0


@pytest.mark.parametrize("tp", [1, 2])
def test_static_from_one_replica_pays_two_more_from_their_start(tp: int) -> None:
    # Replica 0 serves from 0; at the first call (t=15) static asks for all 3: replicas 1 and 2
    # cost from 15 (loading for 30 s, then serving) to the end of the run.
    n = 100
    trace = make_trace([1.0 * k for k in range(n)], [100] * n, [50] * n)
    cluster = pool(3, cold_start_s=30.0, tp=tp)
    s = run_simulation(
        trace, cluster, resolve_router("llq"), autoscaler=resolve_autoscaler("static")
    ).summary
    end = s.sim_duration_s
    assert end > 15.0 + 30.0
    assert s.gpu_hours == pytest.approx(tp * (end + 2 * (end - 15.0)) / 3600, rel=1e-12)
    assert s.mean_replicas == pytest.approx((3 * end - 30.0) / end, rel=1e-12)
    assert s.scale_events == 2


def test_static_never_starts_a_replica_when_the_work_ends_before_its_first_call() -> None:
    trace = make_trace([0.0, 1.0], [100, 100], [20, 20])
    s = run_simulation(
        trace,
        pool(3, cold_start_s=30.0),
        resolve_router("llq"),
        autoscaler=resolve_autoscaler("static"),
    ).summary
    assert s.sim_duration_s < 15.0
    assert s.gpu_hours == pytest.approx(s.sim_duration_s / 3600, rel=1e-12)
    assert (s.mean_replicas, s.scale_events) == (1.0, 0)


def test_a_drained_replica_costs_until_its_last_request_completes() -> None:
    # Two replicas serve from 0, replica 0 the longer requests; at t=15 both hold 8 and the
    # highest id drains: replica 1 costs until its last request completes, replica 0 until
    # the end.
    n = 16
    trace = make_trace([0.0] * n, [100] * n, [1200, 600] * (n // 2))
    cluster = pool(2, cold_start_s=60.0, initial=2, num_blocks=1024)
    obs = observe(trace, cluster, plan=[1], interval_s=15.0)
    t, s = obs.result.requests, obs.result.summary
    assert_all_completed_once(obs.result, n)
    assert np.array_equal(t.replica_id, [0, 1] * (n // 2)) and s.restarts == 0
    assert obs.log[-1].ids == (0,)
    drained = 1
    off_at = t.completed_at[t.replica_id == drained].max()
    assert 15.0 < off_at < s.sim_duration_s
    assert s.gpu_hours == pytest.approx((s.sim_duration_s + off_at) / 3600, rel=1e-12)
    assert s.scale_events == 2


# --- 4. the autoscaler interface: setup and error texts ---------------------------------------


class Dice(Autoscaler):
    """Rolls the replica count with its seeded generator; records its setup calls."""

    interval_s = 2.0

    def __init__(self) -> None:
        self.setups: list[tuple[float, str, tuple[int, ...]]] = []
        self.rolls: list[int] = []

    def setup(self, cluster: ClusterView, rng: np.random.Generator) -> None:
        super().setup(cluster, rng)
        self.setups.append((cluster.now, cluster.trigger, tuple(v.id for v in cluster.replicas)))

    def scale(self, load: LoadView) -> int:
        self.rolls.append(int(self.rng.integers(1, 4)))
        return self.rolls[-1]


def test_an_autoscaler_is_set_up_once_with_a_generator_the_seed_determines() -> None:
    cluster = pool(3, cold_start_s=5.0)
    dice = [Dice(), Dice(), Dice()]
    results = [
        run_simulation(BUSY_200S, cluster, resolve_router("llq"), seed=seed, autoscaler=d)
        for d, seed in zip(dice, [0, 0, 1], strict=True)
    ]
    assert all(d.setups == [(0.0, "scale", (0,))] for d in dice)
    assert dice[0].rolls == dice[1].rolls != dice[2].rolls
    assert without_wall(results[0].summary) == without_wall(results[1].summary)
    assert results[0].summary.scale_events > 0


class Fractional(Autoscaler):
    """Asks for two and a half replicas."""

    interval_s = 5.0

    def scale(self, load: LoadView) -> int:
        return 2.5  # type: ignore[return-value]


class Hasty(Autoscaler):
    """Wants to be called twice a second."""

    interval_s = 0.5


SMALL = make_trace([0.0, 2.0, 4.0, 6.0, 8.0], [100] * 5, [200] * 5)


def test_an_autoscaler_returning_a_non_int_is_a_design_error() -> None:
    with pytest.raises(glia.DesignError) as err:
        run_simulation(
            SMALL, pool(3, cold_start_s=10.0), resolve_router("llq"), autoscaler=Fractional()
        )
    assert str(err.value) == (
        "autoscaler 'Fractional' returned 2.5 at t=5.000s: scale() must return the number of "
        "replicas wanted, an int"
    )


def test_an_autoscaler_called_more_often_than_every_second_is_a_design_error() -> None:
    with pytest.raises(glia.DesignError) as err:
        run_simulation(SMALL, pool(3, cold_start_s=10.0), resolve_router("llq"), autoscaler=Hasty())
    assert str(err.value) == (
        "autoscaler 'Hasty' has interval_s = 0.5: give the seconds between its calls, at least 1.0"
    )


@pytest.mark.parametrize(
    ("scaling", "message"),
    [
        (
            Autoscale(min_replicas=0),
            "autoscale min_replicas is 0: give 1..3 (the cluster's num_replicas is the most "
            "that can be on)",
        ),
        (
            Autoscale(min_replicas=4),
            "autoscale min_replicas is 4: give 1..3 (the cluster's num_replicas is the most "
            "that can be on)",
        ),
        (
            Autoscale(initial_replicas=5),
            "autoscale initial_replicas is 5: give 1..3 (between min_replicas and the "
            "cluster's num_replicas)",
        ),
        (
            Autoscale(min_replicas=2, initial_replicas=1),
            "autoscale initial_replicas is 1: give 2..3 (between min_replicas and the "
            "cluster's num_replicas)",
        ),
        (
            Autoscale(cold_start_s=-1.0),
            "autoscale cold_start_s is -1.0: give the seconds a new replica takes to load its "
            "model, e.g. 180",
        ),
    ],
)
def test_impossible_autoscale_limits_are_input_errors(scaling: Autoscale, message: str) -> None:
    with pytest.raises(glia.InputError) as err:
        scaling.check(3)
    assert str(err.value) == message
    cluster = ClusterConfig(num_replicas=3, num_blocks=256, autoscale=scaling)
    with pytest.raises(glia.InputError) as err:
        run_simulation(SMALL, cluster, resolve_router("llq"), autoscaler=HpaAutoscaler())
    assert str(err.value) == message


# --- 5. diurnal arrivals ----------------------------------------------------------------------


def middle_fraction(diurnal: float) -> float:
    """Share of a day's arrivals in its middle half, for the rate ``q (1 - a cos(2 pi t / P))``:
    the integral over [P/4, 3P/4] is P (1/2 + a / pi), over the whole day P."""
    return 0.5 + diurnal / math.pi


@pytest.mark.parametrize(("period_s", "seed"), [(None, 0), (None, 1), (1000.0, 2)])
def test_diurnal_arrivals_follow_the_day_shaped_rate(period_s: float | None, seed: int) -> None:
    cfg = WorkloadConfig(
        arrivals="poisson", qps=5.0, duration_s=2000.0, diurnal=0.8, period_s=period_s
    )
    at = build_trace(cfg, seed).arrived_at
    assert len(at) == pytest.approx(5.0 * 2000.0, rel=0.05)
    assert at.max() < 2000.0
    day = period_s or 2000.0
    phase = (at % day) / day
    middle = ((phase >= 0.25) & (phase < 0.75)).mean()
    assert middle == pytest.approx(middle_fraction(0.8), abs=0.02)  # 0.755; flat would be 0.5
    # Night (the first and last eighths of a day) sees about a fifth of noon's rate.
    night = ((phase < 0.125) | (phase >= 0.875)).sum()
    noon = ((phase >= 0.375) & (phase < 0.625)).sum()
    w = 2 * math.pi
    expect = (0.25 - 0.8 / w * 2 * math.sin(w / 8)) / (0.25 + 0.8 / w * 2 * math.sin(w / 8))
    assert night / noon == pytest.approx(expect, abs=0.03)


def test_a_flat_rate_has_half_its_arrivals_in_the_middle_half() -> None:
    at = build_trace(WorkloadConfig(arrivals="poisson", qps=5.0, duration_s=2000.0), 0).arrived_at
    assert ((at >= 500.0) & (at < 1500.0)).mean() == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        (
            WorkloadConfig(arrivals="trace", diurnal=0.5),
            "diurnal needs generated arrivals (poisson, lognormal or gamma): a replayed trace "
            "keeps its own arrival times",
        ),
        (
            WorkloadConfig(arrivals="poisson", qps=5.0, duration_s=100.0, diurnal=1.0),
            "diurnal is 1.0: give the day's swing as a fraction of the mean rate, in [0, 1) "
            "(0.8: the rate goes from 0.2 x qps at night to 1.8 x qps at noon)",
        ),
        (
            WorkloadConfig(
                arrivals="poisson", qps=5.0, duration_s=100.0, diurnal=0.5, period_s=0.0
            ),
            "period_s is 0.0: give the length of a day in seconds",
        ),
    ],
)
def test_impossible_diurnal_settings_are_input_errors(cfg: WorkloadConfig, message: str) -> None:
    with pytest.raises(glia.InputError) as err:
        build_trace(cfg, 0)
    assert str(err.value) == message


# --- 6. the baseline autoscalers --------------------------------------------------------------

DIURNAL_CLUSTER, DIURNAL_WORKLOAD = glia.experiment_config("diurnal", duration_s=1800.0)


@dataclass(frozen=True)
class Call:
    """One call of a baseline autoscaler: replicas asked for, ongoing requests, the answer."""

    now: float
    current: int
    ongoing: int
    returned: int


class Watched(Autoscaler):
    """Mixed in before a baseline: logs each call's replica count, load and answer."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[Call] = []

    def scale(self, load: LoadView) -> int:
        out = super().scale(load)
        self.calls.append(Call(load.now, load.num_replicas, load.num_ongoing, out))
        return out


class WatchedHpa(Watched, HpaAutoscaler):
    """The HPA, watched."""


class WatchedKpa(Watched, KpaAutoscaler):
    """The KPA, watched."""


def run_diurnal(autoscaler: Autoscaler) -> SimResult:
    trace = build_trace(DIURNAL_WORKLOAD, 0, max_context=DIURNAL_CLUSTER.resolve().max_context)
    result = run_simulation(
        trace,
        DIURNAL_CLUSTER,
        resolve_router("llq"),
        workload=DIURNAL_WORKLOAD,
        autoscaler=autoscaler,
    )
    assert_all_completed_once(result, len(trace))
    return result


def test_every_baseline_autoscaler_serves_the_whole_day_and_static_costs_the_most() -> None:
    results = {name: run_diurnal(resolve_autoscaler(name)) for name in AUTOSCALERS}
    assert list(results) == ["static", "hpa", "kpa", "ray-serve"]
    hours = {name: r.summary.gpu_hours for name, r in results.items()}
    assert max(hours, key=hours.__getitem__) == "static"
    for name, r in results.items():
        assert r.autoscaler == name
        assert 1.0 <= r.summary.mean_replicas <= 8.0
        if name != "static":
            assert hours[name] < 0.8 * hours["static"]
            assert r.summary.scale_events > 2  # it grew for noon and shrank for the night


def hpa_recommendation(c: Call) -> int:
    """The HPA's raw recommendation for one call (its formula, re-derived)."""
    ratio = c.ongoing / max(c.current, 1) / HpaAutoscaler.target
    if abs(ratio - 1.0) <= HpaAutoscaler.tolerance:
        return c.current
    return math.ceil(c.current * ratio)


def test_hpa_never_scales_below_a_recommendation_of_the_last_five_minutes() -> None:
    hpa = WatchedHpa()
    run_diurnal(hpa)
    calls = hpa.calls
    assert all(b.now - a.now == 15.0 for a, b in itertools.pairwise(calls))
    downs = 0
    for k, c in enumerate(calls):
        recent = [hpa_recommendation(p) for p in calls[: k + 1] if p.now > c.now - 300.0]
        if c.returned < c.current:
            downs += 1
            assert c.returned == max(recent) >= hpa_recommendation(c)
        if hpa_recommendation(c) > c.current:  # up at once, at most doubling (or +4)
            assert c.returned == min(hpa_recommendation(c), max(2 * c.current, c.current + 4))
    assert downs > 0 and any(c.returned > c.current for c in calls)


def test_kpa_at_most_halves_the_replicas_in_one_call() -> None:
    kpa = WatchedKpa()
    run_diurnal(kpa)
    assert any(c.returned < c.current for c in kpa.calls)
    assert all(c.returned >= math.ceil(c.current / 2) for c in kpa.calls)


@dataclass(frozen=True)
class FakeLoad:
    """What the HPA reads of a LoadView."""

    now: float
    num_replicas: int
    num_ongoing: int


def test_hpa_does_not_scale_up_when_it_recommends_scaling_down() -> None:
    hpa = HpaAutoscaler()
    # 1 replica with 2400 ongoing requests: the recommendation is 100, clipped to 1 + 4 = 5.
    assert hpa.scale(cast(LoadView, FakeLoad(15.0, 1, 2400))) == 5
    # 5 replicas with 80 ongoing (16 each, under the 24 target): the recommendation is 4, a
    # scale-down, held back by the last five minutes' 100: the HPA keeps 5, as Kubernetes does.
    assert hpa.scale(cast(LoadView, FakeLoad(30.0, 5, 80))) == 5


# --- 7. sandboxed scheduler and autoscaler designs --------------------------------------------


class ShortestFirst(ReplicaScheduler):
    """Shortest prompt first."""

    skip_blocked = True

    def order(self, replica: ReplicaView, now: float) -> Sequence[Request]:
        return sorted(replica.queue, key=lambda q: (q.num_prefill_tokens, q.arrived_at, q.id))


class PerEightOngoing(Autoscaler):
    """One replica, plus one per eight requests in the system."""

    interval_s = 10.0

    def scale(self, load: LoadView) -> int:
        return 1 + load.num_ongoing // 8


def design_source(cls: type, base: str) -> str:
    """``cls`` as a design file: its own source after the import of its base class."""
    header = f"from __future__ import annotations\n\nfrom glia.policies import {base}\n\n\n"
    return header + inspect.getsource(cls)


def assert_same_run(sandboxed: SimResult | DesignFailure, direct: SimResult) -> None:
    assert isinstance(sandboxed, SimResult), sandboxed
    assert without_wall(sandboxed.summary) == without_wall(direct.summary)
    assert np.array_equal(sandboxed.requests.completed_at, direct.requests.completed_at)
    assert np.array_equal(sandboxed.requests.replica_id, direct.requests.replica_id)


def test_a_sandboxed_scheduler_design_gives_exactly_the_in_process_result() -> None:
    # An overloaded two minutes, so that requests queue inside the replicas.
    cluster, workload = glia.experiment_config("glia-scheduling", duration_s=120.0, qps=12.0)
    source = design_source(ShortestFirst, "ReplicaScheduler")
    sandboxed = run_sandboxed(source, cluster, workload, seed=0, task="scheduling", router="llq")
    trace = build_trace(workload, 0, max_context=cluster.resolve().max_context)
    direct = run_simulation(
        trace, cluster, resolve_router("llq"), workload=workload, scheduler=ShortestFirst()
    )
    fcfs = run_simulation(trace, cluster, resolve_router("llq"), workload=workload)
    assert direct.summary.mean_e2e_s != fcfs.summary.mean_e2e_s  # the scheduler mattered
    assert_same_run(sandboxed, direct)


def test_a_sandboxed_autoscaler_design_gives_exactly_the_in_process_result() -> None:
    cluster, workload = glia.experiment_config("diurnal", duration_s=600.0)
    source = design_source(PerEightOngoing, "Autoscaler")
    sandboxed = run_sandboxed(source, cluster, workload, seed=0, task="autoscaling", router="llq")
    trace = build_trace(workload, 0, max_context=cluster.resolve().max_context)
    direct = run_simulation(
        trace, cluster, resolve_router("llq"), workload=workload, autoscaler=PerEightOngoing()
    )
    assert direct.summary.scale_events > 0
    assert_same_run(sandboxed, direct)
    assert isinstance(sandboxed, SimResult) and sandboxed.autoscaler == "PerEightOngoing"


def test_a_design_of_the_wrong_kind_for_the_task_is_refused() -> None:
    source = "from glia.policies import Router\n\n\nclass First(Router):\n    pass\n"
    cluster, workload = glia.experiment_config("diurnal", duration_s=60.0)
    out = run_sandboxed(source, cluster, workload, task="autoscaling")
    assert isinstance(out, DesignFailure)
    assert (out.kind, out.message) == (
        "exception",
        "a design must define exactly one subclass of glia.policies.Autoscaler (found none): it "
        "defines a design for the routing task",
    )


def test_a_sandboxed_autoscaler_breaking_the_rules_is_an_invalid_decision() -> None:
    cluster, workload = glia.experiment_config("diurnal", duration_s=60.0)
    out = run_sandboxed(
        design_source(Fractional, "Autoscaler"), cluster, workload, task="autoscaling"
    )
    assert isinstance(out, DesignFailure)
    assert (out.kind, out.message) == (
        "invalid-decision",
        "autoscaler 'Fractional' returned 2.5 at t=5.000s: scale() must return the number of "
        "replicas wanted, an int",
    )


# --- 8. the command line ----------------------------------------------------------------------


def test_baselines_for_autoscaling_report_cost_slo_and_gpu_hours() -> None:
    result = invoke(
        "baselines --task autoscaling -p diurnal --duration 900 --seeds 1 --in-process --json"
    )
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["autoscaler"] for r in rows] == ["static", "hpa", "kpa", "ray-serve"]
    for r in rows:
        assert r.keys() >= {"autoscaler", "cost", "slo_met", "gpu_hours", "mean_replicas"}
        assert r["preset"] == "diurnal" and r["seeds"] == [0]
        assert isinstance(r["slo_met"], bool)
        assert r["cost"] >= r["gpu_hours"] > 0
        assert r["cost"] == r["gpu_hours"] or not r["slo_met"]
    assert len({r["num_requests"] for r in rows}) == 1


def test_baselines_for_scheduling_list_every_baseline_scheduler() -> None:
    result = invoke("baselines --task scheduling --duration 200 --seeds 1 --in-process --json")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["scheduler"] for r in rows] == ["fcfs", "spf", "fair", "sarathi-512"]
    for r in rows:
        assert r["preset"] == "glia-scheduling"
        assert r["cost"] == pytest.approx(r["mean_e2e_s"] + 0.1 * r["p99_e2e_s"])


def test_simulate_with_an_unknown_autoscaler_fails_with_the_choices() -> None:
    result = invoke("simulate -p diurnal --autoscaler nope")
    assert (result.exit_code, result.stdout, result.stderr) == (
        2,
        "",
        "error: unknown autoscaler 'nope': choose one of hpa, kpa, ray-serve, static\n",
    )
