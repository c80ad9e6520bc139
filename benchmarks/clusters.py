"""Baselines on prefix-cached multi-turn chat and on a heterogeneous cluster.

Usage: python benchmarks/clusters.py [--seeds 3]

* chat-prefix: every baseline on the multi-turn chat preset, with its prefix cache (30% of KV
  blocks) and with caching off, mean E2E and mean TTFT over the seeds;
* mixed: every baseline on glia-routing's workload at 15 QPS on 2 x A10 + 2 x A100-80 (each
  group's KV capacity derived from its GPU's memory), mean E2E over the seeds.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from glia import BASELINES, Experiment, experiment_config, run_batch
from glia.sim import ReplicaGroup


def table(experiments: dict[str, list[Experiment]]) -> dict[str, tuple[float, float]]:
    names = list(experiments)
    flat = [e for n in names for e in experiments[n]]
    results = run_batch(flat)
    out, k = {}, 0
    for n in names:
        rs = results[k : k + len(experiments[n])]
        k += len(rs)
        out[n] = (
            float(np.mean([r.summary.mean_e2e_s for r in rs])),
            float(np.mean([r.summary.mean_ttft_s for r in rs])),
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    seeds = range(parser.parse_args().seeds)
    print(f"# {time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}; seeds {list(seeds)}")  # fmt: skip

    on, w = experiment_config("chat-prefix")
    off, _ = experiment_config("chat-prefix", prefix_cache=0.0)
    runs = {
        f"{r}|{label}": [Experiment(cluster=c, workload=w, seed=s, router=r) for s in seeds]
        for r in BASELINES
        for label, c in (("cache", on), ("no cache", off))
    }
    res = table(runs)
    print("\nchat-prefix | mean E2E cache (s) | no cache (s) | mean TTFT cache (s) | no cache (s)")
    for r in sorted(BASELINES, key=lambda r: res[f"{r}|cache"][0]):
        (e1, t1), (e0, t0) = res[f"{r}|cache"], res[f"{r}|no cache"]
        print(f"{r} | {e1:.2f} | {e0:.2f} | {t1:.3f} | {t0:.3f}")

    groups = (ReplicaGroup(count=2), ReplicaGroup(count=2, gpu="A100-80", num_blocks=None))
    mixed, w = experiment_config("glia-routing", groups=groups, num_blocks=2240, qps=15.0)
    runs = {r: [Experiment(cluster=mixed, workload=w, seed=s, router=r) for s in seeds]
            for r in BASELINES}  # fmt: skip
    res = table(runs)
    print("\nmixed 2 x A10 + 2 x A100-80, glia-routing at 15 QPS | mean E2E (s) | mean TTFT (s)")
    for r in sorted(BASELINES, key=lambda r: res[r][0]):
        print(f"{r} | {res[r][0]:.2f} | {res[r][1]:.3f}")


if __name__ == "__main__":
    main()
