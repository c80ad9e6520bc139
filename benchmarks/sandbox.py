"""What running a design in the sandbox costs, compared with running it in this process.

Usage: python benchmarks/sandbox.py [--repeats 30] [--full-repeats 5]

In-process and sandboxed runs alternate (medians of each), so a busy machine's load falls on
both alike. Reported:

* fixed overhead: a one-request experiment, in-process vs sandboxed (a fresh ``python -I``
  process behind bubblewrap namespaces and seccomp, the design loaded and checked, setup);
* a whole glia-routing run: the simulator runs here and asks the sandboxed design for each
  routing decision over the channel (a plain-data snapshot out, decisions back), so the cost
  is one round trip per call that can route something; the per-call cost is the whole run's
  overhead less the fixed one, over the number of router calls.
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


def paired_medians(
    local: Callable[[], object], boxed: Callable[[], object], repeats: int
) -> tuple[float, float]:
    """Medians of ``local`` and ``boxed`` timed in alternation."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, into in ((local, times[0]), (boxed, times[1])):
            t0 = time.perf_counter()
            fn()
            into.append(time.perf_counter() - t0)
    return statistics.median(times[0]), statistics.median(times[1])


def router_calls(router: type[Router], c: glia.ClusterConfig, w: glia.WorkloadConfig) -> int:
    """How many times the simulator calls the router on this experiment."""
    calls = 0

    class Counted(router):  # type: ignore[valid-type,misc]
        def schedule(self, cluster: object) -> object:
            nonlocal calls
            calls += 1
            return super().schedule(cluster)

    glia.simulate(Counted, cluster=c, workload=w)
    return calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--full-repeats", type=int, default=5)
    args = parser.parse_args()
    ns: dict[str, object] = {}
    exec(DESIGN, ns)
    router = ns["LeastLoaded"]
    assert isinstance(router, type) and issubclass(router, Router)
    tiny_c, tiny_w = glia.experiment_config("glia-routing", duration_s=5.0, max_requests=1)
    full_c, full_w = glia.experiment_config("glia-routing")
    run_sandboxed(DESIGN, tiny_c, tiny_w)  # warm this process once (kernels, traces)
    rows = []
    experiments = (
        ("one request", tiny_c, tiny_w, args.repeats),
        ("glia-routing (7,124 requests)", full_c, full_w, args.full_repeats),
    )
    for name, c, w, n in experiments:
        local, boxed = paired_medians(
            partial(glia.simulate, router, cluster=c, workload=w),
            partial(run_sandboxed, DESIGN, c, w),
            n,
        )
        rows.append((name, local, boxed))
    calls = router_calls(router, full_c, full_w)
    print(f"machine: {platform.platform()}, python {platform.python_version()}")
    print("| experiment | in-process (ms) | sandboxed (ms) | overhead (ms) | ratio |")
    print("|---|---|---|---|---|")
    for name, local, boxed in rows:
        print(f"| {name} | {1e3 * local:.1f} | {1e3 * boxed:.1f} | {1e3 * (boxed - local):.1f} "
              f"| {boxed / local:.2f}x |")  # fmt: skip
    fixed = rows[0][2] - rows[0][1]
    per_call = (rows[1][2] - rows[1][1] - fixed) / calls
    print(f"fixed cost {1e3 * fixed:.1f} ms; {calls} router calls, {1e6 * per_call:.1f} us each")


if __name__ == "__main__":
    main()
