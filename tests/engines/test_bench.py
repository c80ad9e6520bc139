"""``glia bench`` against a fake engine on loopback: timing, closed and open loops, failures."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import glia
from glia.cli import app
from glia.engines import bench
from glia.sim import COLUMNS, Trace, WorkloadConfig, build_trace
from tests.engine_stub import EngineStub


def _closed(prompts: list[int], outputs: list[int], clients: int) -> Trace:
    n = len(prompts)
    return Trace(np.zeros(n), np.array(prompts), np.array(outputs), concurrency=clients)


@pytest.mark.anyio
async def test_a_closed_loop_measures_ttft_tpot_and_keeps_n_in_flight() -> None:
    with EngineStub(ttft_s=0.05, tpot_s=0.01) as engine:
        out = await bench(engine.url, _closed([20, 30, 40, 50, 60, 70], [5, 5, 8, 8, 3, 3], 2))
    t = out.requests
    assert out.model == "stub-model" and not out.failures
    assert t.request_id.tolist() == [0, 1, 2, 3, 4, 5]
    assert t.request_num_prefill_tokens.tolist() == [20, 30, 40, 50, 60, 70]
    assert t.request_num_decode_tokens.tolist() == [5, 5, 8, 8, 3, 3]
    assert engine.peak == 2  # two clients: never more than two requests in flight
    assert np.all(t.prefill_e2e_time >= 0.05)
    # The stub sleeps ttft, then tpot between tokens, before its last one: E2E is at least that
    # (TPOT alone is not bounded: a client may receive buffered tokens together).
    assert np.all(t.request_e2e_time >= 0.05 + (t.request_num_decode_tokens - 1) * 0.01)
    assert np.all(t.completed_at > t.prefill_completed_at)
    assert np.isnan(t.request_slowdown).all()  # not measurable from a client
    # Each request pins its output length, with vLLM's extensions for engines that honour them.
    for body, n in zip(engine.requests, [5, 5, 8, 8, 3, 3], strict=False):
        assert body["max_tokens"] == n and body["min_tokens"] == n and body["ignore_eos"]
        assert body["stream"] is True and isinstance(body["prompt"], list)


@pytest.mark.anyio
async def test_an_open_loop_sends_at_the_arrival_times_scaled_by_speed() -> None:
    trace = Trace(np.array([0.0, 0.2, 0.4]), np.array([10, 10, 10]), np.array([2, 2, 2]))
    with EngineStub(ttft_s=0.01, tpot_s=0.001) as engine:
        out = await bench(engine.url, trace, speed=2.0)
    sent = out.requests.arrived_at
    # Sent 0.1 s apart in wall time; reported in simulated seconds (x2): 0.2 s apart.
    assert np.allclose(np.diff(sent), 0.2, atol=0.05)
    assert out.requests.prefill_e2e_time.min() >= 0.02 * 0.9  # 10 ms of wall time, x2


@pytest.mark.anyio
async def test_a_failed_request_is_reported_and_the_rest_are_kept() -> None:
    with EngineStub(fail=frozenset({2})) as engine:
        out = await bench(engine.url, _closed([10] * 4, [2] * 4, 1))
    assert [f.request for f in out.failures] == [1]
    assert out.failures[0].error == "Error code: 500 - stub engine failure"
    assert out.requests.request_id.tolist() == [0, 2, 3]


@pytest.mark.anyio
async def test_an_endpoint_that_fails_everything_is_one_clear_error() -> None:
    with (
        EngineStub(fail=frozenset(range(1, 10))) as engine,
        pytest.raises(glia.SimulationError) as err,
    ):
        await bench(engine.url, _closed([10, 10], [2, 2], 1))
    assert str(err.value) == (
        f"every request to {engine.url}/v1 failed (request 0: Error code: 500 - stub engine "
        "failure): check that the URL serves the OpenAI API and the model name"
    )


@pytest.mark.anyio
async def test_nothing_listening_is_an_input_error() -> None:
    with EngineStub() as engine:
        url = engine.url
    with pytest.raises(glia.InputError, match=r"^cannot list the models of http://127\.0\.0\.1"):
        await bench(url, _closed([10], [2], 1), timeout_s=5.0)


def test_the_cli_writes_the_simulators_columns(tmp_path: Path) -> None:
    key = "sk-bench-secret-123"
    with EngineStub(ttft_s=0.01, tpot_s=0.001) as engine:
        result = CliRunner().invoke(app, ["bench", "--endpoint", engine.url, "--concurrency",
                                          "3", "--isl", "64", "--osl", "4", "--num-requests", "9",
                                          "--out", str(tmp_path), "--json"],
                                    env={"GLIA_BENCH_API_KEY": key})  # fmt: skip
    assert engine.authorization == {f"Bearer {key}"}  # sent to the engine, and nowhere else
    assert key not in result.output
    assert all(key not in p.read_text() for p in tmp_path.iterdir())
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["num_requests"] == 9 and record["failed"] == 0
    assert record["model"] == "stub-model" and record["workload"]["concurrency"] == 3
    with open(tmp_path / "requests.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == COLUMNS and len(rows) == 9
    assert {r["request_num_prefill_tokens"] for r in rows} == {"64"}
    assert engine.peak <= 3
    # The same workload, simulated: the same trace (lengths and order) from the same seed.
    w = WorkloadConfig(concurrency=3, isl=64, osl=4, max_requests=9)
    assert len(build_trace(w, 0)) == 9


@pytest.mark.anyio
async def test_text_prompts_send_one_word_per_token_id() -> None:
    with EngineStub(ttft_s=0.01, tpot_s=0.001) as engine:
        out = await bench(engine.url, _closed([5, 7], [2, 2], 1), vocab=50, text_prompts=True)
    prompts = [body["prompt"] for body in engine.requests]
    assert all(isinstance(p, str) for p in prompts)
    words = [p.split(" ") for p in prompts]
    assert [len(w) for w in words] == [5, 7]
    assert all(w.startswith("w") and 1 <= int(w[1:]) < 50 for ws in words for w in ws)
    # A text prompt's length is the engine's own count (the stub's: a token per 4 characters).
    counted = [max(1, len(p) // 4) for p in prompts]
    assert out.requests.request_num_prefill_tokens.tolist() == counted
