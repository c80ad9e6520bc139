"""Peak memory of one simulation as the number of requests grows.

Usage: python benchmarks/memory.py [--sizes 10000,100000,1000000]

Each size runs in a fresh subprocess (so peak RSS is its own): ShareGPT first-turn lengths with
Poisson arrivals on 16 A10 replicas at 20 QPS (below saturation) under LLQ, for as long as it
takes to issue that many requests. Reports the process's peak RSS, the RSS after imports, and
the bytes per request of the difference. Target: linear growth, 1M requests within 2 GiB.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = """
import json, resource, sys, time
import glia
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
n = int(sys.argv[1])
t0 = time.perf_counter()
res = glia.simulate(
    "llq", None, trace="sharegpt_first_turn", arrivals="poisson", qps=20.0,
    duration_s=n / 20.0 * 1.5, max_requests=n, num_replicas=16, num_blocks=2240,
)
wall = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"requests": res.summary.num_requests, "base_kib": base, "peak_kib": peak,
                  "wall_s": wall, "mean_e2e_s": res.summary.mean_e2e_s}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    args = parser.parse_args()
    print("| requests | peak RSS (MiB) | RSS after import (MiB) | bytes/request | wall (s) |")
    print("|---|---|---|---|---|")
    for n in (int(x) for x in args.sizes.split(",")):
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(n)], capture_output=True, text=True, check=True
        )
        row = json.loads(out.stdout)
        per = (row["peak_kib"] - row["base_kib"]) * 1024 / row["requests"]
        print(
            f"| {row['requests']:,} | {row['peak_kib'] / 1024:.0f} | {row['base_kib'] / 1024:.0f}"
            f" | {per:.0f} | {row['wall_s']:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
