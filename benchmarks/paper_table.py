"""Reproduce the Glia paper's routing table (mean end-to-end latency per router).

Usage: python benchmarks/paper_table.py [--seeds 10] [--jobs 2] [--preset glia-routing]

Runs every baseline on the preset for seeds 0..N-1 (the paper: 10 seeds) in parallel processes
and prints, per router, the mean over seeds of the mean E2E latency with a 90% bootstrap
confidence interval, the share of requests restarted, and the ratio to LLQ, next to the
paper's figures. Paste the Markdown it prints into benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import platform
from concurrent.futures import ProcessPoolExecutor
from datetime import date

import numpy as np

import glia
from glia.policies import BASELINES

PAPER = {
    "random": 65.5,
    "round-robin": 63.4,
    "lor": 59.6,
    "llq": 54.6,
    "expert": 25.6,
    "hra": 24.1,
}


def _run(args: tuple[str, str, int]) -> tuple[str, int, float, float]:
    router, preset, seed = args
    s = glia.simulate(router, preset, seed=seed).summary
    return router, seed, s.mean_e2e_s, s.requests_restarted / s.num_requests


def _ci(values: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    boots = rng.choice(values, size=(2000, len(values)), replace=True).mean(axis=1)
    lo, hi = np.percentile(boots, [5, 95])
    return float(lo), float(hi)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--preset", default="glia-routing")
    args = parser.parse_args()
    work = [(r, args.preset, s) for r in BASELINES for s in range(args.seeds)]
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(_run, work))
    e2e: dict[str, list[float]] = {r: [] for r in BASELINES}
    restarted: dict[str, list[float]] = {r: [] for r in BASELINES}
    for router, _seed, mean, share in results:
        e2e[router].append(mean)
        restarted[router].append(share)
    rng = np.random.default_rng(0)
    llq = float(np.mean(e2e["llq"]))
    print(
        f"{args.preset}, seeds 0-{args.seeds - 1}, {date.today().isoformat()}, "
        f"{platform.machine()} / Python {platform.python_version()}\n"
    )
    print("| Router | Mean E2E (s) | 90% CI | Restarted | vs LLQ | Paper (s) | Paper vs LLQ |")
    print("|---|---|---|---|---|---|---|")
    for router in sorted(BASELINES, key=lambda r: -float(np.mean(e2e[r]))):
        v = np.asarray(e2e[router])
        lo, hi = _ci(v, rng)
        paper = PAPER.get(router)
        paper_cells = f"{paper} | {paper / PAPER['llq']:.2f}x" if paper else "- | -"
        print(
            f"| {router} | {v.mean():.1f} | [{lo:.1f}, {hi:.1f}] | "
            f"{100 * np.mean(restarted[router]):.1f}% | {v.mean() / llq:.2f}x | {paper_cells} |"
        )


if __name__ == "__main__":
    main()
