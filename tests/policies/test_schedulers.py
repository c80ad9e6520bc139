"""Replica schedulers: admission order, token budgets and preemption victims inside replicas."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import glia
from glia.policies import (
    ReplicaScheduler,
    resolve_router,
    resolve_scheduler,
)
from glia.sim import (
    ClusterConfig,
    IterationRecord,
    ReplicaView,
    Request,
    SimResult,
    Trace,
    build_trace,
    run_simulation,
)

CLUSTER, WORKLOAD = glia.experiment_config("glia-routing")


def run(seed: int, scheduler: ReplicaScheduler | str | None, **kw: object) -> SimResult:
    trace = build_trace(WORKLOAD, seed, max_context=8192)
    s = None if scheduler is None else resolve_scheduler(scheduler)
    return run_simulation(trace, CLUSTER, resolve_router("llq"), seed=seed, scheduler=s, **kw)  # type: ignore[arg-type]


def test_fcfs_is_the_replicas_own_behaviour() -> None:
    plain, fcfs = run(0, None), run(0, "fcfs")
    assert np.array_equal(plain.requests.completed_at, fcfs.requests.completed_at)
    assert plain.summary.restarts == fcfs.summary.restarts


@pytest.mark.slow
def test_shortest_prompt_first_cuts_the_mean_and_aging_bounds_the_tail() -> None:
    """Under overload (seed 1), SPF halves the mean but starves long prompts; the fair
    scheduler keeps most of the gain in the mean while bounding the tail."""
    fcfs, spf, fair = (run(1, s).summary for s in ("fcfs", "spf", "fair"))
    assert spf.mean_e2e_s < 0.6 * fcfs.mean_e2e_s
    assert spf.p99_e2e_s > 2 * fcfs.p99_e2e_s  # starvation
    assert fair.mean_e2e_s < 0.9 * fcfs.mean_e2e_s
    assert fair.p99_e2e_s < 0.6 * spf.p99_e2e_s


def test_sarathi_chunks_respect_the_token_budget() -> None:
    records: list[IterationRecord] = []
    trace = build_trace(glia.experiment_config("glia-routing", duration_s=60.0)[1], 0, 8192)
    run_simulation(trace, CLUSTER, resolve_router("llq"), scheduler=resolve_scheduler(
        "sarathi-512"), observer=records.append)  # fmt: skip
    assert max(r.prefill_tokens + r.decode_tokens for r in records) <= 512
    assert max(r.prefill_tokens for r in records) == 512 - min(r.decode_tokens for r in records
                                                               if r.prefill_tokens)  # fmt: skip


class OldestVictim(ReplicaScheduler):
    """Preempts the request that arrived first (the opposite of vLLM)."""

    def victim(self, replica: ReplicaView, now: float) -> Request:
        return min((r.request for r in replica.running), key=lambda q: (q.arrived_at, q.id))


def test_a_scheduler_chooses_the_preemption_victim() -> None:
    youngest, oldest = run(1, "fcfs"), run(1, OldestVictim())
    assert youngest.summary.restarts > 0 and oldest.summary.restarts > 0
    assert not np.array_equal(youngest.requests.request_num_restarts,
                              oldest.requests.request_num_restarts)  # fmt: skip
    assert (oldest.requests.completed_at >= oldest.requests.arrived_at).all()


class Foreign(ReplicaScheduler):
    def order(self, replica: ReplicaView, now: float) -> Sequence[Request]:
        return [Request(99_999, 0.0, 10)]


class Idle(ReplicaScheduler):
    def victim(self, replica: ReplicaView, now: float) -> Request:
        return Request(99_999, 0.0, 10)


def test_bad_scheduler_decisions_are_design_errors() -> None:
    with pytest.raises(glia.DesignError) as err:
        run(0, Foreign())
    assert str(err.value) == (
        "scheduler 'Foreign' returned Request(id=99999, arrived_at=0.0, num_prefill_tokens=10) "
        "from order() on replica 0 at t=0.000s: return requests of replica.queue, each once"
    )
    with pytest.raises(glia.DesignError, match=r"^scheduler 'Idle' chose Request\(id=99999"):
        run(1, Idle())
    with pytest.raises(glia.InputError, match=r"^unknown scheduler 'lifo': choose one of fair,"):
        resolve_scheduler("lifo")


@st.composite
def small_runs(draw: st.DrawFn) -> tuple[Trace, ClusterConfig, str]:
    n = draw(st.integers(1, 30))
    arrivals = sorted(draw(st.lists(st.integers(0, 40).map(lambda k: k * 0.5), min_size=n,
                                    max_size=n)))  # fmt: skip
    prompts = draw(st.lists(st.integers(1, 200), min_size=n, max_size=n))
    outputs = draw(st.lists(st.integers(1, 200), min_size=n, max_size=n))
    cluster = ClusterConfig(
        num_replicas=draw(st.integers(1, 3)), num_blocks=draw(st.integers(110, 200)),
        block_size=draw(st.sampled_from([4, 16])), chunk_size=draw(st.integers(16, 256)),
        max_batch_size=draw(st.integers(1, 8)), watermark=0.0,
    )  # fmt: skip
    t = Trace(np.array(arrivals, dtype=np.float64), np.array(prompts), np.array(outputs))
    return t, cluster, draw(st.sampled_from(sorted(glia.policies.SCHEDULERS)))


@settings(max_examples=60, deadline=None)
@given(small_runs())
def test_invariants_hold_under_every_scheduler(case: tuple[Trace, ClusterConfig, str]) -> None:
    t, cluster, name = case
    records: list[IterationRecord] = []
    a = run_simulation(t, cluster, resolve_router("llq"), scheduler=resolve_scheduler(name),
                       observer=records.append)  # fmt: skip
    b = run_simulation(t, cluster, resolve_router("llq"), scheduler=resolve_scheduler(name))
    r = a.requests
    assert (r.completed_at >= r.arrived_at).all() and (r.scheduled_at >= r.arrived_at).all()
    assert all(rec.allocated_blocks <= rec.num_blocks for rec in records)
    assert np.array_equal(r.completed_at, b.requests.completed_at)  # deterministic


def test_schedulers_from_python_and_the_command_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from glia.cli import app

    mine = glia.simulate("llq", duration_s=120.0, scheduler="spf").summary.mean_e2e_s
    assert mine != glia.simulate("llq", duration_s=120.0).summary.mean_e2e_s
    args = ["simulate", "--scheduler", "spf", "--duration", "120", "--json"]
    local = CliRunner().invoke(app, [*args, "--in-process"])
    bus = CliRunner().invoke(app, args)  # over a private server and a worker
    for result in (local, bus):
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout)["mean_e2e_s"] == pytest.approx(mine, abs=1e-5)
    bad = CliRunner().invoke(app, ["simulate", "--scheduler", "lifo"])
    assert (bad.exit_code, bad.stderr) == (
        2, "error: unknown scheduler 'lifo': choose one of fair, fcfs, sarathi-512, spf\n"
    )  # fmt: skip
    design = tmp_path / "d.py"
    design.write_text(glia.policies.compose(glia.policies.Mechanisms()))
    # A routing design runs in the sandbox next to a baseline scheduler, exactly as in-process.
    both = CliRunner().invoke(
        app, ["simulate", "--design", str(design), "--scheduler", "spf", "--duration", "120",
              "--in-process", "--json"],
    )  # fmt: skip
    assert both.exit_code == 0, both.stderr
    trusted = glia.simulate(
        glia.policies.load_design(design), duration_s=120.0, scheduler="spf"
    ).summary.mean_e2e_s
    assert json.loads(both.stdout)["mean_e2e_s"] == pytest.approx(trusted, abs=1e-5)
    alone = glia.simulate(glia.policies.load_design(design), duration_s=120.0)
    assert alone.summary.mean_e2e_s != pytest.approx(trusted, abs=1e-5)
