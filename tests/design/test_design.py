"""Design runs: the coordinator, researcher and supervisor on a real NATS server and workers.

Scripted researchers and supervisors are pydantic-ai ``FunctionModel`` s, plugged in where a
model name would go; the run itself (tools, bus, workers, checkpoints, validation, report) is
the real one. Workloads are cut to a minute of arrivals to keep the tests quick.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from pydantic_ai.exceptions import ModelHTTPError
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

from glia._client import Client
from glia._design import DesignRun, design_async
from glia.bus import (
    Event,
    ExperimentFinished,
    ExperimentStarted,
    NatsBus,
    ProviderRetry,
    nats_server,
)
from glia.policies._mechanisms import Mechanisms, compose
from glia.report import Budget
from glia.runtime import SimWorker, local_cluster, supervise
from glia.sandbox import check_design

pytestmark = pytest.mark.anyio

SMALL = {"duration_s": 60.0}
LLQ = compose(Mechanisms(), name="Mine")


@asynccontextmanager
async def cluster(tmp_path: Path) -> AsyncIterator[Client]:
    async with local_cluster(workers=2, store_dir=str(tmp_path / "nats")) as c:
        yield c


def fake(name: str, fn: Callable[[list[ModelMessage], AgentInfo], ModelResponse]) -> FunctionModel:
    return FunctionModel(fn, model_name=name)


async def small_run(tmp_path: Path, client: Client, **kw: Any) -> DesignRun:
    args: dict[str, Any] = {
        "out": tmp_path / "runs", "search_seeds": (0,), "holdout_seeds": (100,),
        "settings": SMALL, "client": client,
    }  # fmt: skip
    return await design_async(**(args | kw))


def tool_returns(messages: list[ModelMessage]) -> list[ToolReturnPart]:
    return [p for m in messages if isinstance(m, ModelRequest) for p in m.parts
            if isinstance(p, ToolReturnPart)]  # fmt: skip


def user_prompts(messages: list[ModelMessage]) -> list[str]:
    return [p.content for m in messages if isinstance(m, ModelRequest) for p in m.parts
            if isinstance(p, UserPromptPart) and isinstance(p.content, str)]  # fmt: skip


def scripted_researcher(sims_per_turn: int = 1) -> Callable[..., ModelResponse]:
    """Writes a design, simulates it ``sims_per_turn`` times a turn, reports; stops when told
    the budget is exhausted."""

    def fn(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        returns = tool_returns(messages)
        if not returns:
            return ModelResponse(
                parts=[ToolCallPart("write_file", {"path": "d.py", "content": LLQ})]
            )
        last = returns[-1].content
        if isinstance(last, dict) and last.get("simulations_left") == 0:
            return ModelResponse(parts=[TextPart("final: d.py is my best")])
        prompts = len(user_prompts(messages))
        sims = sum(1 for r in returns if r.tool_name == "run_simulation")
        if sims < prompts * sims_per_turn:
            return ModelResponse(parts=[ToolCallPart("run_simulation", {"design_path": "d.py"})])
        return ModelResponse(parts=[TextPart(f"report after {sims} simulations")])

    return fn


# -- the offline designer -----------------------------------------------------------------------
async def test_the_offline_designer_runs_end_to_end(tmp_path: Path) -> None:
    events: list[Event] = []
    async with cluster(tmp_path) as c:
        run = await small_run(tmp_path, c, budget=4, on_event=events.append)
    rec = run.record
    assert rec.status == "finished" and len(rec.trials) == 4
    assert [t.index for t in rec.trials] == [1, 2, 3, 4]
    assert all(t.mean_e2e_s is not None for t in rec.trials)
    best = run.best_design_path
    assert best is not None and check_design(best.read_text()) == "Design" + best.stem[-1]
    assert rec.best is not None
    assert rec.best.mean_e2e_s == min(t.mean_e2e_s for t in rec.trials if t.mean_e2e_s)
    assert [v.workload for v in rec.validation] == ["glia-routing", "azure-conv"]
    assert set(rec.validation[0].mean_e2e_s) == {"design", *run.baselines}
    summary = run.summary()
    assert set(summary) >= {"run_id", "best_design_path", "best_mean_e2e_s", "baselines",
                            "simulations_used", "cost_usd", "report_path"}  # fmt: skip
    assert summary["cost_usd"] == 0.0 and summary["simulations_used"] == 4
    report = (run.run_dir / "report.md").read_text()
    assert "offline (deterministic non-LLM designer)" in report
    roles = {e.role for e in rec.log}
    assert {"brief", "researcher", "supervisor", "tool"} <= roles
    assert sum(1 for e in events if type(e).__name__ == "TrialFinished") == 4


@pytest.mark.slow
async def test_the_offline_designer_finds_an_hra_class_router(tmp_path: Path) -> None:
    """The must-show, on fewer seeds than `glia design` uses (benchmarks/ has the full run)."""
    async with cluster(tmp_path) as c:
        run = await design_async(
            out=tmp_path / "runs", budget=6, client=c,
            search_seeds=(0, 1, 2), holdout_seeds=(100, 101), second_workload="glia-routing",
        )  # fmt: skip
    assert run.best_mean_e2e_s is not None
    assert run.best_mean_e2e_s <= 0.6 * run.baselines["llq"]


# -- scripted agents ----------------------------------------------------------------------------
async def test_the_supervisor_sees_each_report_and_can_end_the_context(tmp_path: Path) -> None:
    seen: list[tuple[str, int]] = []

    def supervisor(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        seen.append((user_prompts(messages)[-1], len(info.function_tools)))
        if len(seen) == 1:
            return ModelResponse(parts=[TextPart("Why did it work? Try again.")])
        return ModelResponse(parts=[TextPart("Enough.\nEND CONTEXT")])

    async with cluster(tmp_path) as c:
        run = await small_run(tmp_path, c, budget=10, model=fake("fake-r", scripted_researcher()),
                              supervisor_model=fake("fake-s", supervisor))  # fmt: skip
    assert len(seen) == 2 and all(tools == 0 for _, tools in seen)  # no tools, ever
    first = seen[0][0]
    assert "report after 1 simulations" in first and "| 1 |" in first
    assert "1 of 10 simulations used" in first
    assert "| 2 |" in seen[1][0]  # the second report recalls both trials
    rec = run.record
    assert len(rec.trials) == 2 and rec.status == "finished"
    replies = [e.text for e in rec.log if e.role == "supervisor"]
    assert replies == ["Why did it work? Try again.", "Enough.\nEND CONTEXT"]


async def test_the_simulation_budget_stops_the_context(tmp_path: Path) -> None:
    async with cluster(tmp_path) as c:
        run = await small_run(tmp_path, c, model=fake("fake-r", scripted_researcher(100)),
                              supervisor_model="offline", budget=3)  # fmt: skip
    assert [t.index for t in run.record.trials] == [1, 2, 3]
    assert any(e.text == "final: d.py is my best" for e in run.record.log)
    assert run.simulations_used == 3


async def test_a_token_budget_stops_the_run_and_keeps_its_results(tmp_path: Path) -> None:
    async with cluster(tmp_path) as c:
        run = await small_run(
            tmp_path, c, model=fake("fake-r", scripted_researcher(100)),
            supervisor_model="offline", budget=Budget(simulations=50, tokens=1500),
        )  # fmt: skip
    rec = run.record
    assert rec.status == "stopped"
    assert rec.stop_reason.startswith("budget: token budget reached")
    assert 1 <= len(rec.trials) < 50
    assert rec.validation and (run.run_dir / "report.md").exists()


async def test_the_wall_clock_budget_stops_the_search(tmp_path: Path) -> None:
    steps = scripted_researcher(100)

    async def slow(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        await anyio.sleep(0.3)  # a slow model: the clock, not the simulations, runs out
        return steps(messages, info)

    async with cluster(tmp_path) as c:
        run = await small_run(
            tmp_path, c, model=FunctionModel(slow, model_name="slow"),
            supervisor_model="offline", budget=Budget(simulations=500, wall_s=4.0),
        )  # fmt: skip
    rec = run.record
    assert (rec.status, rec.stop_reason) == ("stopped", "wall-clock budget reached")
    assert 1 <= len(rec.trials) < 500 and rec.validation  # what it found is still validated


def failing(times: int, then: Callable[..., ModelResponse]) -> Callable[..., ModelResponse]:
    calls = {"n": 0}

    def fn(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        calls["n"] += 1
        if calls["n"] <= times:
            raise ModelHTTPError(503, "fake-r", {"message": "overloaded"}, retry_after=0.01)
        return then(messages, info)

    return fn


async def test_provider_errors_are_retried_and_shown_as_events(tmp_path: Path) -> None:
    events: list[Event] = []
    async with cluster(tmp_path) as c:
        run = await small_run(
            tmp_path, c, model=fake("fake-r", failing(2, scripted_researcher())),
            supervisor_model="offline", budget=1, on_event=events.append,
        )  # fmt: skip
    retries = [e for e in events if isinstance(e, ProviderRetry)]
    assert [(r.attempt, r.error) for r in retries] == [(1, "HTTP 503"), (2, "HTTP 503")]
    assert run.record.status == "finished" and len(run.record.trials) == 1


async def test_a_dead_provider_ends_the_run_cleanly_with_everything_saved(tmp_path: Path) -> None:
    async with cluster(tmp_path) as c:
        run = await small_run(
            tmp_path, c, budget=5, model=fake("fake-r", failing(3, scripted_researcher())),
            supervisor_model=fake("fake-s", failing(100, scripted_researcher())),
        )  # fmt: skip
    rec = run.record
    assert rec.status == "stopped"
    assert rec.stop_reason == (
        "provider failed: supervisor:fake-s: still failing after 5 attempts (HTTP 503)"
    )
    assert len(rec.trials) == 1 and rec.trials[0].mean_e2e_s is not None  # kept
    saved = json.loads((run.run_dir / "run.json").read_text())
    assert saved["status"] == "stopped" and len(saved["trials"]) == 1
    assert (run.run_dir / "report.md").exists() and rec.validation


# -- resume ---------------------------------------------------------------------------------------
CHILD = """
import sys
from glia._design import design
if __name__ == "__main__":  # worker processes import this module too
    design(out=sys.argv[1], budget=6, search_seeds=(0,), holdout_seeds=(100,),
           settings={"duration_s": 60.0}, workers=1)
"""


@pytest.mark.slow
async def test_a_killed_coordinator_resumes_without_losing_or_repeating_work(
    tmp_path: Path,
) -> None:
    out = tmp_path / "runs"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    proc = subprocess.Popen([sys.executable, str(script), str(out)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            runs = list(out.glob("*/checkpoint.json"))
            if runs and len(json.loads(runs[0].read_text())["record"]["trials"]) >= 3:
                break
            assert proc.poll() is None, "the run ended before it could be killed"
            await anyio.sleep(0.2)
        else:
            pytest.fail("the run made no progress")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the coordinator, its server and its workers
        proc.wait(30)
    run_dir = runs[0].parent
    before = json.loads((run_dir / "checkpoint.json").read_text())["record"]["trials"]

    run = await design_async(resume=str(run_dir), workers=1)
    rec = run.record
    assert rec.status == "finished"
    assert [t.index for t in rec.trials] == list(range(1, len(rec.trials) + 1))
    assert len(before) <= len(rec.trials) <= 6  # (a light workload may converge before 6)
    for old, new in zip(before, rec.trials, strict=False):
        assert (old["design_path"], old["mean_e2e_s"]) == (new.design_path, new.mean_e2e_s)
    async with local_cluster(workers=1, store_dir=str(run_dir / "nats")) as c:
        ran: dict[str, int] = {}
        async with c.events(rec.run_id) as evs:
            with anyio.move_on_after(3):
                async for ev in evs:
                    if isinstance(ev, ExperimentFinished) and not ev.cached:
                        ran[ev.key] = ran.get(ev.key, 0) + 1
    assert ran and max(ran.values()) == 1  # no experiment was simulated twice


async def test_a_run_resumes_from_the_bus_alone(tmp_path: Path) -> None:
    """The checkpoint in the KV bucket carries the workspaces' designs and notes, so a run
    can be continued on another machine that only shares the NATS server."""
    async with cluster(tmp_path) as c:
        run = await small_run(tmp_path, c, budget=2)
        assert run.best_design_path is not None
        best = run.best_design_path.read_text()
        shutil.rmtree(run.run_dir)
        again = await design_async(resume=run.run_id, out=tmp_path / "runs", client=c)
    assert again.run_dir == run.run_dir and again.record.trials == run.record.trials
    assert again.best_design_path is not None and again.best_design_path.read_text() == best
    assert (again.run_dir / "report.md").exists()


# -- multi-context ------------------------------------------------------------------------------
async def test_parallel_contexts_share_the_budget_and_run_side_by_side_on_both_workers(
    tmp_path: Path,
) -> None:
    async with (
        nats_server(store_dir=tmp_path / "js") as server,
        NatsBus.connect(server.url) as bus,
        anyio.create_task_group() as tg,
    ):
        a, b = (SimWorker(bus, name=n, concurrency=1) for n in ("worker-a", "worker-b"))
        await tg.start(lambda task_status: supervise([a, b], task_status=task_status,
                                                     handle_signals=False))  # fmt: skip
        run = await small_run(tmp_path, Client(bus), budget=4, contexts=2)
        a.drain()
        b.drain()
        events: list[Event] = []
        async with bus.events(run.run_id) as evs:
            with anyio.move_on_after(2):
                async for ev in evs:
                    events.append(ev)
    per_context = [sum(1 for t in run.record.trials if t.context == k) for k in (0, 1)]
    assert per_context == [2, 2]
    assert {e.worker for e in events if isinstance(e, ExperimentStarted)} == {
        "worker-a", "worker-b"
    }  # fmt: skip
    # The contexts explored different designs (their first trials are the same example; the
    # second one's is then answered from the cache) and worked side by side: the second context
    # was at work before the first one's last entry in the research log. (Whether two of their
    # simulations overlap in time is up to the machine's load, so it is not asserted.)
    notes = [[t.note for t in run.record.trials if t.context == k] for k in (0, 1)]
    assert notes[0][0] == notes[1][0] and notes[0][1] != notes[1][1]
    order = [e.context for e in run.record.log if e.context in (0, 1)]
    assert order.index(1) < len(order) - 1 - order[::-1].index(0)


async def test_sequential_contexts_start_from_the_best_design_so_far(tmp_path: Path) -> None:
    async with cluster(tmp_path) as c:
        run = await small_run(tmp_path, c, budget=6, contexts=2, sequential=True)
    rec = run.record
    first = [t for t in rec.trials if t.context == 0]
    second = [t for t in rec.trials if t.context == 1]
    assert len(first) == 3 and second
    assert min(t.at for t in second) > max(t.at for t in first)  # one after the other
    ws = run.run_dir / "ctx-1"
    best_of_first = min(first, key=lambda t: t.mean_e2e_s or float("inf"))
    previous = (ws / "previous_best.py").read_text()
    assert previous == (run.run_dir / best_of_first.design_path).read_text()
    assert (ws / "previous_notes.md").read_text().startswith("[offline")
    # The offline researcher's first design in the new context is the previous best.
    assert second[0].note == best_of_first.note
