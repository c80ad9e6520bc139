"""The run report: Markdown, self-contained HTML and figures from a design run's directory."""

from __future__ import annotations

import base64
import re
import shutil
from pathlib import Path

import msgspec
import pytest

import glia
from glia import InputError, SimResult
from glia.policies import BASELINES
from glia.report import (
    Budget,
    LogEntry,
    ModelUsage,
    RunRecord,
    Trial,
    Validation,
    load_record,
    save_record,
    write_report,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
T0 = 1_760_000_000.0
SEEDS = [0, 1, 2]
FIGURES = ("validation.png", "scores.png", "latency_cdf.png")

DESIGN = '''"""Head-room LLQ: least loaded among replicas with KV head room, short prompts first."""

from glia.policies import Router


class HeadRoomLlq(Router):
    name = "headroom-llq"

    def schedule(self, cluster):
        load = [r.num_outstanding for r in cluster.replicas]
        out = []
        for req in sorted(cluster.queue, key=lambda q: q.num_prefill_tokens):
            best = min(range(len(load)), key=lambda i: (load[i], i))
            out.append((best, req))
            load[best] += 1
        return out
'''

# Baseline means on the search seeds, with more digits than the report shows.
BASELINE_MEANS = {
    "random": 73.8123, "round-robin": 74.7456, "lor": 62.7089, "llq": 62.9371,
    "power-of-two": 58.1234, "least-kv": 41.0567, "llm-d": 36.4444, "llm-d-prefix": 36.4444,
    "llm-d-1-1": 37.5012, "llm-d-3-2-2": 36.9876,
    "sglang-cache": 62.9371, "expert": 30.2158, "hra": 30.0049,
}  # fmt: skip
assert set(BASELINE_MEANS) == set(BASELINES)  # every baseline has a figure

RESEARCHER_TEXT = """Trial 3 beats LLQ: <script>alert("x")</script> **bold** | pipe _under_
# not a heading
<!-- an unclosed comment must not hide the rest of the report
```python
if load[i] < load[best]:  # code keeps its <
    best = i
```
"""


@pytest.fixture(scope="module")
def sims() -> dict[str, SimResult]:
    """Three quick real simulations, for realistic per-request CSVs."""
    return {name: glia.simulate(name, duration_s=60.0) for name in ("llq", "hra", "random")}


def _csv(root: Path, rel: str, sim: SimResult) -> str:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(sim.requests.to_csv(), encoding="utf-8")
    return rel


def _trial(
    root: Path, index: int, context: int, sim: SimResult | None, factor: float = 1.0, **kw: object
) -> Trial:
    rel = f"ctx-{context}/trials/trial-{index:03d}.py"
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(DESIGN, encoding="utf-8")
    if sim is None:
        return msgspec.convert(
            {"index": index, "context": context, "design_path": rel, "seeds": SEEDS,
             "at": T0 + 60 * index, **kw},
            Trial,
        )  # fmt: skip
    m = sim.summary.mean_e2e_s * factor
    csv = _csv(root, f"ctx-{context}/results/trial-{index:03d}/seed-0.csv", sim)
    fields = {
        "index": index, "context": context, "design_path": rel, "seeds": SEEDS,
        "mean_e2e_s": m, "score": 20 / m, "per_seed_e2e_s": [m, m, m],
        "summary": sim.summary, "csv_paths": [csv], "at": T0 + 60 * index, **kw,
    }  # fmt: skip
    return msgspec.convert(fields, Trial, from_attributes=True)


def _validation(
    root: Path, workload: str, sims: dict[str, SimResult], missing: str = ""
) -> Validation:
    policies = {"design": sims["hra"], "llq": sims["llq"], "random": sims["random"]}
    csvs = {}
    for name, sim in policies.items():
        rel = f"validation/{workload}/{name}/seed-10.csv"
        csvs[name] = rel if name == missing else _csv(root, rel, sim)
    return Validation(
        workload=workload,
        description=f"The {workload} workload: Poisson-ish arrivals, 4 replicas.",
        seeds=[10, 11],
        mean_e2e_s={n: s.summary.mean_e2e_s * 2 for n, s in policies.items()},
        p99_e2e_s={n: s.summary.p99_e2e_s for n, s in policies.items()},
        csv_paths=csvs,
    )


def _make_run(parent: Path, sims: dict[str, SimResult]) -> Path:
    """A finished two-context run: five trials (one failed), two validated workloads."""
    root = parent / "run-20251009-abc123"
    trials = [
        _trial(root, 1, 0, sims["llq"], 4.3, note="LLQ baseline copy"),
        _trial(root, 2, 1, None, failure="DesignError: routed request | 17 twice", note="dedup"),
        _trial(root, 3, 0, sims["hra"], 2.0, note="LLQ | *fast* _path_ <b>"),
        _trial(root, 4, 1, sims["random"], 2.6, note="random tie-break"),
        _trial(root, 5, 1, sims["hra"], 1.5, note="one seed only", seeds=[0]),
    ]
    log = [
        LogEntry(context=0, role="brief", text="Design a router for glia-routing.", at=T0),
        LogEntry(context=1, role="brief", text="Design a router for glia-routing.", at=T0),
        LogEntry(
            context=0, role="tool", text="run_simulation trial.py: LLQ | copy\n" * 20, at=T0 + 60
        ),
        LogEntry(context=0, role="researcher", text=RESEARCHER_TEXT, at=T0 + 200),
        LogEntry(context=0, role="supervisor", text="Good. Now try *head room*.", at=T0 + 230),
        LogEntry(context=-1, role="coordinator", text="run stopped: budget", at=T0 + 400),
    ]
    record = RunRecord(
        run_id="run-20251009-abc123",
        task="Minimise the mean end-to-end latency of the glia-routing cluster.",
        preset="glia-routing",
        model="openai:gpt-5-mini",
        supervisor_model="ollama:qwen3",
        contexts=2,
        sequential=False,
        budget=Budget(simulations=8, usd=2.0),
        search_seeds=SEEDS,
        started_at=T0,
        status="finished",
        stop_reason="search finished",
        finished_at=T0 + 3725.0,
        trials=trials,
        log=log,
        best_trial=3,
        baselines=BASELINE_MEANS,
        validation=[
            _validation(root, "glia-routing", sims),
            _validation(root, "azure-conv", sims, missing="random"),
        ],
        usage=[
            ModelUsage(
                model="openai:gpt-5-mini",
                requests=42,
                input_tokens=123_456,
                output_tokens=7_890,
                cost_usd=0.1234,
            ),
            ModelUsage(
                model="ollama:qwen3",
                requests=9,
                input_tokens=5_000,
                output_tokens=600,
                priced=False,
            ),
        ],
    )
    save_record(record, str(root / "run.json"))
    return root


@pytest.fixture
def run_dir(tmp_path: Path, sims: dict[str, SimResult]) -> Path:
    """A fresh run directory, not yet reported on."""
    return _make_run(tmp_path, sims)


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory, sims: dict[str, SimResult]) -> Path:
    """A run directory with its report written once (for the tests that only read it)."""
    root = _make_run(tmp_path_factory.mktemp("reported"), sims)
    assert write_report(root) == root / "report.md"
    return root


def test_report_files_and_figures(reported: Path) -> None:
    assert (reported / "report.md").is_file()
    assert (reported / "report.html").is_file()
    for name in FIGURES:
        data = (reported / "figures" / name).read_bytes()
        assert data.startswith(PNG_MAGIC), name
        assert b"matplotlib" not in data  # no software version (or date) in the metadata


def test_markdown_content(reported: Path) -> None:
    text = (reported / "report.md").read_text(encoding="utf-8")
    rec = load_record((reported / "run.json").read_bytes())
    assert text.startswith("# Design run run-20251009-abc123\n")
    assert f"```python\n{DESIGN.rstrip()}\n```" in text
    best = rec.best
    assert best is not None and best.mean_e2e_s is not None
    for name, mean in BASELINE_MEANS.items():
        ratio = mean / best.mean_e2e_s
        assert f"| {name} | {mean:.2f} | {20 / mean:.3f} | {ratio:.2f}x |" in text, name
    for v in rec.validation:
        d = v.mean_e2e_s["design"]
        llq = v.mean_e2e_s["llq"]
        assert f"| llq | {llq:.2f} | {v.p99_e2e_s['llq']:.2f} | {llq / d:.2f}x |" in text
    llq_ratio = best.mean_e2e_s / BASELINE_MEANS["llq"]
    assert f"vs LLQ ({BASELINE_MEANS['llq']:.2f} s): **{llq_ratio:.2f}x**" in text
    assert "simulations: 5 of 8 used (1 failed)" in text
    assert "cost: **$0.1234** of $2.00" in text
    assert "No known price (counted as $0): ollama:qwen3." in text
    assert "started: 2025-10-09 08:53:20 UTC" in text
    # trials: failure shown, the best one marked, markdown in the note escaped
    assert "| `DesignError: routed request \\| 17 twice` |" in text
    assert "| **3 (best)** | 0 | LLQ \\| \\*fast\\* \\_path\\_ \\<b\\> |" in text
    # the missing validation CSV is noted, not fatal
    assert "missing per-request CSV of random on azure-conv: " in text
    for name in FIGURES:
        assert f"(figures/{name})" in text
    # research log: agents' messages quoted, raw HTML neutralised outside code, tools on a line
    assert "> **context 0 · researcher** · +0:03:20" in text
    assert "\\<script>" in text and "\\<!--" in text
    assert "> if load[i] < load[best]:  # code keeps its <" in text
    assert "<script>" not in text.replace("\\<script>", "")
    assert "…`" in text  # the long tool entry is cut to one line
    assert "**run · coordinator** · +0:06:40: run stopped: budget" in text
    assert text.count("Design a router for glia-routing.") == 1
    assert "- **context 1 · brief** · +0:00:00: the same brief as context 0" in text


def test_html_is_escaped_and_self_contained(reported: Path) -> None:
    page = (reported / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "LLQ | *fast* _path_ &lt;b&gt;" in page
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == len(FIGURES)
    assert all(base64.b64decode(i).startswith(PNG_MAGIC) for i in images)
    assert "figures/" not in page  # nothing outside the file is referenced


def test_rendering_is_deterministic(run_dir: Path, tmp_path: Path) -> None:
    write_report(run_dir)
    first = {
        p.name: p.read_bytes() for p in [*run_dir.glob("report.*"), *run_dir.glob("figures/*")]
    }
    copy = shutil.copytree(run_dir, tmp_path / "elsewhere")  # another place, another day
    for stale in [*copy.glob("report.*"), *copy.glob("figures/*")]:
        stale.unlink()
    write_report(copy)
    again = {p.name: p.read_bytes() for p in [*copy.glob("report.*"), *copy.glob("figures/*")]}
    assert again == first


def test_missing_run_json(tmp_path: Path) -> None:
    with pytest.raises(InputError) as e:
        write_report(tmp_path)
    assert str(e.value) == f"no run.json in {tmp_path}: give the directory of a design run"


def test_invalid_run_json(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text('{"run_id": 3}', encoding="utf-8")
    with pytest.raises(InputError, match=r"run\.json is not a design run's record") as e:
        write_report(tmp_path)
    assert str(tmp_path / "run.json") in str(e.value)
    assert "give the directory of a design run" in str(e.value)


def test_run_without_trials_or_validation(tmp_path: Path) -> None:
    record = RunRecord(
        run_id="r0", task="t", preset="glia-routing", model="m", supervisor_model="m",
        contexts=1, sequential=True, budget=Budget(), search_seeds=SEEDS, started_at=T0,
    )  # fmt: skip
    save_record(record, str(tmp_path / "run.json"))
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "scores.png").write_bytes(PNG_MAGIC)  # stale, from an older render
    text = write_report(tmp_path).read_text(encoding="utf-8")
    assert "No design has been evaluated successfully yet." in text
    assert "No validation: it runs after the search." in text
    assert "No trials yet." in text
    assert "Nothing logged yet." in text
    assert "simulations: 0 of 15 used" in text
    assert not list((tmp_path / "figures").iterdir())
    assert "<img" not in (tmp_path / "report.html").read_text(encoding="utf-8")


def test_stopped_run_with_missing_design_file(run_dir: Path) -> None:
    rec = load_record((run_dir / "run.json").read_bytes())
    rec.status, rec.stop_reason, rec.validation = "stopped", "budget: $2.00 spent", []
    save_record(rec, str(run_dir / "run.json"))
    best = rec.best
    assert best is not None
    (run_dir / best.design_path).unlink()
    text = write_report(run_dir).read_text(encoding="utf-8")
    assert f"The design file is missing: {best.design_path}" in text
    assert "No validation: the run ended without it." in text
    assert "status: **stopped** (budget: $2.00 spent)" in text
    assert not (run_dir / "figures" / "validation.png").exists()
    assert (run_dir / "figures" / "scores.png").exists()
