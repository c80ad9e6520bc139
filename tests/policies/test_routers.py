"""The baseline routers' decisions on real cluster views, and resolving routers by name or file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import glia
from glia.policies import (
    BASELINES,
    ExpertRouter,
    HeadRoomAdmissionRouter,
    LeastLoadedQueueRouter,
    Router,
    load_design_source,
    resolve_router,
)
from glia.sim import ClusterConfig, ClusterView, Request, Trace, run_simulation

# -- recording what a router saw and decided ----------------------------------------------------


@dataclass(frozen=True)
class ReplicaState:
    queued: int
    running: int
    outstanding: int
    allocated: int
    num_blocks: int
    block_size: int
    queue_prompts: tuple[int, ...]


@dataclass(frozen=True)
class Call:
    now: float
    trigger: str
    queue: tuple[Request, ...]
    replicas: tuple[ReplicaState, ...]
    decisions: tuple[tuple[int, Request], ...]

    @property
    def held(self) -> bool:
        return len(self.decisions) < len(self.queue)


class Spy(Router):
    """Wraps a router: records the view it was given (before it decides) and its decisions."""

    name = "spy"

    def __init__(self, inner: Router) -> None:
        self.inner = inner
        self.calls: list[Call] = []

    def setup(self, cluster: ClusterView, rng: np.random.Generator) -> None:
        super().setup(cluster, rng)
        self.inner.setup(cluster, rng)

    def schedule(self, cluster: ClusterView) -> list[tuple[int, Request]]:
        reps = tuple(
            ReplicaState(
                queued=r.num_queued,
                running=r.num_running,
                outstanding=r.num_outstanding,
                allocated=r.num_allocated_blocks,
                num_blocks=r.num_blocks,
                block_size=r.block_size,
                queue_prompts=tuple(q.num_prefill_tokens for q in r.queue),
            )
            for r in cluster.replicas
        )
        queue = cluster.queue
        decisions = tuple((int(rid), req) for rid, req in self.inner.schedule(cluster))
        self.calls.append(Call(cluster.now, cluster.trigger, queue, reps, decisions))
        return list(decisions)


def _busy_trace(n: int = 240, seed: int = 1, rate: float = 25.0) -> Trace:
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1.0 / rate, n))
    arrivals[0] = 0.0
    return Trace(
        np.sort(arrivals),
        rng.integers(20, 600, n).astype(np.int64),
        rng.integers(20, 400, n).astype(np.int64),
    )


def _busy_cluster(replicas: int = 4) -> ClusterConfig:
    return ClusterConfig(
        num_replicas=replicas,
        num_blocks=300,
        block_size=16,
        chunk_size=512,
        max_batch_size=16,
        watermark=0.01,
    )


def _spy(
    router: str | Router, trace: Trace | None = None, replicas: int = 4, seed: int = 0
) -> tuple[list[Call], glia.SimResult]:
    spy = Spy(resolve_router(router))
    result = run_simulation(
        trace if trace is not None else _busy_trace(), _busy_cluster(replicas), spy, seed=seed
    )
    assert spy.calls
    return spy.calls, result


def _routes_all_in_arrival_order(calls: list[Call]) -> None:
    for c in calls:
        assert [req for _, req in c.decisions] == list(c.queue)


def _spf(queue: tuple[Request, ...]) -> list[Request]:
    return sorted(queue, key=lambda q: (q.num_prefill_tokens, q.arrived_at, q.id))


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


# -- the load-balancing baselines ---------------------------------------------------------------


def test_the_busy_scenario_queues_requests() -> None:
    calls, result = _spy("llq")
    assert max(s.queued for c in calls for s in c.replicas) >= 3
    assert result.summary.restarts > 0  # memory pressure as well


@pytest.mark.parametrize(("router", "field"), [("llq", "outstanding"), ("lor", "queued")])
def test_greedy_routers_pick_the_least_loaded(router: str, field: str) -> None:
    calls, _ = _spy(router)
    _routes_all_in_arrival_order(calls)
    ties = 0
    for c in calls:
        load = [getattr(s, field) for s in c.replicas]
        for rid, _ in c.decisions:
            assert load[rid] == min(load)
            assert rid == load.index(min(load))  # ties: the lowest index
            ties += load.count(min(load)) > 1
            load[rid] += 1
    assert ties  # the tie rule was exercised


def test_round_robin_cycles() -> None:
    trace = _busy_trace()
    calls, result = _spy("round-robin", trace)
    _routes_all_in_arrival_order(calls)
    routed = [rid for c in calls for rid, _ in c.decisions]
    assert routed == [i % 4 for i in range(len(trace))]
    assert result.requests.replica_id.tolist() == [i % 4 for i in range(len(trace))]


def test_round_robin_restarts_its_cycle_each_run() -> None:
    router = resolve_router("round-robin")
    trace = Trace(np.zeros(3), np.full(3, 10, dtype=np.int64), np.full(3, 3, dtype=np.int64))
    for _ in range(2):
        result = run_simulation(trace, _busy_cluster(), router)
        assert result.requests.replica_id.tolist() == [0, 1, 2]


@pytest.mark.parametrize("router", ["random", "power-of-two"])
def test_random_routers_are_reproducible(router: str) -> None:
    a, ra = _spy(router, seed=3)
    b, rb = _spy(router, seed=3)
    _, rc = _spy(router, seed=4)
    _routes_all_in_arrival_order(a)
    assert [x.decisions for x in a] == [x.decisions for x in b]
    assert np.array_equal(ra.requests.replica_id, rb.requests.replica_id)
    assert not np.array_equal(ra.requests.replica_id, rc.requests.replica_id)


def test_random_spreads_evenly() -> None:
    _, result = _spy("random", _busy_trace(n=400))
    counts = np.bincount(result.requests.replica_id, minlength=4)
    assert np.all(counts > 60)  # 100 expected each


def test_power_of_two_never_picks_the_most_loaded() -> None:
    calls, _ = _spy("power-of-two")
    for c in calls:
        load = [s.outstanding for s in c.replicas]
        for rid, _ in c.decisions:
            # The less loaded of two distinct replicas is at most the second-highest load.
            assert load[rid] <= sorted(load)[-2]
            load[rid] += 1


def test_power_of_two_on_two_replicas_is_llq() -> None:
    trace = _busy_trace(n=120)
    _, p2c = _spy("power-of-two", trace, replicas=2)
    _, llq = _spy("llq", trace, replicas=2)
    assert np.array_equal(p2c.requests.replica_id, llq.requests.replica_id)


def test_one_replica_takes_everything() -> None:
    trace = _busy_trace(n=40)
    for name in ("random", "power-of-two", "round-robin"):
        _, result = _spy(name, trace, replicas=1)
        assert not result.requests.replica_id.any()


def test_least_kv_picks_the_fewest_committed_blocks() -> None:
    calls, _ = _spy("least-kv")
    _routes_all_in_arrival_order(calls)
    for c in calls:
        kv = [
            s.allocated + sum(_ceil(p, s.block_size) for p in s.queue_prompts) for s in c.replicas
        ]
        load = [s.outstanding for s in c.replicas]
        for rid, req in c.decisions:
            assert (kv[rid], load[rid], rid) == min((kv[i], load[i], i) for i in range(4))
            kv[rid] += _ceil(req.num_prefill_tokens, 16)
            load[rid] += 1


def test_llmd_maximises_queue_and_kv_scores() -> None:
    calls, _ = _spy("llm-d")
    _routes_all_in_arrival_order(calls)
    for c in calls:
        queued = [s.queued for s in c.replicas]
        kv = [
            s.allocated + sum(_ceil(p, s.block_size) for p in s.queue_prompts) for s in c.replicas
        ]
        for rid, req in c.decisions:
            lo, hi = min(queued), max(queued)
            scores = [
                (1.0 if hi == lo else (hi - queued[i]) / (hi - lo)) + 1.0 - kv[i] / 300
                for i in range(4)
            ]
            assert rid == scores.index(max(scores))
            queued[rid] += 1
            kv[rid] += _ceil(req.num_prefill_tokens, 16)


# -- the admission-control routers ---------------------------------------------------------------


def _check_spf_prefix(c: Call) -> None:
    routed = [req for _, req in c.decisions]
    assert routed == _spf(c.queue)[: len(routed)]


NB = 300  # blocks per replica in the busy scenario
RESERVE = int(NB * 0.03)  # HRA keeps 3% free: 9 blocks


def test_hra_routes_shortest_first_and_keeps_head_room() -> None:
    calls, _ = _spy("hra")
    holds = 0
    for c in calls:
        _check_spf_prefix(c)

        def need(prompt: int) -> int:
            return _ceil(prompt * 16, 10 * 16)  # ceil(prompt * 1.6 / 16), in integers

        projected = [s.allocated + sum(need(p) for p in s.queue_prompts) for s in c.replicas]
        load = [s.outstanding for s in c.replicas]

        def fits(i: int, prompt: int, proj: list[int] = projected, ld: list[int] = load) -> bool:
            empty = proj[i] == 0 and ld[i] == 0
            return NB - (proj[i] + need(prompt)) >= RESERVE or empty

        for rid, req in c.decisions:
            p = req.num_prefill_tokens
            assert fits(rid, p)
            ok = [i for i in range(4) if fits(i, p)]
            assert (projected[rid], load[rid], rid) == min((projected[i], load[i], i) for i in ok)
            projected[rid] += need(p)
            load[rid] += 1
        if c.held:
            holds += 1
            head = _spf(c.queue)[len(c.decisions)]
            assert not any(fits(i, head.num_prefill_tokens) for i in range(4))
    assert holds > 10  # the scenario exercises admission control


def test_expert_holds_when_committed_blocks_near_capacity() -> None:
    calls, _ = _spy("expert")
    holds = 0
    for c in calls:
        _check_spf_prefix(c)
        committed = [
            s.allocated + sum(_ceil(p, s.block_size) for p in s.queue_prompts) for s in c.replicas
        ]

        def over(i: int, prompt: int, com: list[int] = committed, c: Call = c) -> bool:
            # committed + need >= 2100/2240 of capacity, unless the replica is empty
            empty = com[i] == 0 and c.replicas[i].outstanding == 0
            return (com[i] + _ceil(prompt, 16)) * 2240 >= 2100 * 300 and not empty

        for rid, req in c.decisions:
            assert (committed[rid], rid) == min((committed[i], i) for i in range(4))
            assert not over(rid, req.num_prefill_tokens)
            committed[rid] += _ceil(req.num_prefill_tokens, 16)
        if c.held:
            holds += 1
            head = _spf(c.queue)[len(c.decisions)]
            best = min(range(4), key=lambda i: (committed[i], i))
            assert over(best, head.num_prefill_tokens)
    assert holds > 10


@pytest.mark.parametrize("router", ["hra", "expert"])
def test_admission_control_takes_an_oversized_request_on_an_empty_replica(router: str) -> None:
    # 4,000 tokens: more than the 97% (HRA, with its 1.6x projection) or 2100/2240 (expert) of
    # a 300-block replica allows, yet it fits the memory: an idle replica must take it.
    trace = Trace(np.zeros(1), np.array([4000], dtype=np.int64), np.array([5], dtype=np.int64))
    calls, result = _spy(router, trace)
    assert calls[0].decisions == ((0, calls[0].queue[0]),)
    assert result.requests.completed_at[0] > 0


@pytest.mark.parametrize("router", ["hra", "expert"])
def test_admission_control_has_fewer_restarts_than_llq(router: str) -> None:
    _, llq = _spy("llq")
    _, held = _spy(router)
    assert held.summary.restarts < llq.summary.restarts


def test_hra_parameters_can_be_tuned_by_subclassing() -> None:
    class Careful(HeadRoomAdmissionRouter):
        name = "careful"
        safety = 0.5

    calls, _ = _spy(Careful())
    for c in calls:
        projected = [
            s.allocated + sum(_ceil(p * 16, 160) for p in s.queue_prompts) for s in c.replicas
        ]
        for rid, req in c.decisions:
            assert 300 - (projected[rid] + _ceil(req.num_prefill_tokens * 16, 160)) >= 150 or (
                projected[rid] == 0 and c.replicas[rid].outstanding == 0
            )
            projected[rid] += _ceil(req.num_prefill_tokens * 16, 160)


# -- the catalogue --------------------------------------------------------------------------------


def test_baseline_names() -> None:
    assert list(BASELINES) == [
        "random",
        "round-robin",
        "lor",
        "llq",
        "power-of-two",
        "least-kv",
        "llm-d",
        "llm-d-prefix",
        "llm-d-1-1",
        "llm-d-3-2-2",
        "sglang-cache",
        "expert",
        "hra",
    ]
    for name, cls in BASELINES.items():
        assert cls.name == name
        assert resolve_router(name).name == name


def test_a_subclass_without_a_name_is_named_after_its_class() -> None:
    class MyRouter(LeastLoadedQueueRouter):
        pass

    class Plain(Router):
        pass

    assert MyRouter.name == "MyRouter"  # its own, not the parent's "llq"
    assert Plain.name == "Plain"


def test_the_base_router_must_be_implemented() -> None:
    class Lazy(Router):
        pass

    trace = Trace(np.zeros(1), np.array([5], dtype=np.int64), np.array([5], dtype=np.int64))
    with pytest.raises(glia.DesignError) as err:
        run_simulation(trace, _busy_cluster(), Lazy())
    assert str(err.value) == (
        "router 'Lazy' raised NotImplementedError at t=0.000s: Lazy must implement "
        "schedule(cluster)"
    )


# -- resolve_router -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["llq", "LLQ", "Llq"])
def test_resolve_by_name_ignores_case(name: str) -> None:
    r = resolve_router(name)
    assert type(r) is LeastLoadedQueueRouter
    assert resolve_router(name) is not r  # a fresh router each time


def test_resolve_by_class_and_instance() -> None:
    r = resolve_router(ExpertRouter)
    assert type(r) is ExpertRouter
    inst = HeadRoomAdmissionRouter()
    assert resolve_router(inst) is inst


_DESIGN = """
from glia.policies import LeastLoadedQueueRouter, Router


class Mine(Router):
    name = "mine"

    def schedule(self, cluster):
        return [(len(cluster.replicas) - 1, q) for q in cluster.queue]
"""


def test_resolve_a_design_file(tmp_path: Path) -> None:
    path = tmp_path / "design.py"
    path.write_text(_DESIGN, encoding="utf-8")
    for spec in (str(path), path):
        r = resolve_router(spec)
        assert r.name == "mine"
        assert type(r).__name__ == "Mine"  # the imported baseline does not count
    trace = Trace(np.zeros(3), np.full(3, 5, dtype=np.int64), np.full(3, 5, dtype=np.int64))
    result = run_simulation(trace, _busy_cluster(), resolve_router(path))
    assert result.router == "mine"
    assert set(result.requests.replica_id.tolist()) == {3}


def test_unknown_router_name() -> None:
    with pytest.raises(glia.InputError) as err:
        resolve_router("nope")
    assert str(err.value) == (
        "unknown router 'nope': choose one of expert, hra, least-kv, llm-d, llm-d-1-1, "
        "llm-d-3-2-2, llm-d-prefix, llq, lor, power-of-two, random, round-robin, sglang-cache; "
        "or give a .py design file"
    )


def test_a_missing_design_file(tmp_path: Path) -> None:
    path = tmp_path / "gone.py"
    with pytest.raises(glia.InputError) as err:
        resolve_router(str(path))
    assert (
        str(err.value) == f"design file {str(path)!r} does not exist: give the path of a .py file"
    )


def test_not_a_router_at_all() -> None:
    with pytest.raises(glia.InputError) as err:
        resolve_router(42)  # type: ignore[arg-type]
    assert str(err.value) == (
        "router 42 is a int: give a baseline name, a .py design file, a Router subclass or an "
        "instance"
    )


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("x = 1\n", "none"),
        ("from glia.policies import LeastLoadedQueueRouter as Llq\n", "none"),
        (
            "from glia.policies import Router\n"
            "class A(Router):\n    pass\n"
            "class B(Router):\n    pass\n",
            "A, B",
        ),
    ],
)
def test_a_design_must_define_exactly_one_router(tmp_path: Path, source: str, found: str) -> None:
    path = tmp_path / "d.py"
    path.write_text(source, encoding="utf-8")
    with pytest.raises(glia.DesignError) as err:
        resolve_router(path)
    assert str(err.value) == (
        f"{path}: a design must define exactly one subclass of glia.policies.Router (found {found})"
    )


def test_a_design_with_a_syntax_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.py"
    path.write_text("from glia.policies import Router\n\nclass A(Router)\n    pass\n", "utf-8")
    with pytest.raises(glia.DesignError) as err:
        resolve_router(str(path))
    assert str(err.value).startswith(f"{path}:3: syntax error: ")


def test_a_design_that_fails_on_import() -> None:
    with pytest.raises(glia.DesignError) as err:
        load_design_source("import glia\nraise KeyError('boom')\n", "mine.py")
    assert str(err.value) == "mine.py: importing the design raised KeyError: 'boom'"


def test_designs_may_use_dataclasses() -> None:
    source = (
        "from dataclasses import dataclass\n"
        "from glia.policies import Router\n"
        "@dataclass\nclass Cfg:\n    k: int = 1\n"
        "class R(Router):\n    def schedule(self, cluster):\n"
        "        return [(Cfg().k - 1, q) for q in cluster.queue]\n"
    )
    cls = load_design_source(source)
    assert cls.name == "R"
    trace = Trace(np.zeros(2), np.array([5, 6], dtype=np.int64), np.array([5, 5], dtype=np.int64))
    assert run_simulation(trace, _busy_cluster(), cls()).requests.replica_id.tolist() == [0, 0]
