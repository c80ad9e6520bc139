"""Rank fidelity: does the simulator order policies as engines serving them do?

For each policy (a design and the baselines) the same workload, on the same seed, is run
twice: in the simulator, and for real through :func:`~glia.engines.emulate` (the cluster's
replicas as engines in scaled real time) behind :func:`~glia.engines.serve` (the routing
proxy running the policy, unchanged) and measured by :func:`~glia.engines.bench` from the
client's side. The report gives each policy's simulated and measured mean and p99 E2E and
whether the two orderings agree (Kendall's tau). With the engines' URLs in place of the
emulator, this is the paper's real-system experiment.

A served run cannot replay the trace's timing exactly: every arrival and completion reaches the
router a few wall milliseconds late (tens of simulated ms at speed 10), and some policies'
outcomes hang on such details. On ``glia-routing`` (seed 1, 200 s) moving every arrival by
under 1 simulated ms moves LLQ's simulated mean E2E anywhere between 17.7 and 20.5 s, while
round-robin's and HRA's move by under 1%: LLQ counts requests, not their KV memory, and whether
a few long requests pile up on one replica depends on the exact order of events. One
simulation of the trace as given is then one draw from that spread, not the simulator's
prediction for a served run. So each policy is simulated ``replicates`` times: on the trace,
and on copies with every arrival moved later by up to ``jitter_s`` (uniform, order kept); the
simulated mean and p99 compared with the served run are the replicates' averages, with their
spread (:attr:`PolicyTransfer.sim_sd_e2e_s`) and the trace's own run
(:attr:`PolicyTransfer.sim_exact_mean_e2e_s`) beside them.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Sequence

import anyio
import msgspec
import numpy as np
import structlog
from scipy import stats

from glia._errors import DesignError, InputError
from glia.experiment import DesignFailure, Limits
from glia.policies import resolve_router
from glia.sandbox import run_sandboxed
from glia.sim import ClusterConfig, SimResult, Trace, WorkloadConfig, build_trace, run_simulation

from ._bench import bench
from ._emulate import check_speed, emulate
from ._serve import serve

__all__ = ["MAX_LAG", "PolicyTransfer", "TransferReport", "transfer"]

log = structlog.get_logger("glia.transfer")

MAX_LAG = 0.05
"""How far the emulated engines may fall behind their model, as a share of the simulated mean
E2E, before a served run is flagged (:attr:`PolicyTransfer.behind`): lower the speed."""

DEFAULT_BASELINES = ("round-robin", "llq", "hra")
"""The baselines ``transfer`` runs beside a design (the paper's real-system comparison)."""

DEFAULT_REPLICATES = 8
"""Simulations per policy: the trace as given and copies with jittered arrivals."""
DEFAULT_JITTER_S = 0.001
"""The most simulated seconds a replicate moves an arrival: far below the timing noise of any
served run (a wall millisecond is 10 simulated ms at speed 10), so the replicates show how much
a policy's outcome depends on timing it cannot control, not a model of that noise."""


class PolicyTransfer(msgspec.Struct, frozen=True, kw_only=True):
    """One policy, simulated and served: its requests and E2E latencies (simulated seconds)."""

    name: str
    requests: int
    """Requests in the workload."""
    completed: int
    """Requests the served run completed (each failure is in ``failures``)."""
    sim_mean_e2e_s: float
    """The mean E2E simulated, averaged over the replicates."""
    real_mean_e2e_s: float
    sim_p99_e2e_s: float
    """The p99 E2E simulated, averaged over the replicates."""
    real_p99_e2e_s: float
    sim_exact_mean_e2e_s: float = math.nan
    """The mean E2E of the simulation of the trace as given (the first replicate)."""
    sim_sd_e2e_s: float = 0.0
    """The standard deviation of the replicates' mean E2E (0 with one): how far timing noise
    below ``jitter_s`` moves this policy's simulated mean, so how far a served run's may stray
    from :attr:`sim_mean_e2e_s` with nothing wrong."""
    replicates: int = 1
    """Simulations averaged (one for a closed-loop workload, whose arrivals follow completions,
    or a jitter of 0)."""
    failures: list[str] = msgspec.field(default_factory=list)
    """The first few errors of requests the served run did not complete."""
    lag_s: float = 0.0
    """The most simulated seconds the emulated engines were behind their model (the process
    could not keep up with the speed): a bound on how much any measured E2E was stretched;
    see :attr:`behind`."""

    @property
    def behind(self) -> bool:
        """Whether the emulation fell behind real time by more than :data:`MAX_LAG` of the
        simulated mean E2E: its measured times are then the machine's, not the model's."""
        return self.lag_s > MAX_LAG * self.sim_mean_e2e_s

    @property
    def mean_ratio(self) -> float:
        """Measured over simulated mean E2E (1: the simulator is exact)."""
        return self.real_mean_e2e_s / self.sim_mean_e2e_s

    @property
    def p99_ratio(self) -> float:
        """Measured over simulated p99 E2E."""
        return self.real_p99_e2e_s / self.sim_p99_e2e_s


class TransferReport(msgspec.Struct, frozen=True, kw_only=True):
    """Every policy simulated and served, and whether the two rankings agree."""

    policies: list[PolicyTransfer]
    kendall_tau: float
    """Kendall's tau between the simulated and the measured mean E2E over the policies (1:
    the same order; -1: reversed; NaN where it is undefined, e.g. a single policy)."""
    seed: int
    speed: float
    metrics_interval_s: float
    """The simulator's staleness option (0: exact views); the proxy scrapes at this interval
    of simulated time (or as often as it can, at 0)."""
    jitter_s: float = 0.0
    """The most simulated seconds a replicate moved an arrival (see :data:`DEFAULT_JITTER_S`)."""

    @property
    def behind(self) -> bool:
        """Whether any served run fell behind real time (its numbers are not the model's)."""
        return any(p.behind for p in self.policies)

    @property
    def same_ranking(self) -> bool:
        """Whether the simulator and the served runs order the policies the same way."""
        sim = sorted(self.policies, key=lambda p: p.sim_mean_e2e_s)
        real = sorted(self.policies, key=lambda p: p.real_mean_e2e_s)
        return [p.name for p in sim] == [p.name for p in real]


async def transfer(
    cluster: ClusterConfig,
    workload: WorkloadConfig,
    *,
    design: str | None = None,
    design_name: str = "design",
    baselines: Sequence[str] = DEFAULT_BASELINES,
    seed: int = 0,
    speed: float = 10.0,
    trust_design: bool = False,
    scrape_interval_s: float = 0.05,
    replicates: int = DEFAULT_REPLICATES,
    jitter_s: float = DEFAULT_JITTER_S,
) -> TransferReport:
    """Simulate and serve ``design`` (its source, if given) and each of ``baselines``.

    Each policy is served by fresh emulated engines (a policy never inherits another's
    queues) in scaled real time (``speed`` simulated seconds per wall second) behind the
    routing proxy, on the same trace and seed as its simulation. The proxy scrapes the
    engines every ``cluster.metrics_interval_s`` of simulated time when that is set (the
    simulator then shows the same staleness), else every ``scrape_interval_s`` wall seconds.
    The emulation is only faithful while this process keeps up with ``speed``: each policy's
    ``lag_s`` is the most its engines fell behind their model, and one flagged ``behind``
    (also logged as ``transfer_behind_real_time``) measured this machine, not the model.
    Each policy is simulated ``replicates`` times, on the trace and on copies with arrivals
    moved by up to ``jitter_s`` simulated seconds (see the module docstring), and compared by
    the replicates' average. Raises :class:`~glia.DesignError` when the design cannot be
    simulated or served.
    """
    check_speed(speed)
    if not (isinstance(replicates, int) and replicates >= 1):
        raise InputError(f"replicates is {replicates!r}: give at least 1 simulation per policy")
    if not (math.isfinite(jitter_s) and jitter_s >= 0):
        raise InputError(f"jitter_s is {jitter_s}: give simulated seconds, 0 or more")
    names = list(dict.fromkeys(baselines))
    for name in names:
        resolve_router(name)  # an unknown name fails before anything runs
    if design is None and not names:
        raise InputError("nothing to compare: give a design or at least one baseline")
    interval = cluster.metrics_interval_s
    scrape = interval / speed if interval > 0 else scrape_interval_s
    trace = build_trace(workload, seed, max_context=cluster.resolve().max_context)
    policies: list[tuple[str, str | None]] = [(n, None) for n in names]
    if design is not None:
        policies.insert(0, (design_name, design))
    traces = replicate_traces(trace, replicates, jitter_s, seed)
    out = []
    for name, source in policies:
        sims = [
            await anyio.to_thread.run_sync(
                _simulate, cluster, workload, seed, name, source, trust_design, t
            )
            for t in traces
        ]
        means = [s.summary.mean_e2e_s for s in sims]
        async with (
            emulate(cluster, speed=speed, port=0) as engines,
            serve(
                engines.urls,
                router=name if source is None else "llq",
                design=source,
                trust_design=trust_design,
                port=0,
                scrape_interval_s=scrape,
                seed=seed,
            ) as proxy,
        ):
            real = await bench(proxy.url, trace, speed=speed, seed=seed)
            lag_s = engines.lag_s()
            failed = proxy.health()["design_failure"]
            if failed:
                raise DesignError(
                    f"design {name!r} failed while serving ({failed}), so the proxy routed "
                    "with a baseline and its measurements are not the design's: fix it, "
                    "checking with `glia simulate --design`"
                )
        row = PolicyTransfer(
            name=name,
            requests=len(trace),
            completed=real.summary.num_requests,
            sim_mean_e2e_s=statistics.fmean(means),
            real_mean_e2e_s=real.summary.mean_e2e_s,
            sim_p99_e2e_s=statistics.fmean(s.summary.p99_e2e_s for s in sims),
            real_p99_e2e_s=real.summary.p99_e2e_s,
            sim_exact_mean_e2e_s=means[0],
            sim_sd_e2e_s=statistics.pstdev(means),
            replicates=len(sims),
            failures=[f"request {f.request}: {f.error}" for f in real.failures[:5]],
            lag_s=lag_s,
        )
        log.info(
            "transfer_policy", policy=name, completed=row.completed,
            sim_mean_e2e_s=row.sim_mean_e2e_s, sim_sd_e2e_s=row.sim_sd_e2e_s,
            sim_exact_mean_e2e_s=row.sim_exact_mean_e2e_s, real_mean_e2e_s=row.real_mean_e2e_s,
            lag_s=round(lag_s, 3), behind=row.behind,
        )  # fmt: skip
        if row.behind:
            log.warning(
                "transfer_behind_real_time", policy=name, lag_s=round(lag_s, 3),
                sim_mean_e2e_s=round(row.sim_mean_e2e_s, 3), speed=speed,
            )  # fmt: skip
        out.append(row)
    return TransferReport(
        policies=out,
        kendall_tau=kendall_tau([p.sim_mean_e2e_s for p in out], [p.real_mean_e2e_s for p in out]),
        seed=seed,
        speed=speed,
        metrics_interval_s=interval,
        jitter_s=jitter_s if len(traces) > 1 else 0.0,
    )


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's tau-b between two score lists (NaN where undefined: fewer than 2, or ties
    everywhere)."""
    if len(a) < 2:
        return math.nan
    return float(stats.kendalltau(a, b).statistic)


def replicate_traces(trace: Trace, replicates: int, jitter_s: float, seed: int) -> list[Trace]:
    """``trace``, then ``replicates - 1`` copies with every arrival moved later by up to
    ``jitter_s`` seconds (uniform; re-sorted, so the requests keep their order and the arrival
    times at most swap between neighbours), drawn from ``seed``. Only ``trace`` where jitter
    cannot change anything: a closed-loop trace (its arrivals follow completions) or a jitter
    of 0."""
    if replicates <= 1 or jitter_s == 0 or trace.concurrency is not None:
        return [trace]
    out = [trace]
    for k in range(1, replicates):
        rng = np.random.default_rng([seed, k])
        moved = np.sort(trace.arrived_at + rng.uniform(0.0, jitter_s, len(trace)))
        out.append(dataclasses.replace(trace, arrived_at=moved))
    return out


def _simulate(
    cluster: ClusterConfig,
    workload: WorkloadConfig,
    seed: int,
    name: str,
    source: str | None,
    trust_design: bool,
    trace: Trace,
) -> SimResult:
    if source is None:
        return run_simulation(trace, cluster, resolve_router(name), seed=seed, workload=workload)
    limits = Limits(trusted=trust_design)
    out = run_sandboxed(source, cluster, workload, seed, limits, trace=trace)
    if isinstance(out, DesignFailure):
        raise DesignError(f"design {name!r} failed in the simulator: {out.one_line()}")
    return out
