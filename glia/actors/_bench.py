"""The researcher's bench: ``run_simulation`` and the accounting of trials behind it.

Each call checks the context's budget and the design file, runs the design on the search seeds
through the lab, records the trial (pending until the context commits it), keeps the run's
best up to date, publishes a :class:`~glia.bus.TrialFinished` event and answers with a
:class:`~glia.actors._answers.SimulationAnswer`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from glia.bus import Event, TrialFinished
from glia.report import Trial
from glia.sim import ClusterConfig, WorkloadConfig
from glia.tasks import Slo, Task, slo_excess

from ._answers import SimulationAnswer
from ._checkpoint import Checkpoint, ContextState
from ._lab import Lab, Outcome, Policy
from ._workspace import Workspace, WorkspaceError

__all__ = ["TrialBench", "trial_cost"]


class TrialBench:
    """Runs simulations for the researchers of a design run and keeps its trials (see the
    module docstring); ``notes`` adds to the research log, ``events`` publishes an event."""

    def __init__(
        self,
        checkpoint: Checkpoint,
        run_dir: Path,
        lab: Lab,
        *,
        setup: tuple[ClusterConfig, WorkloadConfig],
        task: Task,
        slo: Slo | None,
        router: str,
        notes: Callable[[int, str, str], Awaitable[None]],
        events: Callable[[Event], Awaitable[None]],
    ) -> None:
        self.cp = checkpoint
        self.record = checkpoint.record
        self.run_dir = run_dir
        self.lab = lab
        self.cluster, self.workload = setup
        self.task, self.slo, self.router = task, slo, router
        self._notes, self._events = notes, events
        self.pending: dict[int, list[Trial]] = {c.index: [] for c in checkpoint.contexts}
        """Each context's trials not yet committed to the record (running ones included)."""

    def finished(self, context: int) -> list[Trial]:
        """Take the context's finished trials out of the pending ones."""
        done = [t for t in self.pending[context] if t.design_path]
        self.pending[context] = [t for t in self.pending[context] if not t.design_path]
        return done

    def policy(self, name: str, source: str | None = None) -> Policy:
        return Policy(name, source, task=self.task.name, router=self.router)

    async def run_simulation(
        self, context: int, design_path: str, note: str, seeds: list[int] | None
    ) -> SimulationAnswer:
        cs = next(c for c in self.cp.contexts if c.index == context)
        left = cs.budget - self.used(cs)
        if left <= 0:
            return SimulationAnswer(ok=False, simulations_left=0, failure=(
                "simulation budget exhausted: write your final report now"
            ))  # fmt: skip
        ws = Workspace(self.run_dir / f"ctx-{context}")
        try:
            path = ws.path(design_path)
            source = path.read_text(encoding="utf-8")
        except (WorkspaceError, OSError) as e:
            reason = e if isinstance(e, WorkspaceError) else f"cannot read {design_path!r}"
            failure = f"{reason} (not counted)"
            return SimulationAnswer(ok=False, simulations_left=left, failure=failure)
        bad = [s for s in seeds or [] if not isinstance(s, int) or s < 0]
        if bad or (seeds is not None and not 1 <= len(seeds) <= 10):
            reason = "seeds: give 1 to 10 non-negative integers (not counted)"
            return SimulationAnswer(ok=False, simulations_left=left, failure=reason)
        index = 1 + max((t.index for t in self.trials(pending=True)), default=0)
        name = f"trial-{index:03d}"
        (ws.root / "trials").mkdir(exist_ok=True)
        (ws.root / "trials" / f"{name}.py").write_text(source, encoding="utf-8")
        run_seeds = list(seeds or self.cp.config.search_seeds)
        self.pending[context].append(Trial(
            index=index, context=context, design_path="", seeds=run_seeds, note="(running)",
        ))  # fmt: skip
        # ^ a placeholder (no design_path yet), so the budget counts it while it runs
        await self._notes(context, "tool", f"run_simulation {design_path}: {note}".strip(": "))
        out = (await self.lab.evaluate(
            [self.policy(name, source)], self.cluster, self.workload, run_seeds,
            csv_dir=ws.root / "results", label=name,
        ))[0]  # fmt: skip
        trial = Trial(
            index=index, context=context, seeds=run_seeds, note=note, at=time.time(),
            design_path=str((ws.root / "trials" / f"{name}.py").relative_to(self.run_dir)),
            mean_e2e_s=out.mean_e2e_s if out.ok else None,
            cost=(cost := out.cost(self.task, self.slo)) if out.ok else None,
            score=20.0 / cost if out.ok and cost > 0 else None,
            per_seed_e2e_s=out.per_seed_e2e_s if out.ok else [],
            summary=out.summary,
            csv_paths=list(out.csv_paths),
            failure=out.failure_line() or None,
            sim_s=sum(r.summary.wall_s for r in out.results),
        )  # fmt: skip
        self.pending[context] = [t for t in self.pending[context] if t.index != index]
        self.pending[context].append(trial)
        if run_seeds == list(self.cp.config.search_seeds) and trial.mean_e2e_s is not None:
            best = self.trial(self.record.best_trial)
            if best is None or best.mean_e2e_s is None or trial_cost(trial) < trial_cost(best):
                self.record.best_trial = index
        best = self.trial(self.record.best_trial)
        left -= 1
        await self._events(TrialFinished(
            run_id=self.record.run_id, context=context, index=index,
            budget=self.cp.config.budget.simulations, mean_e2e_s=trial.mean_e2e_s,
            best_e2e_s=best.mean_e2e_s if best else None, failure=trial.failure, at=time.time(),
            cost=trial.cost, best_cost=best.cost if best else None,
        ))  # fmt: skip
        return self._answer(trial, out, ws, left)

    def _answer(self, t: Trial, out: Outcome, ws: Workspace, left: int) -> SimulationAnswer:
        failure = out.failure
        csvs = [str((self.run_dir / p).relative_to(ws.root)) for p in t.csv_paths]
        if t.mean_e2e_s is None:
            d = failure.design if failure is not None else None
            return SimulationAnswer(
                ok=False, trial=t.index, experiment=f"trial-{t.index:03d}", failure=t.failure,
                traceback=d.traceback if d else "", output=d.output if d else "",
                simulations_left=left,
            )  # fmt: skip
        s = t.summary
        assert s is not None
        llq = self.record.baselines.get("llq")
        first: dict[str, float | int | bool] = {
            "p50_e2e_s": round(s.p50_e2e_s, 3), "p99_e2e_s": round(s.p99_e2e_s, 3),
            "mean_ttft_s": round(s.mean_ttft_s, 3), "mean_tpot_s": round(s.mean_tpot_s, 4),
            "mean_sched_delay_s": round(s.mean_sched_delay_s, 3),
            "restarts": s.restarts, "requests_restarted": s.requests_restarted,
        }  # fmt: skip
        answer = SimulationAnswer(
            ok=True, trial=t.index, experiment=f"trial-{t.index:03d}",
            score=round(t.score or 0.0, 4), mean_e2e_s=round(t.mean_e2e_s, 3),
            vs_llq=round(t.mean_e2e_s / llq, 3) if llq else None,
            per_seed_mean_e2e_s=[round(x, 3) for x in t.per_seed_e2e_s],
            seeds=None if self._secret(t.seeds) else t.seeds,
            first_seed=first, csv_paths=csvs, simulations_left=left,
            prefix_caching=self.cluster.prefix_cache > 0,
            metrics_scraped=self.cluster.metrics_interval_s > 0,
        )  # fmt: skip
        if self.task.cost_is_latency or t.cost is None:
            return answer
        # The task's own objective, and (against an SLO) how close the design came to it.
        best = min(self.record.baseline_costs.values(), default=None)
        answer.cost = round(t.cost, 4)
        answer.objective = self.task.objective_text(self.slo)
        answer.vs_best_baseline = round(t.cost / best, 3) if best else None
        answer.per_seed_cost = [round(c, 4) for c in out.per_seed_cost(self.task, self.slo)]
        slo = self.slo
        if self.task.uses_slo and slo is not None:
            # How close the worst seed came to the SLO (negative: missed), so a researcher can
            # tell a design on the edge from one with room to spare.
            answer.slo_margin = round(min(
                min(1 - r.summary.p90_ttft_s / slo.p90_ttft_s,
                    1 - r.summary.p90_tpot_s / slo.p90_tpot_s)
                for r in out.results
            ), 4)  # fmt: skip
        if self.task.uses_slo:
            first |= {
                "gpu_hours": round(s.gpu_hours, 3), "mean_replicas": round(s.mean_replicas, 2),
                "p90_ttft_s": round(s.p90_ttft_s, 3), "p90_tpot_s": round(s.p90_tpot_s, 4),
                "slo_met": slo is None or slo_excess(s, slo) == 0.0,
                "scale_events": s.scale_events,
            }  # fmt: skip
        return answer

    async def publish(self, context: int, text: str) -> None:
        await self._notes(context, "researcher", text)

    def _secret(self, seeds: list[int]) -> bool:
        """Whether ``seeds`` are the run's secret search seeds (not told to the agents)."""
        return self.cp.config.secret_seeds and seeds == list(self.cp.config.search_seeds)

    def trials(self, pending: bool = False) -> list[Trial]:
        extra = [t for ts in self.pending.values() for t in ts] if pending else []
        return sorted([*self.record.trials, *extra], key=lambda t: t.index)

    def trial(self, index: int | None) -> Trial | None:
        """Trial ``index``, finished, recorded or not yet."""
        return next((t for t in self.trials(pending=True) if t.index == index), None)

    def of_context(self, context: int) -> list[Trial]:
        """The recorded trials of ``context``."""
        return [t for t in self.trials() if t.context == context]

    def used(self, cs: ContextState) -> int:
        return sum(1 for t in self.trials(pending=True) if t.context == cs.index)

    def picked(self, context: int, trials: list[Trial]) -> Trial | None:
        """The trial whose design the researcher of ``context`` saved as ``best.py`` (its
        judgement may weigh more than the lowest cost, e.g. the margin to an SLO)."""
        try:
            chosen = (self.run_dir / f"ctx-{context}" / "best.py").read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None
        mine = [t for t in trials if t.context == context]
        same = [t for t in mine if (self.run_dir / t.design_path).read_text() == chosen]
        return same[-1] if same else None

    @staticmethod
    def best(trials: list[Trial]) -> Trial | None:
        ok = [t for t in trials if t.mean_e2e_s is not None]
        return min(ok, key=lambda t: (trial_cost(t), t.index)) if ok else None


def trial_cost(t: Trial) -> float:
    """A trial's objective (runs recorded before tasks had costs: the mean E2E)."""
    value = t.cost if t.cost is not None else t.mean_e2e_s
    assert value is not None
    return value
