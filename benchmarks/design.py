"""Design runs: what the offline designer finds, and how multi-context runs use workers.

Usage:
    python benchmarks/design.py search [--budget 20]
    python benchmarks/design.py contexts [--budget 8 --contexts 2 --seeds 3]

* search: ``glia design`` with the offline designer on glia-routing (the paper's setup, 5 search
  seeds, 5 held-out seeds, the second workload) on a private server with one local worker per
  core; prints the best design's held-out mean E2E against every baseline, the trial where it
  first reached 0.6 x LLQ, and the wall time.
* contexts: the same multi-context run on a fresh private nats-server with 1 and then 2
  ``glia worker`` processes (concurrency 1 each); prints the wall times and the speed-up.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import anyio
from scaling import workers  # benchmarks/scaling.py: `glia worker` processes

from glia._client import connect
from glia._design import DesignRun, design, design_async
from glia.bus import nats_server


def _machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def search(budget: int) -> None:
    with TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run = design(budget=budget, out=tmp)
        wall = time.perf_counter() - t0
        _print_search(run, wall)


def _print_search(run: DesignRun, wall: float) -> None:
    rec = run.record
    llq = rec.baselines["llq"]
    first = next(
        (t.index for t in rec.trials if t.mean_e2e_s is not None and t.mean_e2e_s <= 0.6 * llq),
        None,
    )
    print(f"# {time.strftime('%Y-%m-%d')}, {_machine()}")
    print(f"wall {wall:.0f} s, simulations {len(rec.trials)}, status {rec.status} "
          f"({rec.stop_reason})")  # fmt: skip
    print(f"first trial at <= 0.6 x LLQ on the search seeds: {first}")
    for v in rec.validation:
        design_e2e = v.mean_e2e_s["design"]
        print(f"\n{v.workload} (held-out seeds {v.seeds}):")
        for name, e2e in sorted(v.mean_e2e_s.items(), key=lambda kv: kv[1]):
            print(f"  {name:14s} {e2e:8.2f} s   design/this = {design_e2e / e2e:.2f}")
    best = rec.best
    assert best is not None
    print(f"\nbest: trial {best.index} ({best.note})")


async def _contexts_run(n_workers: int, budget: int, contexts: int, seeds: int) -> float:
    with TemporaryDirectory() as tmp:
        async with nats_server(store_dir=Path(tmp) / "js") as server:
            with workers(server.url, n_workers, Path(tmp)):
                async with connect(server.url) as client:
                    t0 = time.perf_counter()
                    await design_async(
                        budget=budget, contexts=contexts, out=Path(tmp) / "runs",
                        client=client, search_seeds=tuple(range(seeds)),
                        holdout_seeds=tuple(range(100, 100 + seeds)),
                    )  # fmt: skip
                    return time.perf_counter() - t0


def contexts(budget: int, n_contexts: int, seeds: int) -> None:
    print(f"# {time.strftime('%Y-%m-%d')}, {_machine()}")
    print(f"{n_contexts} parallel contexts, budget {budget}, {seeds} seeds per simulation")
    walls = {}
    for n in (1, 2):
        walls[n] = anyio.run(_contexts_run, n, budget, n_contexts, seeds)
        print(f"{n} worker(s): {walls[n]:.1f} s")
    print(f"speed-up with 2 workers: {walls[1] / walls[2]:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    s = sub.add_parser("search")
    s.add_argument("--budget", type=int, default=20)
    c = sub.add_parser("contexts")
    c.add_argument("--budget", type=int, default=8)
    c.add_argument("--contexts", type=int, default=2)
    c.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    if args.what == "search":
        search(args.budget)
    else:
        contexts(args.budget, args.contexts, args.seeds)


if __name__ == "__main__":
    main()
