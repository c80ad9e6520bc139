"""``glia compare``: every method x repeat as an independent design run, then the statistics.

A comparison lives in its ``out`` directory: ``compare.json`` (its settings), one design run
per method and repeat under ``runs/<method>/r<k>/`` with that run's ``result.json`` once it has
finished, and the report (``report.md``, ``report.html``, ``figures/``). Runs go in parallel on
one set of workers (a private server and local workers, or ``nats``). A comparison that is
killed resumes where it stopped: finished runs are read back, runs with a checkpoint resume as
``glia design --resume`` does, the rest start.

Repeat ``k`` of every method uses the same search and held-out seeds (paired repeats: the
methods see the same workloads), drawn from the comparison's ``seed``; the methods' own random
choices are seeded by it too.

The score of a run is its best design's objective on the held-out seeds divided by LLQ's on the
same seeds (``x LLQ``; other tasks: the best baseline's), lower is better. Its curve is the
best-so-far objective on the search seeds after each simulation, divided by LLQ's on those
seeds; a run that stops early keeps its last value. T90 (T95) of a run is the number of
simulations after which its curve comes within 1/0.9 (1/0.95) of the best search cost any
method reached *in the same repeat* (the same workload: repeats differ too much in what can be
gained to share one target; see :func:`glia.compare.sims_to_reach_cost`); a method's T90 is
the number of simulations by which at least half its repeats got there (None: fewer did).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import msgspec
import numpy as np
from pydantic_ai.models import Model

from glia._atomic import write_atomic
from glia._client import Client, connect
from glia._design import DesignRun, design_async
from glia._errors import InputError, unknown_name
from glia.actors._bench import trial_cost
from glia.actors._models import resolve_models
from glia.experiment import Limits
from glia.presets import for_task
from glia.runtime import local_cluster
from glia.tasks import TASKS, parse_objective, task_for

from ._methods import METHODS, Method, parse_methods
from ._records import REFERENCE, CompareConfig, MethodSummary, RunResult
from ._stats import bootstrap_ci, sims_to_reach_cost

__all__ = [
    "CompareConfig",
    "Comparison",
    "MethodSummary",
    "RunResult",
    "compare",
    "compare_async",
    "summarize",
]


@dataclass(frozen=True)
class Comparison:
    """The outcome of a comparison (everything is also in ``out``)."""

    config: CompareConfig
    out: Path
    methods: list[MethodSummary]
    runs: list[RunResult]
    best_cost: float | None
    """The best search cost any run found (relative to the reference); T90 aims at each
    repeat's own best."""
    report_path: Path

    def summary(self) -> dict[str, Any]:
        """The JSON object ``glia compare --json`` prints."""
        return {
            "methods": [m.public() for m in self.methods],
            "report_path": str(self.report_path),
            "best_cost": self.best_cost,
            "score": f"held-out objective / {REFERENCE.upper()}'s on the same seeds (lower is "
            "better)",
        }


def compare(**kwargs: Any) -> Comparison:
    """Run a comparison to its end; the arguments are those of :func:`compare_async`."""
    result: list[Comparison] = []

    async def main() -> None:
        result.append(await compare_async(**kwargs))

    anyio.run(main)
    return result[0]


async def compare_async(
    task: str = "routing",
    *,
    preset: str | None = None,
    methods: str | Sequence[str | Method] = ("glia", "best-of-n", "evolve", "random"),
    repeats: int = 10,
    budget: int = 20,
    model: str | Model = "offline",
    base_url: str | None = None,
    objective: str = "mean",
    out: str | Path = "glia-compare",
    seeds: int = 5,
    seed: int = 0,
    settings: dict[str, Any] | None = None,
    workers: int | None = None,
    parallel: int | None = None,
    nats: str | None = None,
    creds: str | None = None,
    client: Client | None = None,
    trust_design: bool = False,
    on_run: Callable[[RunResult], None] | None = None,
) -> Comparison:
    """Run every method of ``methods`` ``repeats`` times on ``task``/``preset``, each run an
    independent design run with ``budget`` simulations, and report (see the module docstring).

    ``methods`` are names of :data:`glia.compare.METHODS` (a comma-separated string or a list)
    or :class:`~glia.compare.Method` objects; ``model`` is what their researchers use
    (``"offline"``: no language model at all). Each simulation averages ``seeds`` seeds, and
    the best design of each run is validated on as many held-out seeds. ``parallel`` runs go at
    once (default 4) on the workers of ``nats``/``client``, or of a private server and
    ``workers`` local worker processes. ``on_run`` sees each run's result as it finishes. A
    comparison in ``out`` that was stopped resumes without repeating its finished runs.
    """
    chosen = [m if isinstance(m, Method) else METHODS[m] for m in _methods(methods)]
    if repeats < 1:
        raise InputError(f"--repeats {repeats}: give 1 or more (10 for 90 % CIs worth reading)")
    if budget < 1:
        raise InputError(f"--budget {budget}: give 1 or more simulations per run")
    if not 1 <= seeds <= 20:
        raise InputError(f"--seeds {seeds}: give 1 to 20 seeds per simulation")
    if task not in TASKS:
        raise unknown_name("task", task, TASKS)
    if isinstance(model, str) and model != "offline":
        resolve_models(model, base_url)  # an unknown model or a missing key fails now
    preset = preset or TASKS[task].preset
    spec = parse_objective(objective).spec
    for_task(task_for(task, spec), preset)
    config = CompareConfig(
        task=task, preset=preset, budget=budget, seeds=seeds, objective=spec,
        model=model if isinstance(model, str) else model.model_name, seed=seed,
        settings=dict(settings or {}),
    )  # fmt: skip
    root = Path(out).expanduser().resolve()
    _claim(root, config)
    todo: list[tuple[Method, int]] = []
    results: dict[tuple[str, int], RunResult] = {}
    for r in range(repeats):  # repeat by repeat: a comparison cut short has whole repeats
        for m in chosen:
            done = _load_result(root / "runs" / m.name / f"r{r:02d}")
            if done is not None:
                results[(m.name, r)] = done
            else:
                todo.append((m, r))
    if todo:
        limiter = anyio.CapacityLimiter(parallel or 4)
        async with _client(client, nats, creds, root, workers, trust_design) as c:

            async def one(m: Method, r: int) -> None:
                async with limiter:
                    res = await _run(m, r, config, model, base_url, root, c, trust_design)
                results[(m.name, r)] = res
                if on_run is not None:
                    on_run(res)

            async with anyio.create_task_group() as tg:
                for m, r in todo:
                    tg.start_soon(one, m, r)
    runs = [results[(m.name, r)] for m in chosen for r in range(repeats)]
    summaries, best = summarize(runs, [m.name for m in chosen], budget)
    from ._report import write_compare_report

    report = await anyio.to_thread.run_sync(
        lambda: write_compare_report(root, config, chosen, summaries, runs, best)
    )
    return Comparison(config, root, summaries, runs, best, report)


def _methods(methods: str | Sequence[str | Method]) -> list[str | Method]:
    if isinstance(methods, str):
        return list(parse_methods(methods))
    names = [m for m in methods if isinstance(m, str)]
    if names:
        parse_methods(names)  # unknown names fail here
    given = [m.name if isinstance(m, Method) else m for m in methods]
    if not given:
        raise InputError(f"no methods given: name one or more of {', '.join(METHODS)}")
    if len(set(given)) != len(given):
        raise InputError(f"methods {','.join(given)} name a method twice: name each once")
    return list(methods)


def repeat_seeds(seed: int, repeat: int, n: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Search and held-out seeds of ``repeat`` (every method's run of it uses these)."""
    base = 1_000_000 * seed + 1000 * (repeat + 1)
    return tuple(base + i for i in range(n)), tuple(base + 500 + i for i in range(n))


def _claim(root: Path, config: CompareConfig) -> None:
    path = root / "compare.json"
    try:
        root.mkdir(parents=True, exist_ok=True)
        if path.is_file():
            old = msgspec.json.decode(path.read_bytes(), type=CompareConfig)
            if old != config:
                raise InputError(
                    f"{root} holds a comparison with other settings ({_diff(old, config)}): give "
                    "another --out, or the same settings to resume it"
                )
            return
        write_atomic(path, msgspec.json.format(msgspec.json.encode(config)))
    except OSError as e:
        raise InputError(
            f"cannot write the comparison directory {str(root)!r} ({e.strerror}): give --out a "
            "directory you can write to"
        ) from None


def _diff(old: CompareConfig, new: CompareConfig) -> str:
    a, b = msgspec.to_builtins(old), msgspec.to_builtins(new)
    return ", ".join(f"{k} {a[k]!r} there, {b[k]!r} now" for k in a if a[k] != b.get(k))


def _load_result(rdir: Path) -> RunResult | None:
    path = rdir / "result.json"
    if not path.is_file():
        return None
    return msgspec.json.decode(path.read_bytes(), type=RunResult)


async def _run(
    m: Method, r: int, config: CompareConfig, model: str | Model, base_url: str | None,
    root: Path, client: Client, trust_design: bool,
) -> RunResult:  # fmt: skip
    rdir = root / "runs" / m.name / f"r{r:02d}"
    rdir.mkdir(parents=True, exist_ok=True)
    started = sorted(d for d in rdir.iterdir() if (d / "checkpoint.json").is_file())
    setup = m.setup(model, 1000 * config.seed + r, config.budget)
    search, holdout = repeat_seeds(config.seed, r, config.seeds)
    run = await design_async(
        config.task, preset=config.preset, model=setup.researcher,
        supervisor_model=setup.supervisor, base_url=base_url, budget=config.budget,
        contexts=setup.contexts, sequential=setup.sequential, out=rdir, client=client,
        resume=str(started[0]) if started else None, search_seeds=search,
        holdout_seeds=holdout, second_workload=config.preset, settings=dict(config.settings),
        objective=config.objective, trust_design=trust_design,
    )  # fmt: skip
    result = run_result(m.name, r, run, config.budget, root)
    if result.simulations > config.budget:  # the bench refuses past the budget: cannot happen
        raise InputError(
            f"method {m.name} used {result.simulations} simulations of a budget of "
            f"{config.budget}: its design runs must share one budget"
        )
    if run.record.status != "interrupted":
        write_atomic(rdir / "result.json", msgspec.json.format(msgspec.json.encode(result)))
    return result


def run_result(method: str, repeat: int, run: DesignRun, budget: int, root: Path) -> RunResult:
    """What a comparison keeps of a finished design run (see :class:`RunResult`)."""
    rec = run.record
    trials = sorted(rec.trials, key=lambda t: t.index)
    costs = rec.baseline_costs
    ref_name = REFERENCE if REFERENCE in costs else min(costs, key=costs.__getitem__, default="")
    ref = costs.get(ref_name)
    curve: list[float | None] = []
    best: float | None = None
    for t in trials:
        if t.mean_e2e_s is not None and t.seeds == rec.search_seeds and ref:
            c = trial_cost(t) / ref
            best = c if best is None else min(best, c)
        curve.append(best)
    curve = (curve + [best] * budget)[:budget]
    v = rec.validation[0] if rec.validation else None
    score = cost = ref_cost = None
    if v is not None and "design" in v.cost:
        cost = v.cost["design"]
        ref_cost = v.cost.get(ref_name)
        score = cost / ref_cost if ref_cost else None
    return RunResult(
        method=method, repeat=repeat, run_dir=str(run.run_dir.relative_to(root)),
        status=rec.status, stop_reason=rec.stop_reason, budget=budget,
        simulations=len(trials), valid=sum(t.mean_e2e_s is not None for t in trials),
        curve=curve, reference=ref_name, score=score, cost=cost, reference_cost=ref_cost,
        mean_e2e_s=v.mean_e2e_s.get("design") if v else None,
        p50_e2e_s=v.p50_e2e_s.get("design") if v else None,
        p99_e2e_s=v.p99_e2e_s.get("design") if v else None,
        mean_slowdown=v.mean_slowdown.get("design") if v else None,
        reference_mean_e2e_s=v.mean_e2e_s.get(ref_name) if v else None,
        reference_p99_e2e_s=v.p99_e2e_s.get(ref_name) if v else None,
        tokens=sum(u.input_tokens + u.output_tokens for u in rec.usage),
        usd=rec.cost_usd, cpu_s=sum(t.sim_s for t in trials),
    )  # fmt: skip


def _mean(values: Sequence[float | None]) -> float | None:
    ok = [v for v in values if v is not None]
    return float(np.mean(ok)) if ok else None


def summarize(
    runs: Sequence[RunResult], methods: Sequence[str], budget: int
) -> tuple[list[MethodSummary], float | None]:
    """Per-method statistics of ``runs``, and the best search cost any run found.

    Pure: the numbers of a comparison can be checked by hand from its ``result.json`` files.
    """
    finals = [r.curve[-1] for r in runs if r.curve and r.curve[-1] is not None]
    best = min(finals) if finals else None
    per_repeat: dict[int, float] = {}
    for r in runs:
        if r.curve and (c := r.curve[-1]) is not None:
            per_repeat[r.repeat] = min(c, per_repeat.get(r.repeat, c))
    out = []
    for name in methods:
        rs = sorted((r for r in runs if r.method == name), key=lambda r: r.repeat)
        scores = [r.score for r in rs if r.score is not None]
        median, lo, hi = _curve_band(rs, budget)
        sims = sum(r.simulations for r in rs)
        out.append(MethodSummary(
            name=name, repeats=len(rs), scored=len(scores),
            score_mean=float(np.mean(scores)) if scores else None,
            score_median=float(np.median(scores)) if scores else None,
            ci90=bootstrap_ci(scores) if scores else None,
            t90_sims=_half_reached(rs, per_repeat, 0.9),
            t95_sims=_half_reached(rs, per_repeat, 0.95),
            valid_rate=sum(r.valid for r in rs) / sims if sims else None,
            simulations=sims, tokens=sum(r.tokens for r in rs),
            usd=sum(r.usd for r in rs), cpu_s=sum(r.cpu_s for r in rs),
            mean_e2e_s=_mean([r.mean_e2e_s for r in rs]),
            p50_e2e_s=_mean([r.p50_e2e_s for r in rs]),
            p99_e2e_s=_mean([r.p99_e2e_s for r in rs]),
            mean_slowdown=_mean([r.mean_slowdown for r in rs]),
            reference_mean_e2e_s=_mean([r.reference_mean_e2e_s for r in rs]),
            reference_p99_e2e_s=_mean([r.reference_p99_e2e_s for r in rs]),
            curve_median=median, curve_lo=lo, curve_hi=hi,
        ))  # fmt: skip
    return out, best


def paired(
    runs: Sequence[RunResult], a: str, b: str
) -> tuple[float, tuple[float, float], int, int] | None:
    """Method ``a`` against ``b`` repeat by repeat (the same seeds): the mean of ``a``'s score
    minus ``b``'s (negative: ``a`` is better), its bootstrap 90 % CI, the repeats where ``a``
    was strictly better and the repeats both scored; None when none did."""
    sa = {r.repeat: r.score for r in runs if r.method == a and r.score is not None}
    sb = {r.repeat: r.score for r in runs if r.method == b and r.score is not None}
    both = sorted(set(sa) & set(sb))
    if not both:
        return None
    d = [sa[k] - sb[k] for k in both]
    return float(np.mean(d)), bootstrap_ci(d), sum(x < 0 for x in d), len(d)


def _half_reached(
    rs: Sequence[RunResult], per_repeat: dict[int, float], fraction: float
) -> int | None:
    """Simulations by which at least half of ``rs`` came within ``1 / fraction`` of their
    repeat's best (None when fewer than half ever did)."""
    if not rs:
        return None
    reached = sorted(
        t
        if (best := per_repeat.get(r.repeat)) is not None
        and (t := sims_to_reach_cost(r.curve, best, fraction)) is not None
        else float("inf")
        for r in rs
    )
    half = reached[(len(reached) + 1) // 2 - 1]
    return None if half == float("inf") else int(half)


def _curve_band(
    rs: Sequence[RunResult], budget: int
) -> tuple[list[float | None], list[float | None], list[float | None]]:
    median: list[float | None] = []
    lo: list[float | None] = []
    hi: list[float | None] = []
    for i in range(budget):
        col = [r.curve[i] if i < len(r.curve) else None for r in rs]
        if not col or any(v is None for v in col):
            # a repeat with nothing valid yet: the median is undefined while more than half are
            known = sorted(v for v in col if v is not None)
            median.append(
                float(np.median(known + [np.inf] * (len(col) - len(known))))
                if len(known) > len(col) / 2
                else None
            )
            lo.append(None)
            hi.append(None)
            continue
        values = [v for v in col if v is not None]
        median.append(float(np.median(values)))
        a, b = bootstrap_ci(values, statistic="median")
        lo.append(a)
        hi.append(b)
    return median, lo, hi


@asynccontextmanager
async def _client(
    client: Client | None, nats: str | None, creds: str | None, root: Path,
    workers: int | None, trust_design: bool,
) -> AsyncIterator[Client]:  # fmt: skip
    if client is not None:
        yield client
    elif nats is not None:
        async with connect(nats, name="glia-compare", creds=creds) as c:
            yield c
    else:
        # One private server and worker pool for every run; its state (the result cache among
        # it) lives in the comparison's directory, so a resumed comparison finds it again.
        limits = Limits(trusted=True) if trust_design else None
        async with local_cluster(
            workers=workers or os.cpu_count(), store_dir=str(root / "nats"), limits=limits
        ) as c:
            yield c


def dump_json(comparison: Comparison) -> str:
    """``glia compare --json``'s line."""
    return json.dumps(comparison.summary())
