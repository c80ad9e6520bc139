"""Rank fidelity: does the simulator order policies as engines serving them do?

For each policy (a design and the baselines) the same workload, on the same seed, is run
twice: in the simulator, and for real through :func:`~glia.engines.emulate` (the cluster's
replicas as engines in scaled real time) behind :func:`~glia.engines.serve` (the routing
proxy running the policy, unchanged) and measured by :func:`~glia.engines.bench` from the
client's side. The report gives each policy's simulated and measured mean and p99 E2E and
whether the two orderings agree (Kendall's tau). With the engines' URLs in place of the
emulator, this is the paper's real-system experiment.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import anyio
import msgspec
import structlog
from scipy import stats

from glia._errors import DesignError, InputError
from glia.experiment import DesignFailure, Limits
from glia.policies import resolve_router
from glia.sandbox import run_sandboxed
from glia.sim import ClusterConfig, SimResult, WorkloadConfig, build_trace, simulate

from ._bench import bench
from ._emulate import emulate
from ._serve import serve

__all__ = ["MAX_LAG", "PolicyTransfer", "TransferReport", "transfer"]

log = structlog.get_logger("glia.transfer")

MAX_LAG = 0.05
"""How far the emulated engines may fall behind their model, as a share of the simulated mean
E2E, before a served run is flagged (:attr:`PolicyTransfer.behind`): lower the speed."""

DEFAULT_BASELINES = ("round-robin", "llq", "hra")
"""The baselines ``transfer`` runs beside a design (the paper's real-system comparison)."""


class PolicyTransfer(msgspec.Struct, frozen=True, kw_only=True):
    """One policy, simulated and served: its requests and E2E latencies (simulated seconds)."""

    name: str
    requests: int
    """Requests in the workload."""
    completed: int
    """Requests the served run completed (each failure is in ``failures``)."""
    sim_mean_e2e_s: float
    real_mean_e2e_s: float
    sim_p99_e2e_s: float
    real_p99_e2e_s: float
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
    Raises :class:`~glia.DesignError` when the design cannot be simulated or served.
    """
    if not (math.isfinite(speed) and speed > 0):
        raise InputError(f"speed is {speed}: give a positive factor (10: ten simulated s per s)")
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
    out = []
    for name, source in policies:
        sim = await anyio.to_thread.run_sync(
            _simulate, cluster, workload, seed, name, source, trust_design
        )
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
            sim_mean_e2e_s=sim.summary.mean_e2e_s,
            real_mean_e2e_s=real.summary.mean_e2e_s,
            sim_p99_e2e_s=sim.summary.p99_e2e_s,
            real_p99_e2e_s=real.summary.p99_e2e_s,
            failures=[f"request {f.request}: {f.error}" for f in real.failures[:5]],
            lag_s=lag_s,
        )
        log.info(
            "transfer_policy", policy=name, completed=row.completed,
            sim_mean_e2e_s=row.sim_mean_e2e_s, real_mean_e2e_s=row.real_mean_e2e_s,
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
    )


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's tau-b between two score lists (NaN where undefined: fewer than 2, or ties
    everywhere)."""
    if len(a) < 2:
        return math.nan
    return float(stats.kendalltau(a, b).statistic)


def _simulate(
    cluster: ClusterConfig,
    workload: WorkloadConfig,
    seed: int,
    name: str,
    source: str | None,
    trust_design: bool,
) -> SimResult:
    if source is None:
        return simulate(cluster, workload, seed, resolve_router(name))
    out = run_sandboxed(source, cluster, workload, seed, Limits(trusted=trust_design))
    if isinstance(out, DesignFailure):
        raise DesignError(f"design {name!r} failed in the simulator: {out.one_line()}")
    return out
