"""``metrics_interval_s``: routers see replicas as of the last metrics scrape, as in front of real
engines; the router's own tracking stays exact, and fields no engine exports are refused."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import glia
from glia._errors import DesignError, InputError
from glia.policies import Router, resolve_router
from glia.sandbox import DesignFailure, Limits, run_sandboxed
from glia.sim import (
    SCRAPED_FIELDS,
    UNSCRAPABLE_FIELDS,
    ClusterConfig,
    ClusterView,
    Request,
    Trace,
    build_trace,
    run_simulation,
)

from .conftest import trace_of as _trace


def _cluster(interval: float, **kw: int) -> ClusterConfig:
    base = {"num_replicas": 1, "num_blocks": 100, "block_size": 16, "watermark": 0.0}
    return ClusterConfig(metrics_interval_s=interval, **(base | kw))  # type: ignore[arg-type]


Seen = tuple[float, str, int, int, int, int, float]


class Spy(Router):
    """Routes everything to replica 0 and records what it saw of it at each call."""

    name = "spy"

    def __init__(self) -> None:
        self.seen: list[Seen] = []

    def schedule(self, cluster: ClusterView) -> list[tuple[int, Request]]:
        r = cluster.replicas[0]
        self.seen.append(
            (cluster.now, cluster.trigger, r.num_queued, r.num_running, r.num_outstanding,
             r.num_allocated_blocks, r.metrics_age_s)
        )  # fmt: skip
        return [(0, q) for q in cluster.queue]


def _spy(trace: Trace, interval: float, **kw: int) -> list[Seen]:
    spy = Spy()
    run_simulation(trace, _cluster(interval, **kw), spy, seed=0)
    return spy.seen


def test_a_router_sees_the_old_queue_until_the_next_scrape() -> None:
    # One request at a time (max_batch_size 1), four arrive a second apart, long outputs: the
    # replica's queue grows 0, 0, 1, 2 but the scrape at t=0 (an empty replica) is all the
    # router sees until the first call at or after t=10.
    trace = _trace([0.0, 1.0, 2.0, 3.0], [32, 32, 32, 32], [400, 400, 400, 400])
    exact = _spy(trace, 0.0, max_batch_size=1)
    stale = _spy(trace, 10.0, max_batch_size=1)
    assert [s[:6] for s in exact[:4]] == [
        (0.0, "arrival", 0, 0, 0, 0),
        (1.0, "arrival", 0, 1, 1, 5),
        (2.0, "arrival", 1, 1, 2, 7),
        (3.0, "arrival", 2, 1, 3, 9),
    ]
    # Queue, running and KV as of t=0; the router's own count (outstanding) exact; the age grows.
    assert stale[:4] == [
        (0.0, "arrival", 0, 0, 0, 0, 0.0),
        (1.0, "arrival", 0, 0, 1, 0, 1.0),
        (2.0, "arrival", 0, 0, 2, 0, 2.0),
        (3.0, "arrival", 0, 0, 3, 0, 3.0),
    ]
    assert [s[0] for s in stale] == [s[0] for s in exact]  # the same calls, at the same times
    later = [(e, s) for e, s in zip(exact, stale, strict=True) if s[0] >= 10.0]
    assert later, "the run must outlast the first scrape interval"
    e, s = later[0]  # the first call after t=10 scrapes: fresh again
    assert s == (*e[:6], 0.0)


@settings(max_examples=25, deadline=None)
@given(
    arrivals=st.lists(st.floats(0.0, 30.0), min_size=1, max_size=12),
    interval=st.floats(0.25, 8.0),
)
def test_scraped_fields_are_the_exact_ones_at_the_last_scrape(
    arrivals: list[float], interval: float
) -> None:
    arrivals = sorted(arrivals)
    n = len(arrivals)
    trace = _trace(arrivals, [200] * n, [60] * n)
    exact = _spy(trace, 0.0, max_batch_size=2)
    stale = _spy(trace, interval, max_batch_size=2)
    assert [s[0] for s in stale] == [s[0] for s in exact]
    scraped: Seen = (0.0, "start", 0, 0, 0, 0, 0.0)  # the scrape as the run starts: all empty
    for e, s in zip(exact, stale, strict=True):
        if e[0] >= (scraped[0] // interval + 1.0) * interval:  # a scrape is due: this call's
            scraped = e
        assert s[2:4] == scraped[2:4] and s[5] == scraped[5]  # queue, running, KV
        assert s[4] == e[4]  # the router's own tracking is exact
        assert s[6] == pytest.approx(e[0] - scraped[0])
        assert s[6] >= 0.0


def test_the_default_is_bit_identical_to_exact_views() -> None:
    c, w = glia.experiment_config("glia-routing", duration_s=120.0)
    trace = build_trace(w, 0)
    for name in ("round-robin", "llq", "hra"):
        base = run_simulation(trace, c, resolve_router(name), seed=0)
        zero_c = msgspec.structs.replace(c, metrics_interval_s=0.0)
        zero = run_simulation(trace, zero_c, resolve_router(name), seed=0)
        for col in ("completed_at", "prefill_completed_at", "replica_id"):
            assert np.array_equal(getattr(base.requests, col), getattr(zero.requests, col))


def test_views_say_which_fields_are_fresh() -> None:
    seen: list[tuple[frozenset[str], float]] = []

    class Look(Router):
        name = "look"

        def schedule(self, cluster: ClusterView) -> list[tuple[int, Request]]:
            r = cluster.replicas[0]
            seen.append((r.stale_fields, r.metrics_age_s))
            return [(0, q) for q in cluster.queue]

    trace = _trace([0.0, 0.5], [32, 32], [4, 4])
    run_simulation(trace, _cluster(0.0), Look(), seed=0)
    assert {s for s, _ in seen} == {frozenset()} and {a for _, a in seen} == {0.0}
    seen.clear()
    run_simulation(trace, _cluster(1.0), Look(), seed=0)
    assert {s for s, _ in seen} == {SCRAPED_FIELDS}
    assert {"queue", "num_queued", "num_running", "num_allocated_blocks",
                              "num_free_blocks"} == SCRAPED_FIELDS  # fmt: skip
    assert {"running", "cached_prefix", "prefix_cache_blocks"} == UNSCRAPABLE_FIELDS


@pytest.mark.parametrize("interval", [-1.0, float("nan"), float("inf")])
def test_a_bad_interval_is_an_input_error(interval: float) -> None:
    with pytest.raises(InputError) as e:
        ClusterConfig(metrics_interval_s=interval).resolve()
    assert str(e.value) == (
        f"cluster metrics_interval_s is {interval}: give seconds >= 0 between metrics scrapes, "
        "e.g. 0.5 (0 shows policies exact replica state)"
    )


def test_the_interval_is_a_preset_setting() -> None:
    c, _ = glia.experiment_config("glia-routing", metrics_interval_s=0.5)
    assert c.metrics_interval_s == 0.5
    assert glia.experiment_config("glia-routing")[0].metrics_interval_s == 0.0


REFUSAL = (
    "a design read ReplicaView.running, which a router in front of real engines cannot see "
    "(metrics_interval_s > 0): use num_allocated_blocks, num_free_blocks, num_queued, "
    "num_running, queue (as of the last scrape, see metrics_age_s) or num_outstanding (the "
    "router's own count)"
)

PEEKER = """
from glia.policies import Router

class Peeker(Router):
    name = "peeker"

    def schedule(self, cluster):
        if cluster.trigger == "arrival" and cluster.now > 0.0:
            sum(len(r.running) for r in cluster.replicas)
        return [(0, q) for q in cluster.queue]
"""


def test_reading_an_unscrapable_field_fails_clearly_in_process() -> None:
    class Peeker(Router):
        name = "peeker"

        def schedule(self, cluster: ClusterView) -> list[tuple[int, Request]]:
            if cluster.trigger == "arrival" and cluster.now > 0.0:
                sum(len(r.running) for r in cluster.replicas)
            return [(0, q) for q in cluster.queue]

    trace = _trace([0.0, 0.5], [32, 32], [4, 4])
    run_simulation(trace, _cluster(0.0), Peeker(), seed=0)  # exact views: allowed
    with pytest.raises(DesignError) as e:
        run_simulation(trace, _cluster(1.0), Peeker(), seed=0)
    assert str(e.value) == f"router 'peeker' raised UnscrapableFieldError at t=0.500s: {REFUSAL}"


LIMITS = Limits(wall_s=30.0, cpu_s=10.0, memory_mb=1024)


def test_reading_an_unscrapable_field_fails_clearly_in_the_sandbox() -> None:
    c, w = glia.experiment_config("glia-routing", duration_s=10.0, metrics_interval_s=1.0)
    out = run_sandboxed(PEEKER, c, w, 0, LIMITS)
    assert isinstance(out, DesignFailure), out
    assert REFUSAL in out.message
    assert "router 'peeker' raised UnscrapableFieldError at t=" in out.message
    exact, w0 = glia.experiment_config("glia-routing", duration_s=10.0)
    assert not isinstance(run_sandboxed(PEEKER, exact, w0, 0, LIMITS), DesignFailure)


STALE_AWARE = """
from glia.policies import Router

class StaleAware(Router):
    name = "stale-aware"

    def schedule(self, cluster):
        out = []
        for q in cluster.queue:
            best = min(range(cluster.num_replicas), key=lambda i: (
                cluster.replicas[i].num_queued + cluster.replicas[i].num_running
                + cluster.replicas[i].num_outstanding + len(cluster.replicas[i].queue)
                + cluster.replicas[i].num_allocated_blocks / 100
                + min(cluster.replicas[i].metrics_age_s, 1.0), i))
            out.append((best, q))
        return out
"""


def test_a_design_behaves_the_same_in_and_out_of_the_sandbox_under_staleness() -> None:
    c, w = glia.experiment_config("glia-routing", duration_s=30.0, metrics_interval_s=0.5)
    boxed = run_sandboxed(STALE_AWARE, c, w, 0, LIMITS)
    assert not isinstance(boxed, DesignFailure), boxed
    namespace: dict[str, object] = {}
    exec(compile(STALE_AWARE, "stale_aware.py", "exec"), namespace)  # the same source, trusted
    router = namespace["StaleAware"]()  # type: ignore[operator]
    plain = run_simulation(build_trace(w, 0), c, router, seed=0)
    for col in ("completed_at", "prefill_completed_at", "replica_id"):
        assert np.array_equal(getattr(boxed.requests, col), getattr(plain.requests, col))
