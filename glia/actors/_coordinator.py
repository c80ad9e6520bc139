"""The coordinator: runs a design run's research contexts, budgets, checkpoints and validation.

Single-context Glia is one researcher and one supervisor taking turns; multi-context Glia runs
``contexts`` of them, in parallel (best of K) or in sequence (each starting from the best design
so far and the previous context's final report), sharing the simulation budget. After the
search, the best design is re-evaluated on held-out seeds and on a second workload next to every
baseline, and the report is written. Every step is checkpointed (see :mod:`._checkpoint`).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import structlog
from pydantic_ai import Agent
from pydantic_ai.exceptions import UnexpectedModelBehavior, UsageLimitExceeded
from pydantic_ai.messages import ModelRequest, RetryPromptPart, ToolReturnPart
from pydantic_ai.models import Model
from pydantic_ai.usage import UsageLimits

from glia.bus import AgentMessage, Event, ProviderRetry, RunStatus, TrialFinished
from glia.experiment import experiment_config
from glia.presets import SECOND_WORKLOAD
from glia.presets import preset as get_preset
from glia.report import LogEntry, RunRecord, Trial, Validation, save_record, write_report
from glia.tasks import resolve_task, slo_excess

from ._answers import SimulationAnswer
from ._checkpoint import (
    Checkpoint,
    ContextState,
    DesignConfig,
    dump_messages,
    load_messages,
    save_checkpoint,
    workspace_files,
)
from ._lab import Lab, Outcome, Policy
from ._models import BudgetExhausted, Meter, MeteredModel, ProviderFailed
from ._researcher import ResearchDeps, brief, researcher_agent
from ._supervisor import ends_context, supervisor_agent
from ._workspace import Workspace, WorkspaceError

__all__ = ["Coordinator", "new_checkpoint"]

log = structlog.get_logger("glia.coordinator")

MAX_REQUESTS_PER_TURN = 80
"""Model requests a researcher turn may make (a model that never stops gets cut off)."""


class Coordinator:
    """Runs one design run to its end (or its budget), from scratch or from a checkpoint."""

    def __init__(
        self,
        checkpoint: Checkpoint,
        run_dir: Path,
        lab: Lab,
        publish: Callable[[Event], Any],
        *,
        researcher: Model,
        supervisor: Model,
    ) -> None:
        self.cp = checkpoint
        self.config = checkpoint.config
        self.record = checkpoint.record
        self.run_dir = run_dir
        self.lab = lab
        self._publish = publish
        self.meter = Meter(self.config.budget, {u.model: u for u in self.record.usage})
        self._models = (researcher, supervisor)
        self._pending: dict[int, list[Trial]] = {c.index: [] for c in checkpoint.contexts}
        self._lock = anyio.Lock()
        self._stop = anyio.CancelScope()  # cancelled by interrupt()
        self._interrupted = ""
        settings = self.config.settings
        self.cluster, self.workload = experiment_config(self.config.preset, **settings)
        preset = get_preset(self.config.preset)
        self.description = preset.description
        self.task = resolve_task(self.config.task)
        self.slo, self.router = preset.slo, preset.router

    # -- the run --------------------------------------------------------------------------------
    def interrupt(self, why: str) -> None:
        """Stop the run now (e.g. on a signal): whatever is running is cancelled, everything
        recorded is kept, validation is skipped and the run stays resumable."""
        self._interrupted = self._interrupted or why
        self._stop.cancel()

    async def run(self) -> RunRecord:
        """Search, validate and report; returns the final record (also in ``run.json``)."""
        rec = self.record
        if rec.stop_kind == "interrupted" or any(c.phase != "done" for c in self.cp.contexts):
            # a new run, or a resumed one (an interrupted validation starts over)
            rec.status, rec.stop_reason, rec.stop_kind, rec.validation = "running", "", "", []
        await self._status("searching", f"{self.config.contexts} context(s), model {rec.model}")
        with self._stop:
            try:
                if not rec.baselines:
                    await self._baselines()
                with anyio.move_on_after(self.config.budget.wall_s) as wall:
                    await self._search()
                if wall.cancelled_caught:
                    rec.status, rec.stop_reason = "stopped", "wall-clock budget reached"
                    rec.stop_kind = "budget"
            except* (ProviderFailed, BudgetExhausted) as group:
                err = group.exceptions[0]
                kind = "provider failed" if isinstance(err, ProviderFailed) else "budget"
                rec.status, rec.stop_reason = "stopped", f"{kind}: {err}"
                rec.stop_kind = "provider" if isinstance(err, ProviderFailed) else "budget"
                await self._note(-1, "coordinator", f"run stopped: {rec.stop_reason}")
        if rec.status == "running" and not self._interrupted:
            rec.stop_reason = rec.stop_reason or "search finished"
            rec.stop_kind = "finished"
            misbehaved = [c for c in self.cp.contexts if c.stop_reason.startswith("model misb")]
            if misbehaved:  # the search did not end by itself in these contexts
                rec.stop_kind = "model"
                rec.stop_reason = "; ".join(
                    f"context {c.index} ended: {c.stop_reason}" for c in misbehaved
                )
        # The best among recorded trials (a stop may have cancelled one that was not recorded):
        # each context's own pick if its researcher saved one as best.py, else its lowest cost.
        seeds = list(self.config.search_seeds)
        done = [t for t in rec.trials if t.seeds == seeds and t.mean_e2e_s is not None]
        picks = [p for cs in self.cp.contexts if (p := self._picked(cs.index, done))]
        best = self._best(picks or done)
        rec.best_trial = best.index if best else None
        await self._checkpoint()
        if not self._interrupted:
            self._stop = anyio.CancelScope()  # a scope is entered once: a new one for this
            await self._status("validating", "best design on held-out seeds and a second workload")
            with self._stop:
                await self._validate()
        if self._interrupted:
            rec.status, rec.stop_kind = "interrupted", "interrupted"
            rec.stop_reason = f"{self._interrupted}; resume to finish it"
            await self._note(-1, "coordinator", f"run interrupted: {self._interrupted}")
        rec.status = "finished" if rec.status == "running" else rec.status
        rec.finished_at = time.time()
        rec.report_path = "report.md"
        with anyio.CancelScope(shield=True):  # a second interruption must not lose the record
            await self._checkpoint()  # the report is made from run.json
            report = await anyio.to_thread.run_sync(write_report, self.run_dir)
            rec.report_path = str(report.relative_to(self.run_dir))
            await self._checkpoint()
            await self._status(rec.status, rec.stop_reason)
        return rec

    async def _baselines(self) -> None:
        outs = await self.lab.evaluate(
            [self._policy(name) for name in self.task.baselines], self.cluster, self.workload,
            self.config.search_seeds, csv_dir=self.run_dir / "baselines", label="baseline",
            csv_seeds=0,
        )  # fmt: skip
        self.record.baselines = {o.policy: o.mean_e2e_s for o in outs if o.ok}
        self.record.baseline_costs = {o.policy: o.cost(self.task, self.slo) for o in outs if o.ok}
        await self._checkpoint()

    async def _search(self) -> None:
        todo = [c for c in self.cp.contexts if c.phase != "done"]
        if self.config.sequential:
            for cs in todo:
                await self._context(cs)
            return
        async with anyio.create_task_group() as tg:
            for cs in todo:
                tg.start_soon(self._context, cs)

    # -- one context ----------------------------------------------------------------------------
    async def _context(self, cs: ContextState) -> None:
        ws = self._workspace(cs)
        instructions = brief(
            preset=self.config.preset, description=self.description, budget=cs.budget,
            seeds=list(self.config.search_seeds), previous=self._previous(cs),
            baselines=self.record.baselines if self.task.cost_is_latency
            else self.record.baseline_costs,
            task=self.task, slo=self.slo,
        )  # fmt: skip
        deps = ResearchDeps(cs.index, ws, self)
        researcher = researcher_agent(self._metered(self._models[0], "researcher", cs.index))
        supervisor = supervisor_agent(
            self._metered(self._models[1], "supervisor", cs.index), self.task
        )
        if cs.turns == 0 and cs.prompt is None and cs.researcher == "[]":
            cs.prompt = (
                f"Start (context {cs.index + 1} of {len(self.cp.contexts)}): look at your "
                "workspace, then begin your research."
            )
            await self._note(cs.index, "brief", instructions)
        while cs.phase != "done":
            try:
                if cs.phase == "researcher":
                    await self._researcher_turn(cs, researcher, deps, instructions)
                else:
                    await self._supervisor_turn(cs, supervisor)
            except (UsageLimitExceeded, UnexpectedModelBehavior) as e:
                cs.phase, cs.stop_reason = "done", f"model misbehaved: {e}"
                await self._note(cs.index, "coordinator", f"context ended: {cs.stop_reason}")
            await self._commit(cs)

    async def _researcher_turn(
        self, cs: ContextState, agent: Agent[ResearchDeps, str], deps: ResearchDeps, ins: str
    ) -> None:
        history = load_messages(cs.researcher)
        async with agent.iter(
            cs.prompt, message_history=history, deps=deps, instructions=ins,
            usage_limits=UsageLimits(request_limit=MAX_REQUESTS_PER_TURN),
        ) as run:  # fmt: skip
            async for node in run:
                if Agent.is_model_request_node(node):
                    await self._malformed(cs, node.request)
                    # Between two model requests the conversation and the record agree.
                    cs.researcher = dump_messages([*run.all_messages(), node.request])
                    cs.prompt = None
                    await self._commit(cs)
            assert run.result is not None
            report = run.result.output
            cs.researcher = dump_messages(run.all_messages())
        cs.turns += 1
        cs.report = report
        await self._note(cs.index, "researcher", report)
        if self._used(cs) >= cs.budget:
            cs.phase, cs.stop_reason = "done", "simulation budget used"
        elif cs.turns >= cs.budget + 5:
            cs.phase, cs.stop_reason = "done", f"{cs.turns} turns"
        else:
            cs.phase = "supervisor"

    async def _malformed(self, cs: ContextState, request: ModelRequest) -> None:
        """Show tool calls the model got wrong (sent back to it to fix) in the event stream."""
        for part in request.parts:
            if isinstance(part, ToolReturnPart | RetryPromptPart) and (
                isinstance(part, RetryPromptPart) or part.outcome == "retried"
            ):
                await self._emit(ProviderRetry(
                    run_id=self.record.run_id, context=cs.index, model="researcher", attempt=1,
                    wait_s=0.0, error=f"malformed call of {part.tool_name}: sent back to the model",
                    at=time.time(),
                ))  # fmt: skip

    async def _supervisor_turn(self, cs: ContextState, agent: Agent[None, str]) -> None:
        result = await agent.run(
            self._status_for_supervisor(cs), message_history=load_messages(cs.supervisor)
        )
        reply = result.output
        cs.supervisor = dump_messages(result.all_messages())
        await self._note(cs.index, "supervisor", reply)
        if ends_context(reply):
            cs.phase, cs.stop_reason = "done", "the supervisor ended the context"
        else:
            cs.phase, cs.prompt = "researcher", reply

    def _status_for_supervisor(self, cs: ContextState) -> str:
        mine = [t for t in self._trials() if t.context == cs.index]
        best = self._best(mine)
        routing = self.task.cost_is_latency
        what = "mean E2E (s)" if routing else "cost"
        ref = self.record.baselines.get("llq") if routing else min(
            self.record.baseline_costs.values(), default=None)  # fmt: skip
        lines = [
            f"Report from the researcher (context {cs.index}, turn {cs.turns}):", "",
            cs.report, "",
            f"Status: {self._used(cs)} of {cs.budget} simulations used in this context; "
            + (f"best {what} {_cost(best):.2f} (trial {best.index}); " if best else "")
            + (f"{'LLQ' if routing else 'best baseline'} {ref:.2f}." if ref else ""),
            "", f"| trial | {what} | note |", "|---|---|---|",
        ]  # fmt: skip
        for t in mine:
            value = "failed" if t.mean_e2e_s is None else f"{_cost(t):.2f}"
            lines.append(f"| {t.index} | {value} | {t.note or t.design_path} |")
        return "\n".join(lines)

    def _policy(self, name: str, source: str | None = None) -> Policy:
        return Policy(name, source, task=self.task.name, router=self.router)

    def _workspace(self, cs: ContextState) -> Workspace:
        ws = Workspace(self.run_dir / f"ctx-{cs.index}")
        example, source = self.task.example
        if not (ws.root / example).exists():
            ws.write(example, source)
            best = self.record.best
            if self.config.sequential and best is not None:
                shutil.copyfile(self.run_dir / best.design_path, ws.root / "previous_best.py")
                prev = next(c for c in self.cp.contexts if c.index == cs.index - 1)
                ws.write("previous_notes.md", prev.report)
        return ws

    def _previous(self, cs: ContextState) -> str:
        if not (self.run_dir / f"ctx-{cs.index}" / "previous_best.py").exists():
            return ""
        return (
            "\n\nYou continue earlier research: `previous_best.py` is the best design found so "
            "far and `previous_notes.md` the previous researcher's final report. Start from them."
        )

    def _metered(self, model: Model, role: str, context: int) -> MeteredModel:
        async def on_retry(attempt: int, wait: float, error: str) -> None:
            await self._emit(ProviderRetry(
                run_id=self.record.run_id, context=context, model=role, attempt=attempt,
                wait_s=wait, error=error, at=time.time(),
            ))  # fmt: skip
            log.warning("provider_retry", role=role, attempt=attempt, wait_s=wait, error=error)

        label = (
            f"{role}:{self.record.model if role == 'researcher' else self.record.supervisor_model}"
        )
        return MeteredModel(model, label=label, meter=self.meter, on_retry=on_retry)

    # -- the researcher's bench (see glia.actors._researcher.Bench) -----------------------------
    async def run_simulation(
        self, context: int, design_path: str, note: str, seeds: list[int] | None
    ) -> SimulationAnswer:
        cs = next(c for c in self.cp.contexts if c.index == context)
        left = cs.budget - self._used(cs)
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
        index = 1 + max((t.index for t in self._trials(pending=True)), default=0)
        name = f"trial-{index:03d}"
        (ws.root / "trials").mkdir(exist_ok=True)
        (ws.root / "trials" / f"{name}.py").write_text(source, encoding="utf-8")
        run_seeds = list(seeds or self.config.search_seeds)
        self._pending[context].append(Trial(
            index=index, context=context, design_path="", seeds=run_seeds, note="(running)",
        ))  # fmt: skip
        # ^ a placeholder (no design_path yet), so the budget counts it while it runs
        await self._note(context, "tool", f"run_simulation {design_path}: {note}".strip(": "))
        out = (await self.lab.evaluate(
            [self._policy(name, source)], self.cluster, self.workload, run_seeds,
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
        )  # fmt: skip
        self._pending[context] = [t for t in self._pending[context] if t.index != index]
        self._pending[context].append(trial)
        if run_seeds == list(self.config.search_seeds) and trial.mean_e2e_s is not None:
            best = self._trial(self.record.best_trial)
            if best is None or best.mean_e2e_s is None or _cost(trial) < _cost(best):
                self.record.best_trial = index
        best = self._trial(self.record.best_trial)
        left -= 1
        await self._emit(TrialFinished(
            run_id=self.record.run_id, context=context, index=index,
            budget=self.config.budget.simulations, mean_e2e_s=trial.mean_e2e_s,
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
            per_seed_mean_e2e_s=[round(x, 3) for x in t.per_seed_e2e_s], seeds=t.seeds,
            first_seed=first, csv_paths=csvs, simulations_left=left,
            prefix_caching=self.cluster.prefix_cache > 0,
        )  # fmt: skip
        if self.task.cost_is_latency or t.cost is None:
            return answer
        # The task's own objective, and (against an SLO) how close the design came to it.
        best = min(self.record.baseline_costs.values(), default=None)
        answer.cost = round(t.cost, 4)
        answer.objective = self.task.objective_text(self.slo)
        answer.vs_best_baseline = round(t.cost / best, 3) if best else None
        answer.per_seed_cost = [round(c, 4) for c in out.per_seed_cost(self.task, self.slo)]
        if self.task.uses_slo and self.slo is not None:
            slo = self.slo
            answer.slo_margin = round(min(
                min(1 - r.summary.p90_ttft_s / slo.p90_ttft_s,
                    1 - r.summary.p90_tpot_s / slo.p90_tpot_s)
                for r in out.results
            ), 4)  # fmt: skip
            first |= {
                "gpu_hours": round(s.gpu_hours, 3), "mean_replicas": round(s.mean_replicas, 2),
                "p90_ttft_s": round(s.p90_ttft_s, 3), "p90_tpot_s": round(s.p90_tpot_s, 4),
                "slo_met": slo_excess(s, slo) == 0.0, "scale_events": s.scale_events,
            }  # fmt: skip
        return answer

    async def publish(self, context: int, text: str) -> None:
        await self._note(context, "researcher", text)

    # -- budget, records, checkpoints -----------------------------------------------------------
    def _trials(self, pending: bool = False) -> list[Trial]:
        extra = [t for ts in self._pending.values() for t in ts] if pending else []
        return sorted([*self.record.trials, *extra], key=lambda t: t.index)

    def _trial(self, index: int | None) -> Trial | None:
        """Trial ``index``, finished, recorded or not yet."""
        return next((t for t in self._trials(pending=True) if t.index == index), None)

    def _used(self, cs: ContextState) -> int:
        return sum(1 for t in self._trials(pending=True) if t.context == cs.index)

    def _picked(self, context: int, trials: list[Trial]) -> Trial | None:
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
    def _best(trials: list[Trial]) -> Trial | None:
        ok = [t for t in trials if t.mean_e2e_s is not None]
        return min(ok, key=lambda t: (_cost(t), t.index)) if ok else None

    async def _commit(self, cs: ContextState) -> None:
        """Move the context's finished trials into the record and checkpoint."""
        done = [t for t in self._pending[cs.index] if t.design_path]
        self._pending[cs.index] = [t for t in self._pending[cs.index] if not t.design_path]
        self.record.trials = sorted([*self.record.trials, *done], key=lambda t: t.index)
        await self._checkpoint()

    async def _checkpoint(self) -> None:
        async with self._lock:
            self.record.usage = list(self.meter.usage.values())
            # Disk work (an fsync, a re-read of the workspaces) runs off the event loop, which
            # a local worker shares: its heartbeats and in-progress acks must not stall.
            data = await anyio.to_thread.run_sync(self._save)
            await self.lab.client.bus.save_checkpoint(self.record.run_id, data)

    def _save(self) -> bytes:
        save_record(self.record, str(self.run_dir / "run.json"))
        self.cp.files = workspace_files(self.run_dir)
        return save_checkpoint(self.cp, self.run_dir)

    async def _note(self, context: int, role: Any, text: str) -> None:
        at = time.time()
        self.record.log.append(LogEntry(context=context, role=role, text=text, at=at))
        await self._emit(AgentMessage(
            run_id=self.record.run_id, context=context, role=role, text=text, at=at
        ))  # fmt: skip

    async def _status(self, status: str, message: str) -> None:
        await self._emit(RunStatus(
            run_id=self.record.run_id, status=status, message=message,
            cost_usd=self.meter.cost_usd, tokens=self.meter.tokens, at=time.time(),
        ))  # fmt: skip

    async def _emit(self, event: Event) -> None:
        await self._publish(event)

    # -- validation -----------------------------------------------------------------------------
    async def _validate(self) -> None:
        best = self.record.best
        if best is None or self.record.validation:
            return
        source = (self.run_dir / best.design_path).read_text(encoding="utf-8")
        policies = [self._policy("design", source), *map(self._policy, self.task.baselines)]
        second = self.config.second_workload or SECOND_WORKLOAD.get(self.config.preset)
        setups = [(self.config.preset, self.description, self.workload)]
        if second and second != self.config.preset:
            _, w = experiment_config(second, **self.config.settings)
            setups.append((second, get_preset(second).description, w))
        for name, desc, workload in setups:
            outs = await self.lab.evaluate(
                policies, self.cluster, workload, self.config.holdout_seeds,
                csv_dir=self.run_dir / "validation" / name, label=f"validate-{name}",
                csv_seeds=1,
            )  # fmt: skip
            self.record.validation.append(Validation(
                workload=name, description=desc, seeds=list(self.config.holdout_seeds),
                mean_e2e_s={o.policy: o.mean_e2e_s for o in outs if o.ok},
                p99_e2e_s={o.policy: o.mean_p99_e2e_s for o in outs if o.ok},
                cost={o.policy: o.cost(self.task, get_preset(name).slo or self.slo)
                      for o in outs if o.ok},
                csv_paths={o.policy: o.csv_paths[0] for o in outs if o.ok and o.csv_paths},
                failure=outs[0].failure_line() or None,
            ))  # fmt: skip
            await self._checkpoint()


def _cost(t: Trial) -> float:
    """A trial's objective (runs recorded before tasks had costs: the mean E2E)."""
    value = t.cost if t.cost is not None else t.mean_e2e_s
    assert value is not None
    return value


def new_checkpoint(config: DesignConfig, record: RunRecord) -> Checkpoint:
    """A fresh checkpoint: ``config.contexts`` contexts sharing the simulation budget."""
    n, k = config.budget.simulations, config.contexts
    shares = [n // k + (1 if i < n % k else 0) for i in range(k)]
    return Checkpoint(
        config=config, record=record,
        contexts=[ContextState(index=i, budget=b) for i, b in enumerate(shares)],
    )  # fmt: skip
