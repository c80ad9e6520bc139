"""``glia design`` as a user runs it: relative paths from any directory, and exit statuses.

Each test runs the real command in a child process (signals and working directories are the
point), against the offline designer or a scripted OpenAI-compatible server on loopback.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import glia
from tests.openai_stub import ChatStub, Fail, Reply, Text, ToolCalls

SECRET = "sk-glia-exit-test-0123456789abcdef"
SMALL = ["--seeds", "1", "--set", "duration_s=60", "--workers", "1", "--json"]


def glia_cmd(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 240
             ) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "glia", *args], cwd=cwd, capture_output=True, text=True,
        timeout=timeout, env={**os.environ, **(env or {})},
    )  # fmt: skip


def no_secret_anywhere(run_dir: Path, *texts: str) -> None:
    for text in texts:
        assert SECRET not in text
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


@pytest.mark.slow
def test_default_and_relative_paths_work_from_any_directory(tmp_path: Path) -> None:
    here = tmp_path / "somewhere" / "else"
    here.mkdir(parents=True)
    first = glia_cmd("design", "--budget", "1", *SMALL, cwd=here)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    run_dir = here / "glia-runs" / summary["run_id"]
    assert Path(summary["best_design_path"]).is_file()
    assert Path(summary["best_design_path"]).is_relative_to(run_dir)
    assert summary["report_path"] == str(run_dir / "report.md")
    relative = f"glia-runs/{summary['run_id']}"
    report = glia_cmd("report", relative, cwd=here)
    assert report.returncode == 0, report.stderr
    assert report.stdout.strip() == f"{relative}/report.md"
    again = glia_cmd("design", "--resume", relative, "--json", cwd=here)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["best_design_path"] == summary["best_design_path"]


def test_a_relative_trace_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:  # fmt: skip
    (tmp_path / "mine.csv").write_text("num_prefill_tokens,num_decode_tokens\n10,20\n30,40\n")
    monkeypatch.chdir(tmp_path)
    _, workload = glia.experiment_config("glia-routing", trace="mine.csv")
    assert workload.trace == str(tmp_path / "mine.csv")
    _, shipped = glia.experiment_config("glia-routing", trace="azure_conv")
    assert shipped.trace == "azure_conv"  # a shipped trace keeps its name


@pytest.mark.slow
def test_a_provider_that_always_fails_exits_3_with_the_summary(tmp_path: Path) -> None:
    def script(request: dict[str, Any]) -> Reply:
        return Fail(500, headers={"retry-after-ms": "1"})

    with ChatStub(script) as stub:
        done = glia_cmd(
            "design", "--model", "stub-model", "--base-url", stub.base_url, "--budget", "2",
            "--out", str(tmp_path), *SMALL, cwd=tmp_path, env={"OPENAI_API_KEY": SECRET},
        )  # fmt: skip
    assert done.returncode == 3, done.stderr
    summary = json.loads(done.stdout)
    assert summary["status"] == "stopped" and summary["stop_kind"] == "provider"
    assert summary["stop_reason"].startswith("provider failed: researcher:stub-model: still "
                                             "failing after 5 attempts (HTTP 500")  # fmt: skip
    assert len(stub.requests) == 5
    no_secret_anywhere(tmp_path / summary["run_id"], done.stdout, done.stderr)


@pytest.mark.slow
def test_a_model_that_never_stops_calling_tools_exits_4(tmp_path: Path) -> None:
    def script(request: dict[str, Any]) -> Reply:
        return ToolCalls([("list_files", {})])

    with ChatStub(script) as stub:
        done = glia_cmd(
            "design", "--model", "stub-model", "--base-url", stub.base_url, "--budget", "2",
            "--out", str(tmp_path), *SMALL, cwd=tmp_path, env={"OPENAI_API_KEY": SECRET},
        )  # fmt: skip
    assert done.returncode == 4, done.stderr
    summary = json.loads(done.stdout)
    assert summary["status"] == "finished" and summary["stop_kind"] == "model"
    assert summary["stop_reason"].startswith("context 0 ended: model misbehaved: ")
    assert len(stub.requests) == 80  # the coordinator's cap on one researcher turn


@pytest.mark.slow
def test_sigterm_saves_and_exits_143_and_the_run_resumes(tmp_path: Path) -> None:
    """The signal arrives while the researcher waits for its model: the run stops cleanly
    with its summary, and a resumed run finishes it."""
    release = threading.Event()

    def script(request: dict[str, Any]) -> Reply:
        if str(request["messages"][0]["content"]).startswith("You supervise"):
            return Text("Enough.\nEND CONTEXT")
        release.wait(timeout=60)  # held until the test has sent the signal
        return Text("Nothing to report.")

    env = {"OPENAI_API_KEY": SECRET}
    args = ["--model", "stub-model", "--budget", "2", "--out", str(tmp_path), *SMALL]
    with ChatStub(script) as stub:
        proc = subprocess.Popen(
            [sys.executable, "-m", "glia", "design", "--base-url", stub.base_url, *args],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **env},
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while not stub.requests and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.05)
            assert stub.requests, "the researcher never called its model"
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=120)
        finally:
            release.set()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 143, err
        summary = json.loads(out)
        assert summary["status"] == "interrupted" and summary["stop_kind"] == "interrupted"
        assert summary["stop_reason"] == "interrupted by SIGTERM; resume to finish it"
        assert "SIGTERM: stopping the run" in err
        run_dir = tmp_path / summary["run_id"]
        assert (run_dir / "report.md").is_file() and (run_dir / "checkpoint.json").is_file()

        resumed = glia_cmd("design", "--resume", str(run_dir), "--json", cwd=tmp_path, env=env)
    assert resumed.returncode == 0, resumed.stderr
    final = json.loads(resumed.stdout)
    assert final["status"] == "finished" and final["stop_kind"] == "finished"
    no_secret_anywhere(run_dir, out, err, resumed.stdout, resumed.stderr)
