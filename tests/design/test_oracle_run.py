"""A whole design run in which the researcher submits an oracle (issue 13's run-level must-show).

The scripted researcher (a pydantic-ai ``FunctionModel`` driving the real tools) first writes a
design that tries every known route to hidden state: true output lengths through attribute
access, ``str.format`` fields, the builtins table, ``gc``, importing the simulator. Inside the
sandbox none of them leads anywhere, so it routes as least-loaded. Then it writes an honest
HRA-class design. The run's best design must be the honest one, with the oracle's trial no better.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo

from glia.policies._mechanisms import Mechanisms, compose
from glia.sandbox import boundary
from tests.design.test_design import cluster, fake, small_run, tool_returns
from tests.sandbox.test_walls import ORACLE

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

HONEST = compose(
    Mechanisms(score="kv", order="shortest-prompt", decode_ratio=1.0, admission=True),
    name="Honest",
)
STEPS = [
    ToolCallPart("write_file", {"path": "oracle.py", "content": ORACLE}),
    ToolCallPart("run_simulation", {"design_path": "oracle.py"}),
    ToolCallPart("write_file", {"path": "honest.py", "content": HONEST}),
    ToolCallPart("run_simulation", {"design_path": "honest.py"}),
]


def oracle_then_honest(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    done = len(tool_returns(messages))
    if done < len(STEPS):
        return ModelResponse(parts=[STEPS[done]])
    return ModelResponse(parts=[TextPart("final: two designs tried")])


async def test_an_oracle_submitted_in_a_run_never_becomes_its_best_design(tmp_path: Path) -> None:
    if (why := boundary()) is not None:
        pytest.fail(f"this test needs the sandbox's kernel boundary: {why}")
    async with cluster(tmp_path) as c:
        run = await small_run(
            tmp_path, c, budget=2, model=fake("oracle-r", oracle_then_honest),
            settings={"duration_s": 300.0},
        )  # fmt: skip
    rec = run.record
    assert rec.status == "finished" and len(rec.trials) == 2
    oracle, honest = rec.trials
    assert "class Oracle" in (run.run_dir / oracle.design_path).read_text()
    assert "class Honest" in (run.run_dir / honest.design_path).read_text()
    assert honest.mean_e2e_s is not None
    # The oracle either failed or, finding nothing, routed as least-loaded: no better.
    assert oracle.mean_e2e_s is None or oracle.mean_e2e_s > honest.mean_e2e_s, (oracle, honest)
    assert rec.best is not None and rec.best.index == honest.index
    assert run.best_design_path is not None
    assert "class Honest" in run.best_design_path.read_text()
