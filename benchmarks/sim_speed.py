"""Simulated requests per wall-second, per preset, router and engine mode.

Usage: python benchmarks/sim_speed.py [--repeats N] [--json]

Modes, side by side: ``step`` handles every replica iteration as an event (no kernels);
``ff`` runs decode-only stretches in the compiled fast-forward kernel (the default);
``ff-nojit`` runs the same kernel as plain Python (``GLIA_NO_JIT=1``). All three give identical
results (tests/kernels/test_kernels.py). Each cell is the best of N runs of ``run_simulation`` alone
(trace built beforehand, JIT already warm from the on-disk cache), on one core.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import glia
from glia.policies import resolve_router
from glia.sim import build_trace, run_simulation

CASES = [
    ("glia-routing", "llq"),
    ("glia-routing", "hra"),
    ("azure-conv", "llq"),
    ("azure-conv", "hra"),
    ("sharegpt-conv", "llq"),
]
MODES = {"step": (False, True), "ff": (True, True), "ff-nojit": (True, False)}


def measure(preset: str, router: str, repeats: int) -> dict[str, object]:
    """Best-of-``repeats`` wall time per mode for one preset and router."""
    cluster, workload = glia.experiment_config(preset)
    trace = build_trace(workload, 0, max_context=cluster.resolve().max_context)
    row: dict[str, object] = {"preset": preset, "router": router, "requests": len(trace)}
    for mode, (ff, jit) in MODES.items():
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            run_simulation(trace, cluster, resolve_router(router), fast_forward=ff, jit=jit)
            best = min(best, time.perf_counter() - t0)
        row[f"{mode}_s"] = round(best, 3)
        row[f"{mode}_req_per_s"] = round(len(trace) / best)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    # Warm the kernels (compiled once, then loaded from numba's on-disk cache).
    glia.simulate("llq", duration_s=5.0)
    rows = [measure(p, r, args.repeats) for p, r in CASES]
    if args.json:
        print(json.dumps({"machine": platform.platform(), "rows": rows}))
        return
    print(f"machine: {platform.platform()}, python {platform.python_version()}")
    head = " | ".join(f"{m} s | {m} req/s" for m in MODES)
    print(f"| preset | router | requests | {head} |")
    print("|---" * (3 + 2 * len(MODES)) + "|")
    for row in rows:
        cells = " | ".join(f"{row[f'{m}_s']} | {row[f'{m}_req_per_s']:,}" for m in MODES)
        print(f"| {row['preset']} | {row['router']} | {row['requests']:,} | {cells} |")


if __name__ == "__main__":
    main()
