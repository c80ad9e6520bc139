"""Comparisons run for real: design runs on a real NATS server and workers, with scripted
(``FunctionModel``) and offline methods on a one-minute workload."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel
from typer.testing import CliRunner

from glia._client import Client
from glia.actors._search import PassiveSupervisor
from glia.cli import app
from glia.compare import Method, MethodSetup, RunResult, compare_async
from glia.policies._mechanisms import Mechanisms, compose
from glia.report import load_record
from glia.runtime import local_cluster

SMALL = {"duration_s": 60.0}

# Design runs on a real cluster take seconds idle but can pass 30 s on a loaded 2-core machine.
# These tests get the slow budget, and the thread method, which dumps every stack and ends the
# process. Not the signal method: its exception is raised wherever the main thread is. Raised in
# the selector's wait, it leaves the test's coroutine running (the anyio plugin runs the async
# fixture's teardown after it, in the same task); raised in a loop callback or in nats-py's
# reader task, it loses a wake-up or kills the connection's reader, so that coroutine waits for
# ever, with no second timeout. (Leaving local_cluster itself is bounded: see
# tests/runtime/test_lifecycle.py.) Before either, tests/conftest.py cancels a test's body in
# its own loop, so a hang fails with the await it hangs in.
design_run = pytest.mark.timeout(300, method="thread")


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    async with local_cluster(workers=2, store_dir=str(tmp_path / "nats")) as c:
        yield c


def _returns(messages: list[ModelMessage]) -> list[ToolReturnPart]:
    return [p for m in messages if isinstance(m, ModelRequest) for p in m.parts
            if isinstance(p, ToolReturnPart)]  # fmt: skip


def flaky(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Writes designs that alternately run and crash, simulating each, then tries one
    simulation past its budget."""
    returns = _returns(messages)
    sims = [r for r in returns if r.tool_name == "run_simulation"]
    answers = [r.content for r in sims if isinstance(r.content, dict)]
    if returns and returns[-1].tool_name == "write_file":
        path = f"designs/{len(sims) + 1:02d}.py"
        return ModelResponse(parts=[ToolCallPart("run_simulation", {"design_path": path})])
    if answers and answers[-1].get("trial") is None:  # refused: past the budget
        return ModelResponse(parts=[TextPart("done")])
    if answers and answers[-1]["simulations_left"] == 0:
        path = f"designs/{len(sims):02d}.py"
        return ModelResponse(parts=[ToolCallPart("run_simulation", {"design_path": path})])
    n = len(sims) + 1
    source = compose(Mechanisms(), name=f"D{n}") if n % 2 else "this is not python ("
    args = {"path": f"designs/{n:02d}.py", "content": source}
    return ModelResponse(parts=[ToolCallPart("write_file", args)])


FLAKY = Method(
    "flaky",
    "every other design crashes",
    lambda model, seed, budget: MethodSetup(
        FunctionModel(flaky, model_name="flaky"), PassiveSupervisor()
    ),
)


@pytest.mark.slow
@design_run
@pytest.mark.anyio
async def test_invalid_designs_spend_the_budget_and_the_rate_shows_it(
    tmp_path: Path, client: Client
) -> None:
    c = await compare_async(
        methods=[FLAKY, "random"], repeats=1, budget=4, seeds=1, settings=SMALL,
        client=client, out=tmp_path / "cmp",
    )  # fmt: skip
    flaky_run, random_run = c.runs
    assert (flaky_run.simulations, flaky_run.valid) == (4, 2)  # the 5th call was refused
    assert (random_run.simulations, random_run.valid) == (4, 4)
    f, r = c.methods
    assert (f.valid_rate, r.valid_rate) == (0.5, 1.0)
    assert f.scored == 1 and flaky_run.score is not None  # its valid designs were validated
    assert len(flaky_run.curve) == len(random_run.curve) == 4
    assert flaky_run.curve[1] == flaky_run.curve[0]  # a crash does not move the curve
    # the offline random search reads scores only: no analysis, no supervisor advice
    rec = load_record((tmp_path / "cmp" / random_run.run_dir / "run.json").read_bytes())
    tools = [e.text for e in rec.log if e.role == "tool"]
    assert tools and all(t.startswith("run_simulation") for t in tools)
    assert c.report_path.read_text().startswith("# Comparison: flaky, random on glia-routing")
    assert (tmp_path / "cmp" / "report.html").is_file()
    assert (tmp_path / "cmp" / "figures" / "curves.png").is_file()


@pytest.mark.slow
@design_run
@pytest.mark.anyio
async def test_evolve_prompts_name_parents_and_their_costs(tmp_path: Path, client: Client) -> None:
    c = await compare_async(
        methods="evolve", repeats=1, budget=3, seeds=1, settings=SMALL, client=client,
        out=tmp_path / "cmp",
    )  # fmt: skip
    (run,) = c.runs
    assert run.simulations == 3
    rec = load_record((tmp_path / "cmp" / run.run_dir / "run.json").read_bytes())
    prompts = [e.text for e in rec.log if e.role == "supervisor"]
    assert len(prompts) == 2 and all("parent: trial " in p for p in prompts)


@pytest.mark.slow
@design_run
@pytest.mark.anyio
async def test_a_killed_comparison_resumes_without_repeating_finished_runs(
    tmp_path: Path, client: Client
) -> None:
    args: dict[str, Any] = {
        "methods": "random,best-of-n", "repeats": 2, "budget": 2, "seeds": 1,
        "settings": SMALL, "client": client, "out": tmp_path / "cmp", "parallel": 1,
    }  # fmt: skip
    first: list[RunResult] = []
    with anyio.CancelScope() as scope:

        def stop(r: RunResult) -> None:
            first.append(r)
            scope.cancel()  # killed as soon as one run has finished

        await compare_async(**args, on_run=stop)
    assert [(r.method, r.repeat) for r in first] == [("random", 0)]
    saved = (tmp_path / "cmp" / "runs" / "random" / "r00" / "result.json").read_bytes()
    second: list[RunResult] = []
    c = await compare_async(**args, on_run=second.append)
    done = sorted((r.method, r.repeat) for r in second)
    assert done == [("best-of-n", 0), ("best-of-n", 1), ("random", 1)]
    assert c.runs[0] == msgspec.json.decode(saved, type=RunResult)
    assert [(r.method, r.repeat) for r in c.runs] == [
        ("random", 0), ("random", 1), ("best-of-n", 0), ("best-of-n", 1)
    ]  # fmt: skip
    again: list[RunResult] = []
    await compare_async(**args, on_run=again.append)
    assert again == []  # nothing left to run: only the report is written again


@pytest.mark.slow
@design_run
def test_cli_json_schema_and_a_changed_setting(tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    common = ["compare", "--methods", "random", "--repeats", "1", "--seeds", "1", "--set",
              "duration_s=60", "--workers", "2", "--out", str(out), "--json"]  # fmt: skip
    result = CliRunner().invoke(app, [*common, "--budget", "1"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert set(summary) == {"methods", "report_path", "best_cost", "score"}
    (m,) = summary["methods"]
    assert {"name", "repeats", "score_mean", "ci90", "t90_sims", "t95_sims", "valid_rate",
            "tokens", "usd", "cpu_s", "mean_e2e_s", "p99_e2e_s"} <= set(m)  # fmt: skip
    assert m["name"] == "random" and m["repeats"] == 1 and m["valid_rate"] == 1.0
    assert m["ci90"] == [m["score_mean"], m["score_mean"]] and m["t90_sims"] == 1
    assert summary["report_path"] == str(out / "report.md")
    changed = CliRunner().invoke(app, [*common, "--budget", "2"])
    assert changed.exit_code == 2
    assert changed.stderr == (
        f"error: {out} holds a comparison with other settings (budget 1 there, 2 now): give "
        "another --out, or the same settings to resume it\n"
    )


@pytest.mark.parametrize(
    ("methods", "error"),
    [
        ("glia,nope", "unknown method 'nope': choose one of best-of-n, evolve, glia, glia-mcg, "
         "glia-mcg-sequential, no-supervisor, random"),
        ("glia,glia", "methods glia,glia name a method twice: name each once"),
        (",", "no methods given: name one or more of glia, glia-mcg, glia-mcg-sequential, "
         "no-supervisor, best-of-n, evolve, random"),
    ],
)  # fmt: skip
def test_bad_methods_fail_before_anything_starts(tmp_path: Path, methods: str, error: str) -> None:
    out = tmp_path / "cmp"
    result = CliRunner().invoke(app, ["compare", "--methods", methods, "--out", str(out)])
    assert result.exit_code == 2
    assert result.stderr == f"error: {error}\n"
    assert not out.exists()


def one_design_per_turn(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """A scripted model: each turn writes one design, simulates it and reports."""
    last = messages[-1].parts[-1]
    writes = sum(1 for r in _returns(messages) if r.tool_name == "write_file")
    if isinstance(last, ToolReturnPart) and last.tool_name == "write_file":
        path = f"designs/{writes:02d}.py"
        return ModelResponse(parts=[ToolCallPart("run_simulation", {"design_path": path})])
    if isinstance(last, ToolReturnPart) and last.tool_name == "run_simulation":
        return ModelResponse(parts=[TextPart("one design simulated")])
    n = writes + 1
    args = {"path": f"designs/{n:02d}.py", "content": compose(Mechanisms(), name=f"M{n}")}
    return ModelResponse(parts=[ToolCallPart("write_file", args)])


@pytest.mark.slow
@design_run
@pytest.mark.anyio
async def test_best_of_n_and_evolve_run_with_any_model(tmp_path: Path, client: Client) -> None:
    model = FunctionModel(one_design_per_turn, model_name="scripted")
    c = await compare_async(
        methods="best-of-n,evolve", repeats=1, budget=3, seeds=1, settings=SMALL,
        client=client, out=tmp_path / "cmp", model=model,
    )  # fmt: skip
    best_of_n, evolve = c.runs
    assert (best_of_n.simulations, best_of_n.valid) == (3, 3)
    assert (evolve.simulations, evolve.valid) == (3, 3)
    rec = load_record((tmp_path / "cmp" / best_of_n.run_dir / "run.json").read_bytes())
    assert rec.contexts == 3 and sorted(t.context for t in rec.trials) == [0, 1, 2]
    assert rec.model == "scripted"
    rec = load_record((tmp_path / "cmp" / evolve.run_dir / "run.json").read_bytes())
    prompts = [e.text for e in rec.log if e.role == "supervisor"]
    assert len(prompts) == 2 and all("parent: trial " in p for p in prompts)


@pytest.mark.slow
@design_run
@pytest.mark.anyio
async def test_every_method_runs_offline_within_its_budget(tmp_path: Path, client: Client) -> None:
    from glia.compare import METHODS

    c = await compare_async(
        methods=list(METHODS), repeats=1, budget=2, seeds=1, settings=SMALL, client=client,
        out=tmp_path / "cmp",
    )  # fmt: skip
    assert [r.method for r in c.runs] == list(METHODS)
    for r in c.runs:
        assert 1 <= r.simulations <= 2 and r.valid == r.simulations, r
        assert r.score is not None and r.status == "finished", r
    seq = next(r for r in c.runs if r.method == "glia-mcg-sequential")
    rec = load_record((tmp_path / "cmp" / seq.run_dir / "run.json").read_bytes())
    assert rec.contexts == 2 and rec.sequential
