"""Simulated requests per wall-second, per preset and router.

Usage: python benchmarks/sim_speed.py [--repeats N] [--json]

Each cell is the best of N runs (wall time of run_simulation only: the trace is built first),
on one core. Run it on an otherwise idle machine; record the results in benchmarks/README.md.
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


def measure(preset: str, router: str, repeats: int) -> dict[str, float | int | str]:
    """Best-of-``repeats`` simulation speed for one preset and router."""
    cluster, workload = glia.experiment_config(preset)
    trace = build_trace(workload, 0, max_context=cluster.resolve().max_context)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        run_simulation(trace, cluster, resolve_router(router), seed=0, workload=workload)
        best = min(best, time.perf_counter() - t0)
    return {
        "preset": preset,
        "router": router,
        "requests": len(trace),
        "wall_s": round(best, 4),
        "requests_per_s": round(len(trace) / best),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = [measure(p, r, args.repeats) for p, r in CASES]
    if args.json:
        print(json.dumps({"machine": platform.platform(), "rows": rows}))
        return
    print(f"machine: {platform.platform()}, python {platform.python_version()}")
    print(f"{'preset':<15} {'router':<8} {'requests':>9} {'wall s':>8} {'req/s':>9}")
    for row in rows:
        print(
            f"{row['preset']:<15} {row['router']:<8} {row['requests']:>9} "
            f"{row['wall_s']:>8} {row['requests_per_s']:>9}"
        )


if __name__ == "__main__":
    main()
