"""Search methods at equal budgets: ``glia compare`` with the offline methods on glia-routing.

Usage:
    python benchmarks/compare.py [--repeats 10 --budget 20 --seeds 5 --out DIR]
        [--methods glia,no-supervisor,glia-mcg,best-of-n,evolve,random]

Runs (or resumes: the same ``--out`` again) the comparison on a private server with one local
worker per core and prints the per-method table, the verdicts (does ``glia`` beat each other
method with non-overlapping 90 % CIs?), the machine and the wall time. The full report is in
``DIR/report.md``. A comparison cut short is finished with fewer ``--repeats``: finished runs
are read back, none is repeated.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import UTC, datetime

from glia.compare import Comparison, compare

ALL = "glia,no-supervisor,glia-mcg,best-of-n,evolve,random"


def _f(v: float | None, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def table(c: Comparison) -> str:
    """The per-method Markdown table of ``benchmarks/README.md``."""
    lines = [
        "| method | runs | score (x LLQ) | 90% CI | T90 | T95 | valid rate | sims | sim CPU-s | "
        "mean E2E (s) | p50 (s) | p99 (s) | LLQ mean (s) | LLQ p99 (s) |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in c.methods:
        ci = f"[{_f(m.ci90[0])}, {_f(m.ci90[1])}]" if m.ci90 else "-"
        t90 = str(m.t90_sims) if m.t90_sims is not None else "not reached"
        t95 = str(m.t95_sims) if m.t95_sims is not None else "not reached"
        lines.append(
            f"| {m.name} | {m.repeats} | {_f(m.score_mean)} | {ci} | {t90} | {t95} | "
            f"{_f(m.valid_rate, 2)} | {m.simulations} | {_f(m.cpu_s, 0)} | "
            f"{_f(m.mean_e2e_s, 2)} | {_f(m.p50_e2e_s, 2)} | {_f(m.p99_e2e_s, 1)} | "
            f"{_f(m.reference_mean_e2e_s, 2)} | {_f(m.reference_p99_e2e_s, 1)} |"
        )
    return "\n".join(lines)


def verdicts(c: Comparison) -> list[str]:
    """``glia`` against every other method: non-overlapping 90 % CIs or not."""
    by = {m.name: m for m in c.methods}
    g = by.get("glia")
    out = []
    for m in c.methods:
        if g is None or m.name == "glia" or g.ci90 is None or m.ci90 is None:
            continue
        if g.ci90[1] < m.ci90[0]:
            out.append(f"glia beats {m.name}: the 90 % CIs do not overlap")
        elif m.ci90[1] < g.ci90[0]:
            out.append(f"{m.name} beats glia: the 90 % CIs do not overlap")
        else:
            out.append(f"glia vs {m.name}: the 90 % CIs overlap (not distinguishable)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default=ALL)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--budget", type=int, default=20)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--parallel", type=int, default=4)
    ap.add_argument("--out", default="glia-compare-bench")
    a = ap.parse_args()
    t0 = time.perf_counter()
    c = compare(methods=a.methods, repeats=a.repeats, budget=a.budget, seeds=a.seeds,
                parallel=a.parallel, out=a.out)  # fmt: skip
    wall = time.perf_counter() - t0
    print(table(c))
    print()
    for v in verdicts(c):
        print(f"- {v}")
    print(
        f"\n{datetime.now(UTC):%Y-%m-%d}, {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; wall {wall:.0f} s (this invocation); "
        f"report {c.report_path}"
    )


if __name__ == "__main__":
    main()
