"""The agents' parts on their own: workspace, mechanisms, models and meters, the offline
designer's determinism, checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo
from pydantic_ai.usage import RequestUsage

import glia
from glia.actors import (
    BudgetExhausted,
    DesignConfig,
    Meter,
    Workspace,
    WorkspaceError,
    offline_researcher,
)
from glia.actors._coordinator import new_checkpoint
from glia.actors._supervisor import ends_context
from glia.policies import Mechanisms, compose
from glia.report import Budget, RunRecord
from glia.sandbox import check_design


# -- workspace ---------------------------------------------------------------------------------
def test_the_workspace_keeps_files_inside_it(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    assert ws.write("designs/a.py", "x = 1\n") == "wrote designs/a.py (6 characters, 2 lines)"
    assert ws.list() == ["designs/a.py (6 bytes)"]
    assert ws.edit("designs/a.py", "x = 1", "x = 2") == "wrote designs/a.py (6 characters, 2 lines)"
    assert ws.read("designs/a.py") == "x = 2\n"
    for bad in ("../out.py", "/etc/passwd", "designs/../../x"):
        with pytest.raises(WorkspaceError) as err:
            ws.write(bad, "")
        assert str(err.value) == (
            f"{bad!r} is outside your workspace: use a relative path such as 'design.py'"
        )
    (ws.root / "link").symlink_to("/etc")
    with pytest.raises(WorkspaceError, match="outside your workspace"):
        ws.read("link/hostname")
    with pytest.raises(WorkspaceError) as err:
        ws.edit("designs/a.py", "nothing like this", "y")
    assert str(err.value) == (
        "the text to replace does not occur in designs/a.py: give an exact snippet that occurs "
        "once (read the file to copy it)"
    )
    with pytest.raises(WorkspaceError, match=r"^no file 'b.py' in your workspace \(files: desi"):
        ws.read("b.py")


def test_long_files_are_read_in_pages(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    ws.write("big.txt", "a" * 70_000)
    first = ws.read("big.txt")
    assert first.endswith("[6,000 more characters: read again with offset=64000]")
    assert ws.read("big.txt", 64_000) == "a" * 6_000


# -- mechanisms ----------------------------------------------------------------------------------
HRA = Mechanisms(score="kv", order="shortest-prompt", decode_ratio=0.6, admission=True,
                 headroom=0.03)  # fmt: skip


@pytest.mark.parametrize(
    "m",
    [
        Mechanisms(),
        Mechanisms(score="queued"),
        Mechanisms(score="kv", decode_ratio=1.0),
        Mechanisms(score="kv", admission=True, hold=False),
        HRA,
    ],
)
def test_every_composed_design_passes_the_sandbox_checks(m: Mechanisms) -> None:
    assert check_design(compose(m, name="Composed")) == "Composed"


@pytest.mark.parametrize(("m", "baseline"), [(Mechanisms(), "llq"), (HRA, "hra")])
def test_composed_designs_reproduce_the_baselines_they_describe(
    m: Mechanisms, baseline: str
) -> None:
    mine = glia.simulate(design=compose(m), duration_s=120.0, seed=1).summary
    theirs = glia.simulate(baseline, duration_s=120.0, seed=1).summary
    assert (mine.mean_e2e_s, mine.restarts) == (theirs.mean_e2e_s, theirs.restarts)


# -- supervisor, meter, checkpoints ---------------------------------------------------------------
def test_only_a_line_of_its_own_ends_the_context() -> None:
    assert ends_context("Done.\nEND CONTEXT")
    assert ends_context("Done.\n**END CONTEXT**\n")
    assert not ends_context("I will not say END CONTEXT yet.")


def test_the_meter_stops_at_the_token_and_dollar_budgets() -> None:
    meter = Meter(Budget(tokens=100, usd=1.0))
    meter.check()
    usage = RequestUsage(input_tokens=80, output_tokens=30)
    response = ModelResponse(parts=[TextPart("hi")], usage=usage)
    meter.add("offline-researcher", response)
    assert (meter.tokens, meter.cost_usd) == (110, 0.0)
    assert not meter.usage["offline-researcher"].priced
    with pytest.raises(BudgetExhausted) as err:
        meter.check()
    assert str(err.value) == "token budget reached (110 of 100)"


def test_the_simulation_budget_is_shared_between_contexts() -> None:
    config = DesignConfig(budget=Budget(simulations=10), contexts=3)
    record = RunRecord(run_id="r", task="routing", preset="glia-routing", model="m",
                       supervisor_model="m", contexts=3, sequential=False, budget=config.budget,
                       search_seeds=[0], started_at=0.0)  # fmt: skip
    assert [c.budget for c in new_checkpoint(config, record).contexts] == [4, 3, 3]


def test_the_offline_designer_depends_only_on_the_conversation() -> None:
    model = offline_researcher()
    history: list[ModelMessage] = [ModelRequest(parts=[UserPromptPart("Start.")])]
    info = AgentInfo(function_tools=[], allow_text_output=True, output_tools=[],
                     model_settings=None, model_request_parameters=None,  # type: ignore[arg-type]
                     instructions=None)  # fmt: skip
    calls = [model.function(history, info).parts for _ in range(2)]  # type: ignore[misc,union-attr]
    first, again = (
        [(p.tool_name, p.args) for p in parts if isinstance(p, ToolCallPart)] for parts in calls
    )
    assert first == again == [("list_files", {})]
