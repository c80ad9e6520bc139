"""Replica-scheduler baselines on the paper's routing setup (LLQ routing).

Usage: python benchmarks/schedulers.py [--seeds 5]

Mean and p99 end-to-end latency, p99 scheduling delay and p99 time per output token of every
baseline scheduler, averaged over the seeds.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from glia import experiment_config
from glia.policies import SCHEDULERS, resolve_router, resolve_scheduler
from glia.sim import build_trace, run_simulation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    seeds = range(parser.parse_args().seeds)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"# {time.strftime('%Y-%m-%d')}, {machine}; glia-routing, llq, seeds {list(seeds)}")
    cluster, workload = experiment_config("glia-routing")
    print("scheduler | mean E2E (s) | p99 E2E (s) | p99 sched. delay (s) | p99 TPOT (s)")
    for name in SCHEDULERS:
        rows = []
        for s in seeds:
            trace = build_trace(workload, s, max_context=8192)
            r = run_simulation(trace, cluster, resolve_router("llq"), seed=s,
                               scheduler=resolve_scheduler(name)).summary  # fmt: skip
            rows.append((r.mean_e2e_s, r.p99_e2e_s, r.p99_sched_delay_s, r.p99_tpot_s))
        m = np.mean(rows, axis=0)
        print(f"{name} | {m[0]:.2f} | {m[1]:.1f} | {m[2]:.1f} | {m[3]:.4f}")


if __name__ == "__main__":
    main()
