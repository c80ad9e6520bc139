"""The paper-table routers when replica metrics are scraped, as in front of real engines.

Usage: python benchmarks/staleness.py [--seeds 3] [--preset glia-routing]
       [--intervals 0,0.5,2] [--routers round-robin,llq,hra]

Runs each router on the preset for seeds 0..N-1 with the cluster's ``metrics_interval_s`` at
each interval (0: exact views) and prints a Markdown table of the mean over seeds of the mean
and p99 E2E latency, and the mean's change from exact views. Results are simulated (no
wall-clock timing), so the machine's load does not matter. Paste the table into
benchmarks/README.md.
"""

from __future__ import annotations

import argparse

import numpy as np

import glia


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--preset", default="glia-routing")
    ap.add_argument("--intervals", default="0,0.5,2")
    ap.add_argument("--routers", default="round-robin,llq,hra")
    args = ap.parse_args()
    intervals = [float(x) for x in args.intervals.split(",")]
    routers = args.routers.split(",")
    print("| router | metrics_interval_s | mean E2E (s) | vs exact | mean p99 E2E (s) |")
    print("|---|---|---|---|---|")
    for router in routers:
        exact = 0.0
        for interval in intervals:
            runs = [
                glia.simulate(router, args.preset, seed=s, metrics_interval_s=interval).summary
                for s in range(args.seeds)
            ]
            mean = float(np.mean([r.mean_e2e_s for r in runs]))
            p99 = float(np.mean([r.p99_e2e_s for r in runs]))
            exact = mean if interval == 0.0 else exact
            change = f"{(mean / exact - 1) * 100:+.1f}%" if exact else "-"
            print(f"| {router} | {interval:g} | {mean:.2f} | {change} | {p99:.1f} |")


if __name__ == "__main__":
    main()
