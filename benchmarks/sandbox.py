"""What running a design in the sandbox costs, compared with running it in this process.

Usage: python benchmarks/sandbox.py [--repeats 30]

* fixed overhead: a one-request experiment, in-process vs sandboxed (a fresh ``python -I``
  process behind bubblewrap namespaces and seccomp, the design loaded and checked, setup);
* a whole glia-routing run: the simulator runs here and asks the sandboxed design for each
  routing decision over the channel (a plain-data snapshot out, decisions back), so the cost
  is one round trip per call that can route something.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from functools import partial

import glia
from glia.policies import Router
from glia.sandbox import run_sandboxed

DESIGN = """
from glia.policies import Router

class LeastLoaded(Router):
    def schedule(self, cluster):
        out = []
        load = [r.num_outstanding for r in cluster.replicas]
        for req in cluster.queue:
            best = min(range(len(load)), key=load.__getitem__)
            out.append((best, req))
            load[best] += 1
        return out
"""


def median_s(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    ns: dict[str, object] = {}
    exec(DESIGN, ns)
    router = ns["LeastLoaded"]
    assert isinstance(router, type) and issubclass(router, Router)
    tiny_c, tiny_w = glia.experiment_config("glia-routing", duration_s=5.0, max_requests=1)
    full_c, full_w = glia.experiment_config("glia-routing")
    run_sandboxed(DESIGN, tiny_c, tiny_w)  # warm this process once (kernels, traces)
    rows = []
    for name, c, w, n in (("one request", tiny_c, tiny_w, args.repeats),
                          ("glia-routing (7,124 requests)", full_c, full_w, 5)):  # fmt: skip
        local = median_s(partial(glia.simulate, router, cluster=c, workload=w), n)
        boxed = median_s(partial(run_sandboxed, DESIGN, c, w), n)
        rows.append((name, local, boxed))
    print(f"machine: {platform.platform()}, python {platform.python_version()}")
    print("| experiment | in-process (ms) | sandboxed (ms) | overhead (ms) |")
    print("|---|---|---|---|")
    for name, local, boxed in rows:
        print(f"| {name} | {1e3 * local:.1f} | {1e3 * boxed:.1f} | {1e3 * (boxed - local):.1f} |")


if __name__ == "__main__":
    main()
