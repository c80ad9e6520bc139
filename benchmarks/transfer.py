"""Rank fidelity: the simulator's ordering of routers against emulated engines serving them.

Usage: python benchmarks/transfer.py [--preset glia-routing] [--duration 200] [--speed 10]
       [--intervals 0,0.5] [--routers round-robin,llq,hra] [--seed 0] [--replicates 8]
       [--jitter 0.001]

For each of the cluster's ``metrics_interval_s`` (0: exact views, the proxy scraping every
0.05 wall s; else the proxy and the simulator both see metrics that old), runs
:func:`glia.engines.transfer` on the preset cut to ``--duration`` simulated seconds: every
router simulated, and served by ``glia serve`` in front of ``glia emulate``'s engines in scaled
real time, measured by ``glia bench``. Each router is simulated ``--replicates`` times (the
trace, and copies with arrivals moved by up to ``--jitter`` simulated s: see
:mod:`glia.engines._transfer`). Prints a Markdown table per interval (the trace's own simulated
mean E2E, the replicates' mean and its spread, the measured mean, their ratio; the same for
p99; completed requests, how far the emulation fell behind real time) and whether the two
rankings agree (Kendall's tau). Wall-clock bound: on a loaded machine, check the lag column (a
run flagged "behind" measured the machine, not the model). Paste the output into
benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import functools
import logging
import time

import anyio

import glia
from glia._logging import configure_logging
from glia.engines import transfer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="glia-routing")
    ap.add_argument("--duration", type=float, default=200.0)
    ap.add_argument("--speed", type=float, default=10.0)
    ap.add_argument("--intervals", default="0,0.5")
    ap.add_argument("--routers", default="round-robin,llq,hra")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--replicates", type=int, default=8)
    ap.add_argument("--jitter", type=float, default=0.001)
    args = ap.parse_args()
    configure_logging(json=False, level=logging.WARNING)
    routers = args.routers.split(",")
    for interval in (float(x) for x in args.intervals.split(",")):
        cluster, workload = glia.experiment_config(
            args.preset, duration_s=args.duration, metrics_interval_s=interval
        )
        started = time.monotonic()
        report = anyio.run(
            functools.partial(
                transfer,
                cluster,
                workload,
                baselines=routers,
                seed=args.seed,
                speed=args.speed,
                replicates=args.replicates,
                jitter_s=args.jitter,
            )
        )
        wall = time.monotonic() - started
        print(f"\n**metrics_interval_s = {interval:g}** ({args.preset}, {args.duration:g} s, "
              f"speed {args.speed:g}, seed {args.seed}, {args.replicates} replicates, jitter "
              f"{report.jitter_s:g} s; {wall:.0f} s of wall time)\n")  # fmt: skip
        print("| router | completed | sim E2E, trace | sim mean ± sd | measured | ratio "
              "| sim p99 | measured | ratio | lag (sim s) |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|---|---|")
        for p in report.policies:
            lag = f"{p.lag_s:.2f}" + (" behind" if p.behind else "")
            print(f"| {p.name} | {p.completed}/{p.requests} | {p.sim_exact_mean_e2e_s:.2f} "
                  f"| {p.sim_mean_e2e_s:.2f} ± {p.sim_sd_e2e_s:.2f} | {p.real_mean_e2e_s:.2f} "
                  f"| {p.mean_ratio:.3f} | {p.sim_p99_e2e_s:.1f} | {p.real_p99_e2e_s:.1f} "
                  f"| {p.p99_ratio:.3f} | {lag} |")  # fmt: skip
        agree = "agree" if report.same_ranking else "DISAGREE"
        print(f"\nKendall's tau {report.kendall_tau:.2f}: the rankings {agree}.")


if __name__ == "__main__":
    main()
