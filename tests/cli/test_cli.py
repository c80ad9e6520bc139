"""The ``glia`` command: output contracts (table, JSON, files), logging, and one-line errors."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

import glia
from glia._logging import configure_logging, get_logger
from glia.cli import app
from glia.policies import BASELINES

SUMMARY_KEYS = {
    "router",
    "seed",
    "mean_e2e_s",
    "p50_e2e_s",
    "p90_e2e_s",
    "p99_e2e_s",
    "mean_ttft_s",
    "mean_tpot_s",
    "restarts",
    "num_requests",
    "sim_duration_s",
    "wall_s",
}

DESIGN = """
from glia.policies import Router


class FirstReplica(Router):
    def schedule(self, cluster):
        return [(0, r) for r in cluster.queue]
"""

SHORT = ["--duration", "60"]


def invoke(*args: str) -> Result:
    """Run the command in-process; stdout and stderr are captured separately."""
    return CliRunner().invoke(app, list(args))


def write_trace(path: Path, rows: list[tuple[float, int, int]], arrivals: bool = True) -> Path:
    """A trace CSV with the given (arrived_at, prompt tokens, output tokens) rows."""
    if arrivals:
        lines = ["arrived_at,num_prefill_tokens,num_decode_tokens"]
        lines += [f"{a},{p},{d}" for a, p, d in rows]
    else:
        lines = ["num_prefill_tokens,num_decode_tokens"] + [f"{p},{d}" for _, p, d in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def small_trace(tmp_path: Path, n: int = 20) -> Path:
    rows = [(0.25 * i, 20 + 37 * i, 10 + 13 * i) for i in range(n)]
    return write_trace(tmp_path / "small.csv", rows)


def only_json(stdout: str) -> Any:
    """Parse stdout as exactly one JSON document (raises if anything else is there)."""
    return json.loads(stdout)


def check_summary(d: dict[str, Any]) -> None:
    assert d.keys() >= SUMMARY_KEYS
    assert d["num_requests"] > 0
    assert 0 < d["p50_e2e_s"] <= d["p90_e2e_s"] <= d["p99_e2e_s"]
    assert d["mean_e2e_s"] > 0 and d["mean_ttft_s"] > 0 and d["mean_tpot_s"] > 0
    assert d["restarts"] >= 0
    assert d["sim_duration_s"] > 0 and d["wall_s"] > 0


def check_error(result: Result, starts: str = "") -> str:
    """The run failed with exit code 2, nothing on stdout and one ``error:`` line on stderr."""
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: " + starts), lines[0]
    return lines[0].removeprefix("error: ")


# --- simulate ---------------------------------------------------------------------------------


def test_simulate_json_prints_exactly_one_summary_object() -> None:
    result = invoke("simulate", "--json", *SHORT)
    assert result.exit_code == 0, result.stderr
    d = only_json(result.stdout)
    assert isinstance(d, dict)
    check_summary(d)
    assert d["router"] == "llq"
    assert d["preset"] == "glia-routing"
    assert d["seed"] == 0
    assert d["workload"]["duration_s"] == 60.0


def test_simulate_json_matches_the_python_api() -> None:
    d = only_json(invoke("simulate", "--json", "--router", "hra", "--seed", "3", *SHORT).stdout)
    expected = glia.simulate("hra", seed=3, duration_s=60.0).summary
    assert d["router"] == "hra"
    assert d["seed"] == 3
    assert d["num_requests"] == expected.num_requests
    assert d["mean_e2e_s"] == expected.mean_e2e_s


def test_simulate_in_a_real_process_keeps_stdout_pure_json_and_logs_to_stderr() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "glia", "simulate", "--json", *SHORT],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    check_summary(only_json(proc.stdout))
    # stderr is not a terminal here, so logs are JSON lines: one canonical event per simulation.
    events = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    finished = [e for e in events if e["event"] == "simulation_finished"]
    assert len(finished) == 1
    assert finished[0]["router"] == "llq"
    assert finished[0]["preset"] == "glia-routing"
    assert {"seed", "num_requests", "mean_e2e_s", "wall_s"} <= finished[0].keys()


def test_simulate_prints_a_summary_table() -> None:
    result = invoke("simulate", "--router", "expert", *SHORT)
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    for label in (
        "expert on glia-routing",
        "E2E latency",
        "TTFT",
        "TPOT",
        "scheduling delay",
        "slowdown",
        "restarts",
        "throughput",
        "requests",
        "simulated duration",
        "wall time",
    ):
        assert label in out
    assert "simulation_finished" in result.stderr
    assert "simulation_finished" not in out


def test_capped_requests_are_said_once_on_stderr_and_counted(tmp_path: Path) -> None:
    csv = tmp_path / "long.csv"
    csv.write_text("num_prefill_tokens,num_decode_tokens\n9000,10\n100,50\n8000,500\n")
    result = invoke("simulate", "--json", "--trace", str(csv), "--duration", "20", "--in-process")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    n = summary["num_requests"]
    assert 0 < summary["requests_capped"] < n
    notes = [line for line in result.stderr.splitlines() if line.startswith("note:")]
    assert notes == [
        f"note: {summary['requests_capped']:,} of {n:,} requests had prompt + output over the "
        "8,192-token cap (the workload's max_tokens, else the model's context) and were "
        "shortened to fit it; requests_capped in the summary counts them"
    ]
    csv.write_text("num_prefill_tokens,num_decode_tokens\n100,50\n")
    fits = invoke("simulate", "--json", "--trace", str(csv), "--duration", "20", "--in-process")
    assert fits.exit_code == 0, fits.stderr
    assert json.loads(fits.stdout)["requests_capped"] == 0 and "note:" not in fits.stderr


def test_simulate_out_writes_requests_csv_and_summary_json(tmp_path: Path) -> None:
    out = tmp_path / "run" / "nested"
    result = invoke("simulate", "--json", "--out", str(out), *SHORT)
    assert result.exit_code == 0, result.stderr
    header = (out / "requests.csv").read_text(encoding="utf-8").splitlines()[0].split(",")
    assert "request_e2e_time" in header
    rows = (out / "requests.csv").read_text(encoding="utf-8").count("\n") - 1
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    printed = only_json(result.stdout)
    assert rows == summary["num_requests"] == printed["num_requests"]
    assert summary["mean_e2e_s"] == printed["mean_e2e_s"]
    assert str(out) in result.stderr  # says where


def test_simulate_design_file(tmp_path: Path) -> None:
    design = tmp_path / "first_replica.py"
    design.write_text(DESIGN, encoding="utf-8")
    result = invoke("simulate", "--design", str(design), "--duration", "30", "--json")
    assert result.exit_code == 0, result.stderr
    d = only_json(result.stdout)
    check_summary(d)
    assert d["router"] == "FirstReplica"


def test_trace_with_arrivals_is_replayed_as_recorded(tmp_path: Path) -> None:
    trace = small_trace(tmp_path, n=20)
    result = invoke("simulate", "--trace", str(trace), "--json", "--out", str(tmp_path / "o"))
    assert result.exit_code == 0, result.stderr
    d = only_json(result.stdout)
    assert d["num_requests"] == 20
    assert d["workload"]["arrivals"] == "trace"
    assert d["workload"]["qps"] is None  # not rescaled to the preset's 7.5 QPS
    lines = (tmp_path / "o" / "requests.csv").read_text(encoding="utf-8").splitlines()
    col = lines[0].split(",").index("arrived_at")
    assert [float(line.split(",")[col]) for line in lines[1:]] == [0.25 * i for i in range(20)]
    col = lines[0].split(",").index("request_num_prefill_tokens")
    assert [int(line.split(",")[col]) for line in lines[1:]] == [20 + 37 * i for i in range(20)]


def test_trace_without_arrivals_keeps_the_presets_arrival_process(tmp_path: Path) -> None:
    rows = [(0.0, 50 + i, 30 + i) for i in range(10)]
    trace = write_trace(tmp_path / "lengths.csv", rows, arrivals=False)
    result = invoke("simulate", "--trace", str(trace), "--json", "--duration", "30")
    assert result.exit_code == 0, result.stderr
    d = only_json(result.stdout)
    assert d["workload"]["arrivals"] == "lognormal"
    assert d["workload"]["qps"] == 7.5
    assert d["num_requests"] > 10  # lengths are resampled for generated arrivals


def test_cluster_flags_override_the_preset() -> None:
    result = invoke("simulate", "--json", "--replicas", "2", "--qps", "3", "--duration", "30")
    d = only_json(result.stdout)
    assert d["cluster"]["num_replicas"] == 2
    assert d["cluster"]["num_blocks"] == 2240
    assert d["workload"]["qps"] == 3.0
    # Another GPU brings its own memory: the preset's A10 block count no longer applies.
    d = only_json(invoke("simulate", "--json", "--gpu", "h100", "--duration", "30").stdout)
    assert d["cluster"]["gpu"] == "h100"
    assert d["cluster"]["num_blocks"] is None


# --- baselines --------------------------------------------------------------------------------


def test_baselines_json_has_one_object_per_baseline_in_order() -> None:
    result = invoke("baselines", "--json", "--seeds", "1", *SHORT)
    assert result.exit_code == 0, result.stderr
    rows = only_json(result.stdout)
    assert isinstance(rows, list)
    assert [r["router"] for r in rows] == list(BASELINES)
    for r in rows:
        check_summary(r)
        assert r["preset"] == "glia-routing"
    # Same setup for every router: same requests.
    assert len({r["num_requests"] for r in rows}) == 1
    llq = next(r for r in rows if r["router"] == "llq")
    assert llq["mean_e2e_vs_llq"] == 1.0
    for r in rows:
        assert r["mean_e2e_vs_llq"] == pytest.approx(r["mean_e2e_s"] / llq["mean_e2e_s"])
    assert result.stderr.count("simulation_finished") == len(BASELINES)


def test_baselines_over_seeds_report_each_routers_mean() -> None:
    result = invoke("baselines", "--json", "--seeds", "3", "--seed", "2", *SHORT)
    assert result.exit_code == 0, result.stderr
    rows = only_json(result.stdout)
    assert isinstance(rows, list)
    assert all(r["seeds"] == [2, 3, 4] for r in rows)
    assert result.stderr.count("simulation_finished") == 3 * len(BASELINES)
    llq = next(r for r in rows if r["router"] == "llq")
    singles = [glia.simulate("llq", seed=k, duration_s=60.0).summary for k in (2, 3, 4)]
    assert llq["mean_e2e_s"] == pytest.approx(sum(s.mean_e2e_s for s in singles) / 3)
    assert llq["restarts"] == round(sum(s.restarts for s in singles) / 3)


def test_baselines_out_over_seeds_keeps_every_run(tmp_path: Path) -> None:
    result = invoke("baselines", "--out", str(tmp_path), "--seeds", "2", "--duration", "20")
    assert result.exit_code == 0, result.stderr
    for name in BASELINES:
        for k in (0, 1):
            assert (tmp_path / name / f"seed-{k}" / "requests.csv").is_file()


def test_baselines_table_lists_every_router() -> None:
    result = invoke("baselines", "--duration", "30")
    assert result.exit_code == 0, result.stderr
    for name in BASELINES:
        assert name in result.stdout
    assert "1.00x" in result.stdout


def test_baselines_out_writes_json_csvs_and_a_png_chart(tmp_path: Path) -> None:
    result = invoke("baselines", "--out", str(tmp_path), "--duration", "30", "--seeds", "1")
    assert result.exit_code == 0, result.stderr
    png = (tmp_path / "baselines.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) > 10_000
    rows = json.loads((tmp_path / "baselines.json").read_text(encoding="utf-8"))
    assert [r["router"] for r in rows] == list(BASELINES)
    for name in BASELINES:
        header = (tmp_path / name / "requests.csv").read_text(encoding="utf-8").split("\n")[0]
        assert "request_e2e_time" in header
        assert json.loads((tmp_path / name / "summary.json").read_text())["router"] == name


# --- errors -----------------------------------------------------------------------------------


def test_unknown_router() -> None:
    msg = check_error(invoke("simulate", "--router", "nope"))
    assert msg.startswith("unknown router 'nope': choose one of ")
    for name in BASELINES:
        assert name in msg


def test_unknown_preset() -> None:
    msg = check_error(invoke("simulate", "--preset", "nope"))
    assert msg == (
        "unknown preset 'nope': choose one of "
        "azure-autoscale, azure-conv, chat-prefix, diurnal, glia-routing, glia-scheduling, "
        "prefix-heavy, prefix-heavy-bursty, sharegpt-conv"
    )
    check_error(invoke("baselines", "--preset", "nope"), "unknown preset 'nope'")


def test_unknown_gpu() -> None:
    msg = check_error(invoke("simulate", "--gpu", "B300"))
    assert msg.startswith("unknown GPU 'B300': choose one of A10, ")


def test_missing_trace_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.csv"
    msg = check_error(invoke("simulate", "--trace", str(missing)))
    assert msg == f"{missing}: no such file: give an existing CSV trace path"


def test_malformed_trace_names_the_file_and_row(tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "bad.csv", [(0.0, 10, 20), (1.0, 30, -4)])
    msg = check_error(invoke("simulate", "--trace", str(trace)))
    assert msg == f"{trace} row 3: num_decode_tokens is -4: token counts must be positive"


def test_unsorted_arrivals(tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "unsorted.csv", [(0.0, 10, 20), (5.0, 10, 20), (1.0, 10, 20)])
    msg = check_error(invoke("baselines", "--trace", str(trace)))
    assert msg.startswith(f"{trace} row 4: arrived_at 1.0 is earlier than the previous row's 5.0")
    assert msg.endswith("sort the trace by arrival time")


def test_lengths_only_trace_on_a_replay_preset(tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "lengths.csv", [(0.0, 10, 20)], arrivals=False)
    msg = check_error(invoke("simulate", "--preset", "azure-conv", "--trace", str(trace)))
    assert "has no arrived_at column" in msg and "glia-routing" in msg


def test_router_and_design_together(tmp_path: Path) -> None:
    design = tmp_path / "d.py"
    design.write_text(DESIGN, encoding="utf-8")
    msg = check_error(invoke("simulate", "--router", "llq", "--design", str(design)))
    assert msg.startswith("give either --router NAME or --design FILE, not both")


def test_broken_design_file(tmp_path: Path) -> None:
    design = tmp_path / "broken.py"
    design.write_text("from glia.policies import Router\nclass R(Router)\n", encoding="utf-8")
    msg = check_error(invoke("simulate", "--design", str(design), "--duration", "10"))
    assert msg == f"{design}: syntax: design.py:2: expected ':' (at design.py:2: class R(Router))"


def test_invalid_workload_value() -> None:
    msg = check_error(invoke("simulate", "--qps", "0"))
    assert msg == "qps is 0.0: give a positive request rate"


def test_unwritable_out_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory", encoding="utf-8")
    out = blocker / "sub"
    for command in ("simulate", "baselines"):
        msg = check_error(invoke(command, "--out", str(out), "--duration", "10"))
        assert msg.startswith(f"cannot write to {out}: ")
        assert msg.endswith("; choose a writable --out directory")


def test_usage_errors_exit_2() -> None:
    assert invoke("simulate", "--seed", "-1").exit_code == 2
    assert invoke("simulate", "--no-such-flag").exit_code == 2
    assert invoke("no-such-command").exit_code == 2


def test_impossible_cluster_is_a_clear_input_error() -> None:
    # The CLI has no --num-blocks flag; the same GliaError reaches it through glia.simulate.
    with pytest.raises(glia.InputError, match=r"^impossible cluster: request \d+ of "):
        glia.simulate("llq", duration_s=10.0, num_blocks=100)


def test_errors_in_a_real_process_have_no_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "glia", "simulate", "--json", "--router", "nope"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith("error: unknown router 'nope': choose one of ")
    assert len(proc.stderr.splitlines()) == 1


# --- misc -------------------------------------------------------------------------------------


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"glia {glia.__version__}"


def test_logging_goes_to_stderr_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(json=True)
    get_logger("test").info("simulation_finished", router="llq", mean_e2e_s=1.5)
    get_logger("test").debug("hidden")
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    event = json.loads(line)
    assert event["event"] == "simulation_finished"
    assert event["level"] == "info" and event["logger"] == "test"
    assert event["router"] == "llq" and event["mean_e2e_s"] == 1.5


def test_a_modules_logger_names_itself_even_when_configured_after_import(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from glia.runtime._worker import log  # named at import, long before this configuration

    configure_logging(json=True)
    log.bind(run_id="r1").info("experiment_cached")
    event = json.loads(capsys.readouterr().err)
    assert (event["logger"], event["run_id"], event["event"]) == ("glia.worker", "r1",
                                                                  "experiment_cached")  # fmt: skip


def test_logging_console_format(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(json=False)
    get_logger("test").info("simulation_finished", router="hra")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "simulation_finished" in captured.err and "router=hra" in captured.err


def test_calibrate_writes_a_profile_that_simulate_uses(tmp_path: Path) -> None:
    measured = tmp_path / "a10.csv"
    # Twice as slow as the catalogue's A10 at every point.
    lm = glia.ClusterConfig().resolve().latency
    rows = ["kind,prefill_tokens,prefill_ctx,decode_batch,decode_lens,mode,median_ms"]
    shapes = [
        (0, 0, ((1, 128),)), (0, 0, ((32, 512),)), (0, 0, ((128, 600),)),
        (0, 0, ((16, 100), (16, 3000))), (2048, 0, ()), (8192, 0, ()), (512, 1024, ()),
        (256, 0, ((8, 300),)), (1024, 512, ((64, 900),)),
    ]  # fmt: skip
    for p, k, groups in shapes:
        it = glia.sim.Iteration(prefill_tokens=p, prefill_ctx=k, decode=groups)
        lens = "+".join(f"{n}x{c}" for n, c in groups)
        slow_ms = 2e3 * lm.iteration_time(*it.shape())
        rows.append(f"{it.kind},{p},{k},{it.decode_seqs},{lens},graph,{slow_ms}")
    rows.append("decode,0,0,4,4x100,eager,999")  # another mode: not fitted
    measured.write_text("\n".join(rows) + "\n")
    profile = tmp_path / "slow.json"
    result = invoke("calibrate", str(measured), "--gpu", "A10", "--model", "llama-3-8b",
                    "--out", str(profile), "--json")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    fit = only_json(result.stdout)
    assert isinstance(fit, dict)
    assert fit["points"] == len(shapes) and fit["mode"] == "graph"
    assert fit["errors"]["all"]["worst_pct"] < 5
    assert set(fit["held_out"]) == {"mixed"}  # the others leave fewer than 7 points to fit
    fast = only_json(invoke("simulate", "--json", "--duration", "30").stdout)
    slow = only_json(
        invoke("simulate", "--json", "--duration", "30", "--profile", str(profile)).stdout
    )
    assert isinstance(fast, dict) and isinstance(slow, dict)
    assert slow["mean_tpot_s"] > 1.5 * fast["mean_tpot_s"]
    # glia latency with that profile predicts the measurements back, row for row.
    result = invoke("latency", str(measured), "--gpu", "A10", "--model", "llama-3-8b",
                    "--profile", str(profile))  # fmt: skip
    assert result.exit_code == 0, result.stderr
    out = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(out) == len(shapes) + 1
    assert list(out[0]) == [*rows[0].split(","), "predicted_ms", "error_pct"]
    assert all(abs(float(r["error_pct"])) < 5 for r in out[:-1])
    assert "Error against measured (graph rows)" in result.stderr


def test_latency_predicts_a_file_without_measurements(tmp_path: Path) -> None:
    batches = tmp_path / "b.csv"
    batches.write_text(
        "name,prefill_tokens,decode_batch,decode_lens\nbig,8192,0,\nmix,512,32,16x256+16x4096\n"
    )
    result = invoke("latency", str(batches), "--gpu", "H200", "--model", "llama-3-8b", "--json")
    assert result.exit_code == 0, result.stderr
    out = only_json(result.stdout)
    assert isinstance(out, dict) and out["errors"] == {}
    c = glia.sim.catalogue()
    lm = glia.sim.LatencyModel.build(c.gpu("H200")[1], c.model("llama-3-8b")[1])
    want = lm.iteration_time(512, 0, 512 * 513 // 2, 32, 16 * 256 + 16 * 4096, 33) * 1e3
    assert out["rows"][1] == {
        "name": "mix",
        "prefill_tokens": "512",
        "decode_batch": "32",
        "decode_lens": "16x256+16x4096",
        "predicted_ms": round(want, 4),
    }
    fp8 = only_json(invoke("latency", str(batches), "--gpu", "H200", "--model", "llama-3-8b",
                           "--precision", "fp8", "--json").stdout)  # fmt: skip
    assert isinstance(fp8, dict)
    assert fp8["rows"][0]["predicted_ms"] < out["rows"][0]["predicted_ms"]


def test_latency_and_calibrate_errors_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("prefill_tokens,decode_batch,decode_ctx,median_ms\n0,4,100,-3\n")
    msg = check_error(invoke("latency", str(bad), "--gpu", "H200", "--model", "llama-3-8b"))
    assert msg == f"{bad} row 2: median_ms is -3: a measured time must be positive"
    few = tmp_path / "few.csv"
    few.write_text("prefill_tokens,decode_batch,decode_ctx,median_ms\n0,4,100,6\n")
    msg = check_error(invoke("calibrate", str(few), "--gpu", "H200", "--model", "llama-3-8b"))
    assert msg.startswith(
        "calibration fits 7 coefficients and needs at least 7 measured iterations, got 1"
    )
    msg = check_error(
        invoke("latency", str(few), "--gpu", "H200", "--model", "llama-3-8b", "--precision", "int4")
    )
    assert msg == "unknown weight precision 'int4': choose one of bf16, fp16, fp8"


def test_a_profile_that_is_not_one_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"hello": 1}')
    msg = check_error(invoke("simulate", "--profile", str(bad)))
    assert msg.startswith(f"{bad} is not a profile written by `glia calibrate`:")


def test_no_jit_gives_the_same_result() -> None:
    jit = only_json(invoke("simulate", "--json", "--duration", "40").stdout)
    nojit = only_json(invoke("simulate", "--json", "--duration", "40", "--no-jit").stdout)
    assert isinstance(jit, dict) and isinstance(nojit, dict)
    assert {k: v for k, v in jit.items() if k != "wall_s"} == {
        k: v for k, v in nojit.items() if k != "wall_s"
    }


def test_without_nats_a_private_server_and_local_workers_run_it() -> None:
    bus = invoke("simulate", "--json", "--duration", "40")
    local = invoke("simulate", "--json", "--duration", "40", "--in-process")
    assert bus.exit_code == 0 and local.exit_code == 0, bus.stderr + local.stderr
    assert '"worker": "local"' in bus.stderr and "worker_started" in bus.stderr
    assert "worker_started" not in local.stderr
    a, b = only_json(bus.stdout), only_json(local.stdout)
    assert isinstance(a, dict) and isinstance(b, dict)
    assert {k: v for k, v in a.items() if k != "wall_s"} == {
        k: v for k, v in b.items() if k != "wall_s"
    }


def test_in_process_and_nats_together_is_an_error() -> None:
    msg = check_error(invoke("simulate", "--in-process", "--nats", "nats://127.0.0.1:1"))
    assert msg == "give either --nats URL or --in-process, not both"


def test_simulate_closed_loop_reports_ttft_tpot_and_throughput_per_gpu() -> None:
    args = ["simulate", "--concurrency", "8", "--isl", "1024", "--osl", "128", "--gpu", "H200",
            "--replicas", "2", "--num-requests", "64", "--in-process"]  # fmt: skip
    result = invoke(*args)
    assert result.exit_code == 0, result.stderr
    text = " ".join(result.stdout.split())  # the table wraps lines
    assert "1024 in / 128 out tokens, closed loop: 8 concurrent clients, 64 requests" in text
    assert "output tok/s per GPU" in text
    out = only_json(invoke(*args, "--json").stdout)
    assert isinstance(out, dict)
    assert out["num_requests"] == 64
    assert out["workload"]["concurrency"] == 8 and out["workload"]["qps"] is None
    # Two GPUs: per-GPU throughput is half the total.
    assert out["tokens_s_per_gpu"] == pytest.approx(out["throughput_tokens_s"] / 2, rel=0.01)
    assert 0 < out["mean_ttft_s"] < out["mean_e2e_s"]


def test_fp8_kv_cache_doubles_the_derived_kv_capacity() -> None:
    base = ["simulate", "--gpu", "H100", "--duration", "20", "--in-process", "--json"]
    bf16 = only_json(invoke(*base).stdout)
    fp8 = only_json(invoke(*base, "--kv-precision", "fp8").stdout)
    assert isinstance(bf16, dict) and isinstance(fp8, dict)
    c = glia.sim.catalogue()
    blocks = glia.sim.derive_num_blocks(c.gpu("H100")[1], c.model("llama-3-8b")[1], 1, 16)
    fp8_blocks = glia.sim.derive_num_blocks(
        c.gpu("H100")[1], c.model("llama-3-8b")[1], 1, 16, kv_dtype="fp8"
    )
    assert fp8_blocks >= 2 * blocks
    assert fp8["cluster"]["kv_precision"] == "fp8"
    msg = check_error(invoke(*base, "--precision", "int4"))
    assert msg == "unknown weight precision 'int4': choose one of bf16, fp16, fp8"


def test_calibrate_says_when_the_mode_filter_left_too_few_rows(tmp_path: Path) -> None:
    eager = tmp_path / "eager.csv"
    rows = ["prefill_tokens,decode_batch,decode_ctx,mode,median_ms"]
    rows += [f"{p},{b},{k},eager,{5 + p / 100 + b / 10}" for p, b, k in
             [(128, 0, 0), (512, 0, 0), (2048, 0, 0), (0, 1, 100), (0, 8, 100), (0, 64, 500),
              (0, 128, 900), (256, 16, 300)]]  # fmt: skip
    eager.write_text("\n".join(rows) + "\n")
    msg = check_error(invoke("calibrate", str(eager), "--gpu", "H200", "--model", "llama-3-8b"))
    assert msg == (
        f"{eager} has 0 measured rows of mode 'graph' and 8 of other modes: choose them with "
        "--mode (e.g. --mode all)"
    )
    result = invoke("calibrate", str(eager), "--gpu", "H200", "--model", "llama-3-8b", "--mode",
                    "eager", "--json")  # fmt: skip
    assert result.exit_code == 0, result.stderr
