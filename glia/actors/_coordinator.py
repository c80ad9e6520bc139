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
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import msgspec
from pydantic_ai import Agent
from pydantic_ai.exceptions import UnexpectedModelBehavior, UsageLimitExceeded
from pydantic_ai.messages import ModelRequest, RetryPromptPart, ToolReturnPart
from pydantic_ai.models import Model
from pydantic_ai.usage import UsageLimits

from glia._logging import get_logger
from glia.bus import (
    AgentMessage,
    Event,
    ProviderRetry,
    RunStatus,
    Steered,
    SteerGate,
    SteerMessage,
    SteerNote,
    SteerPause,
    SteerResume,
    SteerStop,
)
from glia.experiment import experiment_config
from glia.presets import preset as get_preset
from glia.report import LogEntry, RunRecord, save_record, write_report
from glia.tasks import task_for

from ._bench import TrialBench, trial_cost
from ._checkpoint import (
    Checkpoint,
    ContextState,
    DesignConfig,
    dump_messages,
    load_messages,
    save_checkpoint,
    workspace_files,
)
from ._lab import Lab
from ._models import BudgetExhausted, Meter, MeteredModel, ProviderFailed
from ._offline import Seat, SeatedModel
from ._researcher import ResearchDeps, brief, researcher_agent
from ._supervisor import HUMAN_NOTES, ends_context, supervisor_agent
from ._validation import validate
from ._workspace import Workspace

__all__ = ["Coordinator", "new_checkpoint"]

log = get_logger("glia.coordinator")

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
        self._lock = anyio.Lock()
        self._stop = anyio.CancelScope()  # cancelled by interrupt()
        self._interrupted = ""
        # steering (see steer()): what was applied, what is paused (-1: the whole run), which
        # contexts stop at their next turn boundary, and the gate's decision
        self._applied = {m.id for m in checkpoint.steering}
        self._paused: set[int] = set()
        for m in checkpoint.steering:
            self._pause(m)
        self._stopping: set[int] = set()
        self._stopped_by = ""
        self._search = anyio.CancelScope()
        self._at_gate = False
        self._gate: SteerGate | None = None
        self._changed = anyio.Event()
        settings = self.config.settings
        self.cluster, self.workload = experiment_config(self.config.preset, **settings)
        preset = get_preset(self.config.preset)
        self.description = preset.description
        self.task = task_for(self.config.task, self.config.objective)
        self.slo, self.router = preset.slo, preset.router
        self.bench = TrialBench(
            checkpoint, run_dir, lab, setup=(self.cluster, self.workload), task=self.task,
            slo=self.slo, router=self.router, notes=self._note, events=self._emit,
        )  # fmt: skip

    # -- the run --------------------------------------------------------------------------------
    def interrupt(self, why: str) -> None:
        """Stop the run now (e.g. on a signal): whatever is running is cancelled, everything
        recorded is kept, validation is skipped and the run stays resumable."""
        self._interrupted = self._interrupted or why
        self._stop.cancel()

    async def run(self) -> RunRecord:
        """Search, validate and report; returns the final record (also in ``run.json``).

        Meanwhile the run's steering messages are applied as they come (see :meth:`steer`).
        """
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._listen)
            record = await self._run()
            tg.cancel_scope.cancel()
        return record

    async def _run(self) -> RunRecord:
        rec = self.record
        if rec.stop_kind == "interrupted" or any(c.phase != "done" for c in self.cp.contexts):
            # a new run, or a resumed one (an interrupted validation starts over)
            rec.status, rec.stop_reason, rec.stop_kind, rec.validation = "running", "", "", []
        await self._status("searching", f"{self.config.contexts} context(s), model {rec.model}")
        with self._stop:
            try:
                if not rec.baselines:
                    await self._baselines()
                with anyio.move_on_after(self.config.budget.wall_s) as wall, self._search:
                    await self._search_contexts()
                if self._stopped_by:
                    rec.status, rec.stop_kind = "stopped", "human"
                    rec.stop_reason = f"stopped by a person ({self._stopped_by})"
                elif wall.cancelled_caught:
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
        picks = [p for cs in self.cp.contexts if (p := self.bench.picked(cs.index, done))]
        best = self.bench.best(picks or done)
        rec.best_trial = best.index if best else None
        await self._checkpoint()
        if not self._interrupted:
            self._stop = anyio.CancelScope()  # a scope is entered once: a new one for this
            with self._stop:
                if self.config.gate and rec.best_trial is not None:
                    await self._wait_at_gate()
                await self._status(
                    "validating", "best design on held-out seeds and a second workload"
                )
                await validate(
                    rec, self.config, self.run_dir, self.lab, task=self.task,
                    setup=(self.cluster, self.workload), slo=self.slo,
                    policy=self.bench.policy, checkpoint=self._checkpoint,
                )  # fmt: skip
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
            [self.bench.policy(name) for name in self.task.baselines], self.cluster, self.workload,
            self.config.search_seeds, csv_dir=self.run_dir / "baselines", label="baseline",
            csv_seeds=0,
        )  # fmt: skip
        self.record.baselines = {o.policy: o.mean_e2e_s for o in outs if o.ok}
        self.record.baseline_costs = {o.policy: o.cost(self.task, self.slo) for o in outs if o.ok}
        await self._checkpoint()

    async def _search_contexts(self) -> None:
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
            seeds=[] if self.config.secret_seeds else list(self.config.search_seeds),
            previous=self._previous(cs),
            baselines=self.record.baselines if self.task.cost_is_latency
            else self.record.baseline_costs,
            task=self.task, slo=self.slo,
        )  # fmt: skip
        deps = ResearchDeps(cs.index, ws, self.bench)
        # The offline agents get their context, task and trials as values, not as prose.
        seat = Seat(
            cs.index, self.task, partial(self.bench.of_context, cs.index),
            prefix_caching=self.cluster.prefix_cache > 0,
        )  # fmt: skip
        r_model, s_model = (
            m.seated(seat) if isinstance(m, SeatedModel) else m for m in self._models
        )
        researcher = researcher_agent(self._metered(r_model, "researcher", cs.index))
        supervisor = supervisor_agent(self._metered(s_model, "supervisor", cs.index), self.task)
        if cs.turns == 0 and cs.prompt is None and cs.researcher == "[]":
            cs.prompt = (
                f"Start (context {cs.index + 1} of {len(self.cp.contexts)}): look at your "
                "workspace, then begin your research."
            )
            await self._note(cs.index, "brief", instructions)
        while cs.phase != "done":
            if not await self._boundary(cs):
                await self._commit(cs)
                continue
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
        if self.bench.used(cs) >= cs.budget:
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
        prompt = self._status_for_supervisor(cs)
        notes = list(cs.notes)
        if notes:  # people's notes reach the supervisor at its turn, in its prompt
            prompt += f"\n\n{HUMAN_NOTES}:\n" + "\n".join(f"- {n}" for n in notes)
        result = await agent.run(prompt, message_history=load_messages(cs.supervisor))
        reply = result.output
        cs.notes = cs.notes[len(notes) :]  # delivered (a note that came meanwhile waits)
        cs.supervisor = dump_messages(result.all_messages())
        await self._note(cs.index, "supervisor", reply)
        if ends_context(reply):
            cs.phase, cs.stop_reason = "done", "the supervisor ended the context"
        else:
            cs.phase, cs.prompt = "researcher", reply

    def _status_for_supervisor(self, cs: ContextState) -> str:
        mine = self.bench.of_context(cs.index)
        best = self.bench.best(mine)
        routing = self.task.cost_is_latency
        what = "mean E2E (s)" if routing else "cost"
        ref = self.record.baselines.get("llq") if routing else min(
            self.record.baseline_costs.values(), default=None)  # fmt: skip
        lines = [
            f"Report from the researcher (context {cs.index}, turn {cs.turns}):", "",
            cs.report, "",
            f"Status: {self.bench.used(cs)} of {cs.budget} simulations used in this context; "
            + (f"best {what} {trial_cost(best):.2f} (trial {best.index}); " if best else "")
            + (f"{'LLQ' if routing else 'best baseline'} {ref:.2f}." if ref else ""),
            "", f"| trial | {what} | note |", "|---|---|---|",
        ]  # fmt: skip
        for t in mine:
            value = "failed" if t.mean_e2e_s is None else f"{trial_cost(t):.2f}"
            lines.append(f"| {t.index} | {value} | {t.note or t.design_path} |")
        return "\n".join(lines)

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

    # -- steering -------------------------------------------------------------------------------
    async def _listen(self) -> None:
        """Apply the run's steering messages as they come. The bus replays them from the first;
        those the checkpoint says were applied are skipped (a resumed run applies each once)."""
        try:
            async with self.lab.client.bus.steering(self.record.run_id) as messages:
                async for msg in messages:
                    if msg.id not in self._applied:
                        await self.steer(msg)
        except Exception as e:  # e.g. a server whose permissions predate steering
            # Steering is optional: the run goes on without it, saying so once.
            log.warning("steering_unavailable", error=str(e) or type(e).__name__)
            await self._note(-1, "coordinator", f"steering is unavailable: {e!r}")

    async def steer(self, msg: SteerMessage) -> None:
        """Apply one steering message: record it (research log, checkpoint, with its origin),
        publish a :class:`~glia.bus.Steered` event, and act on it. Notes wait for their
        contexts' next supervisor turn, pauses and context stops for the next turn boundary;
        a stop of the whole run ends its search now (the best so far is validated)."""
        self._applied.add(msg.id)
        n = len(self.cp.contexts)
        ctx = -1 if msg.context is None else msg.context
        action, text = _ACTIONS[type(msg)], ""
        if isinstance(msg, SteerGate) and msg.trial is not None:
            action = "pick"
        if msg.context is not None and msg.context >= n:
            text = f"ignored: the run has no context {msg.context} (it has 0 to {n - 1})"
        elif isinstance(msg, SteerNote):
            text = msg.text
            for cs in self.cp.contexts:
                if msg.context in (None, cs.index) and cs.phase != "done":
                    cs.notes.append(f"{msg.text} (from {msg.origin})")
        elif isinstance(msg, SteerPause | SteerResume):
            self._pause(msg)
        elif isinstance(msg, SteerStop) and msg.context is not None:
            self._stopping.add(msg.context)
        elif isinstance(msg, SteerStop):
            self._stopped_by = self._stopped_by or msg.origin
            self._search.cancel()
            if self._at_gate:  # stopping at the gate validates the chosen design
                self._gate = _gate_of(msg)
        elif not self._at_gate:
            text = "ignored: no design is waiting for approval (no gate, or not there yet)"
        else:
            text, self._gate = self._check_pick(msg), msg
            if text:
                self._gate = None
            elif msg.trial is not None:
                text = f"trial {msg.trial}"
        self.cp.steering.append(msg)
        at = time.time()
        shown = f"{action} from {msg.origin}" + (f": {text}" if text else "")
        self.record.log.append(LogEntry(context=ctx, role="human", text=shown, at=at))
        await self._emit(Steered(
            run_id=self.record.run_id, context=ctx, action=action, text=text,
            origin=msg.origin, at=at,
        ))  # fmt: skip
        self._changed.set()
        self._changed = anyio.Event()
        await self._checkpoint()

    def _pause(self, msg: SteerMessage) -> None:
        ctx = -1 if msg.context is None else msg.context
        if isinstance(msg, SteerPause):
            self._paused.add(ctx)
        elif isinstance(msg, SteerResume):
            self._paused -= {-1} | {c.index for c in self.cp.contexts} if ctx == -1 else {ctx}

    async def _boundary(self, cs: ContextState) -> bool:
        """Between two turns of a context: stop it (returns False), or wait while it (or the
        run) is paused; True: go on."""
        paused = False
        while True:
            if cs.index in self._stopping:
                cs.phase, cs.stop_reason = "done", "stopped by a person"
                await self._note(cs.index, "coordinator", "context stopped by a person")
                return False
            if not {-1, cs.index} & self._paused:
                break
            if not paused:
                paused = True
                await self._status("paused", f"context {cs.index} paused until resumed")
            changed = self._changed
            await changed.wait()
        if paused:
            await self._status("searching", f"context {cs.index} resumed")
        return True

    async def _wait_at_gate(self) -> None:
        """The human gate: wait until the chosen design is approved or another trial picked."""
        rec = self.record
        self._at_gate = True
        try:
            await self._note(-1, "coordinator", (
                f"waiting at the gate: approve trial {rec.best_trial} (the chosen design) or "
                "pick another trial, from the dashboard or `glia steer RUN approve|pick N`"
            ))  # fmt: skip
            await self._status("awaiting approval", f"trial {rec.best_trial} chosen")
            while self._gate is None:
                changed = self._changed
                await changed.wait()
        finally:
            self._at_gate = False
        if self._gate.trial is not None:
            rec.best_trial = self._gate.trial
        await self._checkpoint()

    def _check_pick(self, msg: SteerGate) -> str:
        """Why trial ``msg.trial`` cannot be validated ("" if it can, or none is picked)."""
        if msg.trial is None:
            return ""
        seeds = list(self.config.search_seeds)
        t = next((t for t in self.record.trials if t.index == msg.trial), None)
        if t is None or t.seeds != seeds or t.mean_e2e_s is None:
            ok = [t.index for t in self.record.trials
                  if t.seeds == seeds and t.mean_e2e_s is not None]  # fmt: skip
            why = "does not exist" if t is None else "has no result on the search seeds"
            return f"ignored: trial {msg.trial} {why}; pick one of {', '.join(map(str, ok))}"
        return ""

    # -- budget, records, checkpoints -----------------------------------------------------------
    async def _commit(self, cs: ContextState) -> None:
        """Move the context's finished trials into the record and checkpoint."""
        done = self.bench.finished(cs.index)
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
        record = self.record
        if self.config.secret_seeds and record.finished_at is None:
            record = _without_seeds(record)  # the secret stays in the checkpoint until the end
        save_record(record, str(self.run_dir / "run.json"))
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


_ACTIONS: dict[type, str] = {
    SteerNote: "note", SteerPause: "pause", SteerResume: "resume", SteerStop: "stop",
    SteerGate: "approve",
}  # fmt: skip


def _gate_of(msg: SteerMessage) -> SteerGate:
    """The gate decision a stop at the gate stands for: approve the chosen design."""
    return SteerGate(run_id=msg.run_id, id=msg.id, origin=msg.origin, at=msg.at)


def new_checkpoint(config: DesignConfig, record: RunRecord) -> Checkpoint:
    """A fresh checkpoint: ``config.contexts`` contexts sharing the simulation budget."""
    n, k = config.budget.simulations, config.contexts
    shares = [n // k + (1 if i < n % k else 0) for i in range(k)]
    return Checkpoint(
        config=config, record=record,
        contexts=[ContextState(index=i, budget=b) for i, b in enumerate(shares)],
    )  # fmt: skip


def _without_seeds(record: RunRecord) -> RunRecord:
    """``record`` as ``run.json`` shows it while the run's seeds are secret."""
    return msgspec.structs.replace(
        record,
        search_seeds=[],
        trials=[msgspec.structs.replace(t, seeds=[]) for t in record.trials],
        validation=[msgspec.structs.replace(v, seeds=[]) for v in record.validation],
    )
