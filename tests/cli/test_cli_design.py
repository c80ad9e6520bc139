"""``glia design`` and ``glia report`` from the command line: bad input, and a whole run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from glia.cli import app


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--task", "nope"], "unknown task 'nope': choose one of autoscaling, routing, scheduling"),
        (["--preset", "nope"], "unknown preset 'nope': choose one of azure-autoscale, "
         "azure-conv, chat-prefix, diurnal, glia-routing, glia-scheduling, prefix-heavy, "
         "prefix-heavy-bursty, sharegpt-conv"),
        (["--model", "gpt4"], "unknown model 'gpt4': give 'offline' (no key needed), a "
         "pydantic-ai model string such as 'openai:gpt-4.1', or a model name with --base-url URL"),
        (["--model", "openai:gpt-4.1"], "model 'openai:gpt-4.1' needs the OPENAI_API_KEY "
         "environment variable: set it, or use --model offline (no key needed)"),
        (["--budget", "0"], "a budget of 0 simulations leaves nothing to do: give --budget 1 or "
         "more (the paper used 15 per context)"),
        (["--contexts", "4", "--budget", "3"], "--contexts 4 must be between 1 and the budget "
         "(3): each context needs at least one simulation"),
        (["--set", "qpss=3"], "unknown setting(s) qpss: choose from "),
        (["--set", "qps"], "--set 'qps': give KEY=VALUE, e.g. --set qps=9"),
        (["--objective", "p95"], "unknown objective term 'p95' in 'p95': join mean, p99 and "
         "slowdown with '+' (e.g. mean+p99:1,0.5)"),
        (["--objective", "mean+p99:1"], "objective 'mean+p99:1' has 1 weight(s) for 2 term(s): "
         "give one weight per term, in order (e.g. mean+p99:1,0.5)"),
        (["--objective", "mean+p99:1,-1"], "bad weight '-1' in objective 'mean+p99:1,-1': "
         "weights are positive finite numbers (e.g. mean+p99:1,0.5)"),
        (["--task", "scheduling", "--objective", "p99"], "--objective 'p99' is for routing "
         "only: task 'scheduling' has its own objective (drop --objective)"),
    ],
)  # fmt: skip
def test_bad_input_is_one_clear_line_before_anything_starts(
    args: list[str], error: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    out = tmp_path / "runs"
    result = invoke("design", "--out", str(out), *args)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {error}") and result.stderr.count("\n") == 1
    assert not out.exists()  # nothing was created, no server started, no model called


def test_an_unwritable_output_directory_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = invoke("design", "--out", str(blocker / "runs"))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: cannot write the run directory '{blocker}/runs/")
    assert result.stderr.endswith("(Not a directory): give --out a directory you can write to\n")


def test_report_of_a_directory_that_is_not_a_run(tmp_path: Path) -> None:
    result = invoke("report", str(tmp_path))
    assert result.exit_code == 2
    assert (
        result.stderr == f"error: no run.json in {tmp_path}: give the directory of a design run\n"
    )


def test_resuming_an_unknown_run_is_a_clear_error(tmp_path: Path) -> None:
    result = invoke("design", "--resume", "nope", "--out", str(tmp_path))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: no design run 'nope': give a run directory")


def test_design_json_runs_end_to_end_and_report_rewrites(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    result = invoke("design", "--budget", "2", "--seeds", "1", "--set", "duration_s=60",
                    "--workers", "2", "--out", str(out), "--json")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert set(summary) == {"run_id", "status", "stop_reason", "stop_kind", "best_design_path",
                            "best_mean_e2e_s", "baselines", "task", "best_cost",
                            "baseline_costs", "simulations_used", "cost_usd",
                            "report_path", "objective"}  # fmt: skip
    assert summary["objective"] == "mean"
    assert summary["status"] == "finished" and summary["simulations_used"] == 2
    assert summary["stop_kind"] == "finished"
    assert summary["cost_usd"] == 0.0 and "llq" in summary["baselines"]
    assert Path(summary["best_design_path"]).is_file()
    assert "trial 2/2" in result.stderr  # live progress goes to stderr
    assert "[/" not in result.stderr and "best -" not in result.stderr  # rendered, and known
    report = Path(summary["report_path"])
    first = report.read_text()
    report.unlink()
    again = invoke("report", str(report.parent))
    assert again.exit_code == 0 and report.read_text() == first


def test_the_monitor_shows_a_design_runs_progress() -> None:
    from rich.console import Console

    from glia.bus import AgentMessage, ProviderRetry, RunStatus, TrialFinished
    from glia.cli._cluster import _View

    view = _View()
    for ev in (
        RunStatus(run_id="r", status="searching", message="1 context(s)", cost_usd=0.25,
                  tokens=1200, at=0.0),
        AgentMessage(run_id="r", context=0, role="researcher", text="tried LLQ\nnext: HRA",
                     at=1.0),
        TrialFinished(run_id="r", context=0, index=3, budget=15, mean_e2e_s=40.0,
                      best_e2e_s=33.5, failure=None, at=2.0),
        ProviderRetry(run_id="r", context=0, model="researcher", attempt=2, wait_s=4.0,
                      error="HTTP 429", at=3.0),
    ):  # fmt: skip
        view.apply(ev)
    console = Console(width=120, record=True)
    console.print(view.render("run r"))
    text = console.export_text()
    for shown in ("searching: 1 context(s)", "$0.2500, 1,200 tokens", "3 of 15",
                  "33.50 s mean E2E", "HTTP 429, retry 2 in 4 s",
                  "researcher (context 0): next: HRA"):  # fmt: skip
        assert shown in text


def test_a_tail_objective_scores_designs_and_the_report_shows_the_tail(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    result = invoke("design", "--budget", "2", "--seeds", "1", "--set", "duration_s=60",
                    "--workers", "2", "--out", str(out), "--json", "--known-seeds",
                    "--objective", "mean+p99:1,0.5")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["objective"] == "mean+p99:1,0.5"
    run = json.loads((Path(summary["report_path"]).parent / "run.json").read_text())
    assert run["objective"] == "mean+p99:1,0.5"
    for trial in run["trials"]:  # one seed: the cost is that seed's mean + 0.5 x p99, exactly
        s = trial["summary"]
        assert trial["cost"] == s["mean_e2e_s"] + 0.5 * s["p99_e2e_s"]
        assert trial["score"] == pytest.approx(20 / trial["cost"])
    best = min(run["trials"], key=lambda t: t["cost"])  # the lowest cost, not the lowest mean
    assert run["best_trial"] == best["index"]
    held_out = run["validation"][0]
    assert summary["best_cost"] == held_out["cost"]["design"]
    assert set(held_out["mean_slowdown"]) == set(held_out["mean_e2e_s"]) >= {"design", "llq"}
    for name, cost in held_out["cost"].items():
        assert cost == held_out["mean_e2e_s"][name] + 0.5 * held_out["p99_e2e_s"][name]
    report = Path(summary["report_path"]).read_text()
    assert "The objective was 'mean+p99:1,0.5', not the mean E2E alone" in report
    assert "mean slowdown" in report
