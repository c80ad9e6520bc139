"""A design run through the real OpenAI provider, against a scripted server on loopback.

The HTTP, tool-call and error-mapping path a real model takes all run: a rate limit (retried),
a malformed tool call (sent back to the model), a design written and simulated through the bus
and a worker, the per-request CSV analysed, a report, and the supervisor ending the context.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from glia._design import design_async
from glia.bus import Event, ProviderRetry, to_json
from glia.policies._mechanisms import Mechanisms, compose
from glia.runtime import local_cluster
from tests.openai_stub import ChatStub, Fail, Reply, Text, ToolCalls, tool_messages

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("allow_model_requests")]

SECRET = "sk-glia-test-0123456789abcdef"
ANALYSIS = """\
import numpy as np
e2e = np.genfromtxt("{csv}", delimiter=",", names=True)["request_e2e_time"]
print(f"mean={{e2e.mean():.6f}} n={{e2e.size}}")
"""


class Researcher:
    """The scripted model: one step per request, whatever the server sends back."""

    def __init__(self) -> None:
        self.steps = 0
        self.analysis_output = ""
        self.sim_result: dict[str, Any] = {}

    def __call__(self, request: dict[str, Any]) -> Reply:
        system = str(request["messages"][0]["content"])
        if system.startswith("You supervise"):
            return Text("Clear enough: the baseline is measured.\nEND CONTEXT")
        self.steps += 1
        tools = tool_messages(request)
        if self.steps == 1:
            return Fail(429, headers={"retry-after-ms": "10"})
        if self.steps == 2:
            return ToolCalls([("write_file", '{"path": "router.py", "content": ')])  # cut off
        if self.steps == 3:
            return ToolCalls([("write_file", {"path": "router.py", "content": compose(
                Mechanisms(), name="Mine")})])  # fmt: skip
        if self.steps == 4:
            return ToolCalls([("run_simulation", {"design_path": "router.py", "note": "LLQ"})])
        if self.steps == 5:
            self.sim_result = json.loads(tools[-1]["content"])
            csv = self.sim_result["csv_paths"][0]
            return ToolCalls([("run_analysis", {"script": ANALYSIS.format(csv=csv)})])
        self.analysis_output = str(tools[-1]["content"])
        return Text(f"LLQ measured: {self.analysis_output.strip()}. Next: admission control.")


async def test_a_design_run_through_the_openai_provider_and_the_bus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    script = Researcher()
    events: list[Event] = []
    async with (
        ChatStub(script) as stub,
        local_cluster(workers=2, store_dir=str(tmp_path / "nats")) as client,
    ):
        run = await design_async(
            model="stub-model", base_url=stub.base_url, budget=3, out=tmp_path / "runs",
            search_seeds=(0,), holdout_seeds=(100,), settings={"duration_s": 60.0},
            client=client, on_event=events.append,
        )  # fmt: skip
    rec = run.record
    assert rec.status == "finished" and rec.stop_reason == "search finished"
    assert len(rec.trials) == 1 and rec.trials[0].note == "LLQ"
    assert script.steps == 6  # every scripted step was asked for, in order

    # The rate limit was retried (and shown); the malformed call went back to the model.
    retries = [(e.error[:8], e.wait_s) for e in events if isinstance(e, ProviderRetry)]
    assert retries == [("HTTP 429", 0.01), ("malforme", 0.0)]
    feedback = tool_messages(stub.requests[2])
    assert feedback and "json_invalid" in feedback[-1]["content"]

    # The model read real results: the simulation's answer and its own analysis of the CSV.
    sim = script.sim_result
    assert sim["ok"] is True and sim["trial"] == 1 and sim["simulations_left"] == 2
    assert sim["mean_e2e_s"] == pytest.approx(rec.trials[0].mean_e2e_s, abs=1e-3)
    table = np.genfromtxt(run.run_dir / rec.trials[0].csv_paths[0], delimiter=",", names=True)
    assert script.analysis_output.startswith(f"mean={table['request_e2e_time'].mean():.6f}")

    # Usage was metered (an unknown model has no price), and the key never left the request.
    usage = {u.model: u for u in rec.usage}
    mine = usage["researcher:stub-model"]
    assert mine.requests == 5 and not mine.priced and mine.input_tokens > 0
    assert set(stub.headers) == {f"Bearer {SECRET}"}
    for path in run.run_dir.rglob("*"):
        if path.is_file() and "nats" not in path.parts:
            assert SECRET.encode() not in path.read_bytes(), path
    assert not any(SECRET.encode() in to_json(e) for e in events)
