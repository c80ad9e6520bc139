"""Autoscaler baselines on the autoscaling presets (LLQ routing).

Usage: python benchmarks/autoscalers.py [--seeds 3]

GPU-hours, mean replicas on, p90 TTFT and TPOT, whether the preset's SLO is met and the task's
objective (GPU-hours x (1 + 10 x the SLO excess)) of every baseline autoscaler, averaged over
the seeds (the Azure preset replays one recorded hour: every seed is the same trace).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from glia import experiment_config
from glia.policies import AUTOSCALERS, resolve_autoscaler, resolve_router
from glia.presets import PRESETS
from glia.sim import build_trace, run_simulation
from glia.tasks import AUTOSCALING, slo_excess


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    seeds = range(parser.parse_args().seeds)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"# {time.strftime('%Y-%m-%d')}, {machine}; llq routing, seeds {list(seeds)}")
    task = AUTOSCALING
    for preset in ("diurnal", "azure-autoscale"):
        slo = PRESETS[preset].slo
        assert slo is not None
        cluster, workload = experiment_config(preset)
        print(f"\n## {preset}\n")
        print("autoscaler | GPU-hours | mean replicas | p90 TTFT (s) | p90 TPOT (ms) | SLO met "
              "| objective")  # fmt: skip
        print("|---|---|---|---|---|---|---|")
        for name in AUTOSCALERS:
            rows, met = [], []
            for s in seeds:
                trace = build_trace(workload, s, max_context=8192)
                r = run_simulation(trace, cluster, resolve_router("llq"), seed=s,
                                   autoscaler=resolve_autoscaler(name)).summary  # fmt: skip
                rows.append((r.gpu_hours, r.mean_replicas, r.p90_ttft_s, r.p90_tpot_s * 1000,
                             task.cost(r, slo)))  # fmt: skip
                met.append(slo_excess(r, slo) == 0.0)
            m = np.mean(rows, axis=0)
            print(f"{name} | {m[0]:.2f} | {m[1]:.2f} | {m[2]:.2f} | {m[3]:.1f} | "
                  f"{sum(met)}/{len(met)} | {m[4]:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
