"""The latency model and the closed-loop mode held against real measurements.

Usage: python benchmarks/fidelity.py [--json]

1. Iteration times: every measured file shipped in ``glia/data/measurements`` (graph-mode rows),
   predicted with the catalogue's defaults (no calibration) and with the shipped calibrated
   profile, error per kind; plus the leave-one-kind-out errors of ``glia calibrate``.
2. Closed-loop benchmarks: published real-engine runs with fixed input/output lengths and a
   fixed number of concurrent clients (each source below), replayed with ``WorkloadConfig(
   concurrency=...)``; the error of TTFT, TPOT and output throughput per run.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import glia
from glia.policies import resolve_router
from glia.sim import (
    ClusterConfig,
    LatencyModel,
    WorkloadConfig,
    build_trace,
    calibrate,
    catalogue,
    error_stats,
    load_profile,
    measured,
    predict_ms,
    read_iterations,
    run_simulation,
)

MEASUREMENTS = Path(glia.__file__).parent / "data" / "measurements"


@dataclass(frozen=True)
class Published:
    """One published closed-loop run: setup and what it measured (None: not reported)."""

    source: str
    engine: str
    gpu: str
    tp: int
    model: str
    precision: str
    kv_precision: str
    isl: int
    osl: int
    concurrency: int
    requests: int
    ttft_ms: float | None
    tpot_ms: float | None
    tokens_s: float | None
    """Output tokens per second over all clients."""
    e2e_ms: float | None = None


NIM = "docs.nvidia.com/nim/benchmarking/llm/1.0.0/performance (Llama-3.3-70B, NIM 1.8.0)"
VLLM_CI = "buildkite.com/vllm/performance-benchmark/builds/9515 (latency_llama8B_tp1, H200)"
H100_SWEEP = "yobitelcomm.github.io/bench, 'Recipe: concurrency sweep' (vLLM 0.21)"
A100_SWEEP = "johnmusgrave.com, 'vLLM throughput-latency sweep on NVIDIA A100' (vLLM 0.23)"

PUBLISHED = [
    # NVIDIA NIM 1.8.0 (TensorRT-LLM), 2 x H100 80GB, TP2, Llama-3.3-70B-Instruct FP8.
    *(
        Published(
            NIM,
            "NIM 1.8.0",
            "H100",
            2,
            "llama-3.3-70b",
            "fp8",
            "fp8",
            5000,
            500,
            c,
            max(4 * c, 16),
            ttft,
            tpot,
            thr,
        )
        for c, ttft, tpot, thr in [
            (1, 406.77, 18.58, 51.67),
            (5, 546.7, 21.83, 218.48),
            (25, 688.69, 38.75, 623.4),
            (50, 834.51, 59.73, 814.37),
        ]
    ),
    Published(
        NIM,
        "NIM 1.8.0",
        "H100",
        2,
        "llama-3.3-70b",
        "fp8",
        "fp8",
        500,
        2000,
        1,
        4,
        47.77,
        18.91,
        52.85,
    ),
    # vLLM nightly CI, 1 x H200, Llama-3.1-8B: 32 in / 128 out, a fixed batch of 8: E2E 833 ms.
    Published(
        VLLM_CI,
        "vLLM nightly",
        "H200",
        1,
        "llama-3.1-8b",
        "bf16",
        "bf16",
        32,
        128,
        8,
        8,
        None,
        None,
        None,
        e2e_ms=833.421,
    ),
    # vLLM 0.23, 1 x A100-40GB, Llama-3.1-8B: batch-1 decode at 75 tokens/s, 1,024-token prompt.
    Published(
        A100_SWEEP,
        "vLLM 0.23",
        "A100-40",
        1,
        "llama-3.1-8b",
        "bf16",
        "bf16",
        1024,
        256,
        1,
        20,
        None,
        13.3,
        None,
    ),
    # vLLM 0.21, 1 x H100, Llama-3.1-8B, TPOT p50 over a concurrency sweep (prompts ~300 tokens).
    *(
        Published(
            H100_SWEEP,
            "vLLM 0.21",
            "H100",
            1,
            "llama-3.1-8b",
            "bf16",
            "bf16",
            300,
            256,
            c,
            max(8 * c, 32),
            None,
            tpot,
            None,
        )
        for c, tpot in [(1, 6.48), (4, 6.59), (16, 10.94)]
    ),
]


def iteration_fidelity() -> list[dict[str, object]]:
    """Per measured file: errors of the catalogue defaults, the profile, and held-out kinds."""
    c = catalogue()
    gpu, model = c.gpu("H200")[1], c.model("llama-3-8b")[1]
    profile = load_profile("h200-llama-3-8b")
    rows: list[dict[str, object]] = []
    for path in sorted(MEASUREMENTS.glob("*.csv")):
        pts = measured(read_iterations(path))
        precision = "fp8" if "fp8" in path.name else "bf16"
        for label, eff in (("catalogue", None), ("h200 profile (bf16 fit)", profile)):
            lm = LatencyModel.build(gpu, model, 1, eff, precision)
            stats = error_stats(pts, predict_ms(pts, lm))
            rows.append({"file": path.name, "model": label} | _flat(stats))
        fit = calibrate(pts, "H200", "llama-3-8b", 1, precision)
        rows.append({"file": path.name, "model": "calibrated on this file"} | _flat(fit.errors))
        rows.append(
            {"file": path.name, "model": "each kind held out of the fit"} | _flat(fit.held_out)
        )
    return rows


def _flat(stats: dict[str, glia.sim.ErrorStats]) -> dict[str, object]:
    return {k: f"{s.median_pct:.1f}% / {s.worst_pct:.1f}%" for k, s in stats.items()}


def closed_loop_fidelity() -> list[dict[str, object]]:
    """Each published run replayed in the simulator, with the error of each metric."""
    out = []
    for p in PUBLISHED:
        cluster = ClusterConfig(
            num_replicas=1, gpu=p.gpu, model=p.model, tp=p.tp, precision=p.precision,
            kv_precision=p.kv_precision, max_batch_size=256, chunk_size=8192,
        )  # fmt: skip
        workload = WorkloadConfig(
            concurrency=p.concurrency, isl=p.isl, osl=p.osl, max_requests=p.requests
        )
        trace = build_trace(workload, 0, max_context=cluster.resolve().max_context)
        t = run_simulation(trace, cluster, resolve_router("llq"), workload=workload).requests
        # Steady state: the first round (every client sending at once) is a warm-up, except
        # for a fixed batch (as many requests as clients), which is the whole measurement.
        keep = slice(p.concurrency if p.requests > p.concurrency else 0, None)
        sent, done = t.arrived_at[keep], t.completed_at[keep]
        sim = {
            "ttft_ms": float(t.prefill_e2e_time[keep].mean()) * 1e3,
            "tpot_ms": float(t.decode_time_per_token[keep].mean()) * 1e3,
            "tokens_s": float(t.request_num_decode_tokens[keep].sum()) / (done.max() - sent.min()),
            "e2e_ms": float(t.request_e2e_time[keep].mean()) * 1e3,
        }
        row: dict[str, object] = {
            "setup": f"{p.engine}, {p.tp} x {p.gpu}, {p.model} {p.precision}, "
            f"{p.isl}/{p.osl}, c={p.concurrency}",
            "source": p.source,
        }
        for metric, value in sim.items():
            real = getattr(p, metric)
            row[metric] = (
                f"{real:g} vs {value:.4g} ({100 * (value / real - 1):+.0f}%)"
                if real is not None
                else f"- vs {value:.4g}"
            )
            if real is not None:
                row[f"{metric}_err"] = round(100 * (value / real - 1), 1)
        out.append(row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    iterations, loops = iteration_fidelity(), closed_loop_fidelity()
    if args.json:
        print(json.dumps({"iterations": iterations, "closed_loop": loops}))
        return
    print("| file | model | prefill | decode | mixed | all |  (median / worst abs error)")
    print("|---|---|---|---|---|---|")
    for r in iterations:
        cells = " | ".join(str(r.get(k, "-")) for k in ("prefill", "decode", "mixed", "all"))
        print(f"| {r['file']} | {r['model']} | {cells} |")
    print()
    metrics = ("ttft_ms", "tpot_ms", "e2e_ms", "tokens_s")
    print("| setup | TTFT ms (real vs sim) | TPOT ms | E2E ms | output tok/s |")
    print("|---|---|---|---|---|")
    for r in loops:
        print(f"| {r['setup']} | " + " | ".join(str(r[m]) for m in metrics) + " |")
    errs = {m: [abs(float(str(r[f"{m}_err"]))) for r in loops if f"{m}_err" in r] for m in metrics}
    for m, e in errs.items():
        if e:
            print(f"{m}: median abs error {np.median(e):.0f}% over {len(e)} runs")


if __name__ == "__main__":
    main()
