"""The offline catalogue's starvation bound on shortest-prompt-first routing (``starve_s``)."""

from __future__ import annotations

import ast
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from glia.policies import Mechanisms, compose, load_design_source
from glia.sim import ClusterConfig, Request, Trace, run_simulation

from .test_routers import Spy

_CLUSTER = ClusterConfig(num_replicas=2, num_blocks=300, block_size=16, chunk_size=512,
                         max_batch_size=16, watermark=0.01)  # fmt: skip


def _trace(seed: int, n: int = 200, rate: float = 30.0) -> Trace:
    """Overloaded on purpose, so that requests wait in the global queue."""
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1.0 / rate, n))
    arrivals[0] = 0.0
    return Trace(np.sort(arrivals), rng.integers(20, 2000, n).astype(np.int64),
                 rng.integers(20, 400, n).astype(np.int64))  # fmt: skip


def _expected(queue: tuple[Request, ...], now: float, starve_s: float) -> list[Request]:
    old = sorted((q for q in queue if now - q.arrived_at >= starve_s),
                 key=lambda q: (q.arrived_at, q.id))  # fmt: skip
    young = sorted((q for q in queue if now - q.arrived_at < starve_s),
                   key=lambda q: (q.num_prefill_tokens, q.arrived_at, q.id))  # fmt: skip
    return old + young


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 2**16), st.sampled_from([0.5, 1.0, 2.0, 4.0]))
def test_requests_that_waited_go_first_in_arrival_order(seed: int, starve_s: float) -> None:
    spec = Mechanisms(score="queued", order="shortest-prompt", admission=True, starve_s=starve_s)
    spy = Spy(load_design_source(compose(spec, name="Bounded"))())
    run_simulation(_trace(seed), _CLUSTER, spy, seed=seed)
    starved = 0
    for c in spy.calls:
        order = _expected(c.queue, c.now, starve_s)
        # admission may hold the queue: what is routed is a prefix of the bounded order
        assert [req for _, req in c.decisions] == order[: len(c.decisions)]
        starved += sum(c.now - q.arrived_at >= starve_s for q in c.queue)
    assert starved > 0  # the scenario exercises the bound


def test_the_bound_cuts_the_longest_wait() -> None:
    waits = {}
    for starve_s in (0.0, 5.0):  # admission holds requests in the global queue: they can starve
        spec = Mechanisms(score="queued", order="shortest-prompt", admission=True,
                          starve_s=starve_s)  # fmt: skip
        trace = _trace(3, n=400, rate=6.0)
        result = run_simulation(trace, _CLUSTER, load_design_source(compose(spec))(), seed=3)
        waits[starve_s] = float(result.requests.request_scheduling_delay.max())
    assert waits[5.0] < waits[0.0]


def test_no_bound_composes_the_same_router_as_before() -> None:
    plain = Mechanisms(order="shortest-prompt")
    assert compose(plain) == compose(Mechanisms(order="shortest-prompt", starve_s=0.0))
    assert "STARVE_S" not in compose(plain) and "starve_s" not in plain.describe()
    # the bound needs shortest-first: with arrival order there is nothing to starve
    assert compose(Mechanisms(starve_s=60.0)) == compose(Mechanisms())
    bounded = Mechanisms(order="shortest-prompt", starve_s=60.0)
    assert bounded.describe() == "score=outstanding, order=shortest-prompt, starve_s=60"


def test_the_bound_reads_only_what_a_real_router_knows() -> None:
    """The composed design reads the request's arrival time and prompt length and the clock;
    never an output length."""
    source = compose(Mechanisms(order="shortest-prompt", starve_s=60.0, admission=True))
    attributes = {n.attr for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Attribute)}
    public = {"arrived_at", "num_prefill_tokens", "id", "now", "queue", "replicas", "num_queued",
              "num_outstanding", "num_allocated_blocks", "num_blocks", "block_size", "ceil",
              "append"}  # fmt: skip
    assert attributes <= public


def _by_deadline(queue: tuple[Request, ...], deadline_s: float) -> list[Request]:
    return sorted(queue, key=lambda q: (
        q.arrived_at + deadline_s * math.log2(q.num_prefill_tokens + 1), q.id))  # fmt: skip


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 2**16), st.sampled_from([0.1, 1.0, 10.0]))
def test_size_aware_deadlines_order_the_release(seed: int, deadline_s: float) -> None:
    spec = Mechanisms(score="queued", order="shortest-prompt", admission=True,
                      deadline_s=deadline_s, starve_s=5.0)  # fmt: skip
    described = spec.describe()
    assert f"deadline_s={deadline_s:g}" in described and "starve" not in described  # replaces it
    spy = Spy(load_design_source(compose(spec, name="Fair"))())
    run_simulation(_trace(seed), _CLUSTER, spy, seed=seed)
    for c in spy.calls:
        order = _by_deadline(c.queue, deadline_s)
        assert [req for _, req in c.decisions] == order[: len(c.decisions)]


def test_deadlines_read_only_what_a_real_router_knows() -> None:
    source = compose(Mechanisms(order="shortest-prompt", deadline_s=30.0, admission=True))
    attributes = {n.attr for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Attribute)}
    public = {"arrived_at", "num_prefill_tokens", "id", "queue", "replicas", "num_queued",
              "num_outstanding", "num_allocated_blocks", "num_blocks", "block_size", "ceil",
              "log2", "append"}  # fmt: skip
    assert attributes <= public
    assert compose(Mechanisms(deadline_s=30.0)) == compose(Mechanisms())  # needs shortest-first
