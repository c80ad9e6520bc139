"""The run report: ``report.md``, a self-contained ``report.html`` and ``figures/*.png``.

:func:`write_report` reads a run directory's ``run.json`` and the files it names, and writes the
report next to them. It works at any point of a run (no trials yet, no best design, no
validation) and notes missing files instead of failing on them. Nothing in it depends on the
clock, the time zone or the machine, so rendering the same run twice gives the same files.

Why one module of this size: the report's sections, one function each, rendered from one
:class:`~glia.report.RunRecord`.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import numpy as np

from glia._errors import InputError
from glia.tasks import TASKS, task_for

from ._doc import (
    Block,
    Code,
    Heading,
    Image,
    Inline,
    Items,
    Quote,
    Table,
    code,
    em,
    para,
    strong,
    to_html,
    to_markdown,
)
from ._plots import (
    SCORE_SCALE,
    CdfPanel,
    FloatArray,
    best_baseline,
    plot_latency_cdfs,
    plot_scores,
    plot_validation,
    trial_score,
)
from ._records import RunRecord, Trial, Validation, load_record

__all__ = ["read_run", "write_report"]

RECORD = "run.json"
FIGURES = "figures"
_FIG_VALIDATION, _FIG_SCORES, _FIG_CDF = "validation.png", "scores.png", "latency_cdf.png"
_E2E_COLUMN = "request_e2e_time"
_TOOL_CHARS = 160
"""Tool calls are in the log for orientation only: one line, cut to this length."""
_QUOTED = frozenset({"brief", "researcher", "supervisor"})
_DASH = "—"


def read_run(run_dir: str | Path) -> RunRecord:
    """The record (``run.json``) of the design run in ``run_dir``.

    Raises :class:`~glia.InputError` naming the path when there is none or it cannot be decoded.
    """
    path = Path(run_dir) / RECORD
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"no {RECORD} in {run_dir}: give the directory of a design run") from None
    except OSError as e:
        raise InputError(
            f"cannot read {path} ({e.strerror}): give the directory of a design run"
        ) from None
    try:
        return load_record(data)
    except msgspec.DecodeError as e:
        raise InputError(
            f"{path} is not a design run's record ({e}): give the directory of a design run "
            "(a run.json written by `glia design`)"
        ) from None


def write_report(run_dir: str | Path) -> Path:
    """Write ``report.md``, ``report.html`` and ``figures/*.png`` into ``run_dir``.

    Returns the path of ``report.md``. Raises :class:`~glia.InputError` when ``run_dir`` holds
    no readable ``run.json``.
    """
    root = Path(run_dir)
    rec = read_run(root)
    figs = root / FIGURES
    panels, notes = _latency_samples(rec, root)
    made = {
        _FIG_VALIDATION: plot_validation(rec.validation, figs / _FIG_VALIDATION),
        _FIG_SCORES: plot_scores(rec, figs / _FIG_SCORES),
        _FIG_CDF: plot_latency_cdfs(panels, figs / _FIG_CDF),
    }
    for name, ok in made.items():
        if not ok:  # a figure left from an earlier rendering would describe another state
            (figs / name).unlink(missing_ok=True)
    blocks = _report(rec, root, {n for n, ok in made.items() if ok}, notes)
    md = root / "report.md"
    md.write_text(to_markdown(blocks), encoding="utf-8", newline="\n")
    page = to_html(blocks, f"Design run {rec.run_id}", root)
    (root / "report.html").write_text(page, encoding="utf-8", newline="\n")
    return md


# -- data ---------------------------------------------------------------------------------------
def _load_e2e(path: Path) -> FloatArray:
    """The ``request_e2e_time`` column of a per-request CSV."""
    with path.open(newline="", encoding="utf-8") as f:
        rows = csv.reader(f)
        header = next(rows, [])
        if _E2E_COLUMN not in header:
            raise ValueError(f"no {_E2E_COLUMN} column")
        i = header.index(_E2E_COLUMN)
        return np.array([float(r[i]) for r in rows if r], dtype=np.float64)


def _latency_samples(rec: RunRecord, root: Path) -> tuple[list[CdfPanel], list[str]]:
    panels, notes = [], []
    for v in rec.validation:
        samples: dict[str, FloatArray] = {}
        for policy, rel in v.csv_paths.items():
            try:
                samples[policy] = _load_e2e(root / rel)
            except FileNotFoundError:
                notes.append(f"missing per-request CSV of {policy} on {v.workload}: {rel}")
            except (OSError, ValueError, IndexError) as e:
                notes.append(f"unreadable per-request CSV of {policy} on {v.workload}: {rel} ({e})")
        panels.append(CdfPanel(v.workload, samples))
    return panels, notes


# -- formatting ---------------------------------------------------------------------------------
def _s(x: float | None) -> str:
    return _DASH if x is None else f"{x:.2f}"


def _ratio(x: float | None, ref: float | None) -> str:
    return _DASH if x is None or not ref else f"{x / ref:.2f}x"


def _when(ts: float | None) -> str:
    if ts is None:
        return _DASH
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _elapsed(s: float) -> str:
    s = max(0, round(s))
    h, m, sec = s // 3600, s % 3600 // 60, s % 60
    return f"{h}:{m:02d}:{sec:02d}"


def _who(context: int) -> str:
    return "run" if context < 0 else f"context {context}"


# -- sections -----------------------------------------------------------------------------------
def _report(rec: RunRecord, root: Path, figs: set[str], notes: list[str]) -> list[Block]:
    return [
        *_header(rec),
        *_summary(rec),
        *_design(rec, root),
        *_validation(rec, _FIG_VALIDATION in figs),
        *_search(rec, _FIG_SCORES in figs),
        *_latency(rec, _FIG_CDF in figs, notes),
        *_trials(rec),
        *_log(rec),
    ]


def _header(rec: RunRecord) -> list[Block]:
    mode = "in sequence" if rec.sequential else "in parallel (best of the contexts)"
    items: list[tuple[Inline, ...]] = [
        ("preset: ", code(rec.preset)),
        ("researcher model: ", code(rec.model)),
        ("supervisor model: ", code(rec.supervisor_model)),
        (f"contexts: {rec.contexts}, {mode}",),
        ("search seeds: ", ", ".join(map(str, rec.search_seeds)) or _DASH),
        ("status: ", strong(rec.status), *((f" ({rec.stop_reason})",) if rec.stop_reason else ())),
        (f"started: {_when(rec.started_at)}",),
    ]
    if rec.finished_at is not None:
        took = _elapsed(rec.finished_at - rec.started_at)
        items.append((f"finished: {_when(rec.finished_at)} (took {took})",))
    task = Quote((strong("Task"),), rec.task)
    return [Heading(1, f"Design run {rec.run_id}"), task, Items(tuple(items))]


def _summary(rec: RunRecord) -> list[Block]:
    out: list[Block] = [Heading(2, "Summary")]
    best, llq = rec.best, rec.baselines.get("llq")
    top = best_baseline(rec.baselines)
    if best is not None and best.mean_e2e_s is not None:
        m = best.mean_e2e_s
        label = f" ({best.note})" if best.note else ""
        out.append(para(f"Best design: trial {best.index}{label}, context {best.context}, ",
                        code(best.design_path), "."))  # fmt: skip
        lines: list[tuple[Inline, ...]] = [
            ("mean E2E on the search seeds: ", strong(f"{m:.2f} s"),
             f" (score {best.score if best.score is not None else SCORE_SCALE / m:.3f})"),
        ]  # fmt: skip
        if llq:
            lines.append((f"vs LLQ ({llq:.2f} s): ", strong(_ratio(m, llq)), " of its mean E2E"))
        if top is not None:
            b = rec.baselines[top]
            lines.append((f"vs the best baseline, {top} ({b:.2f} s): ", strong(_ratio(m, b)),
                          " of its mean E2E"))  # fmt: skip
        lines += _cost_lines(rec)
        for v in rec.validation:
            d = v.mean_e2e_s.get("design")
            if d is None:
                continue
            vtop = best_baseline(v.mean_e2e_s, exclude="design")
            parts = [f"held out, {v.workload}: design {d:.2f} s"]
            if v.mean_e2e_s.get("llq"):
                parts.append(f"{_ratio(d, v.mean_e2e_s['llq'])} of LLQ")
            if vtop is not None:
                parts.append(f"{_ratio(d, v.mean_e2e_s[vtop])} of {vtop} (best baseline)")
            lines.append((", ".join(parts),))
        out.append(Items(tuple(lines)))
    elif rec.best_trial is not None:
        out.append(para(em(f"The best trial, {rec.best_trial}, is missing from the record.")))
    else:
        out.append(para(em("No design has been evaluated successfully yet.")))
    out += _budget(rec)
    return out


def _cost_lines(rec: RunRecord) -> list[tuple[Inline, ...]]:
    """For scheduling and autoscaling, the task's objective (cost) against the baselines'."""
    best = rec.best
    task = TASKS.get(rec.task)
    if task is not None and rec.objective != "mean":  # a routing objective beyond the mean
        task = task_for(rec.task, rec.objective)
    if task is None or task.cost_is_latency or best is None or best.cost is None:
        return []
    lines: list[tuple[Inline, ...]] = []
    top = min(rec.baseline_costs, key=rec.baseline_costs.__getitem__, default=None)
    if top is not None:
        b = rec.baseline_costs[top]
        lines.append((f"objective (cost) on the search seeds: {best.cost:.3f} vs the best "
                      f"baseline, {top} ({b:.3f}): ", strong(_ratio(best.cost, b))))  # fmt: skip
    for v in rec.validation:
        d = v.cost.get("design")
        others = {n: c for n, c in v.cost.items() if n != "design"}
        if d is not None and others:
            vtop = min(others, key=others.__getitem__)
            lines.append((f"held out, {v.workload}: cost {d:.3f}, {_ratio(d, others[vtop])} of "
                          f"{vtop}'s (best baseline)",))  # fmt: skip
    return lines


def _budget(rec: RunRecord) -> list[Block]:
    b, used = rec.budget, len(rec.trials)
    failed = sum(1 for t in rec.trials if t.mean_e2e_s is None)
    tokens = sum(u.input_tokens + u.output_tokens for u in rec.usage)
    lines: list[tuple[Inline, ...]] = [
        (f"simulations: {used} of {b.simulations} used"
         + (f" ({failed} failed)" if failed else ""),),
        (f"tokens: {tokens:,}" + (f" of {b.tokens:,}" if b.tokens is not None else ""),),
        ("cost: ", strong(f"${rec.cost_usd:.4f}"),
         f" of ${b.usd:.2f}" if b.usd is not None else " (no cost limit)"),
    ]  # fmt: skip
    if b.wall_s is not None:
        lines.append((f"search wall-clock limit: {_elapsed(b.wall_s)}",))
    out: list[Block] = [Items(tuple(lines))]
    if rec.usage:
        rows: list[tuple[Inline, ...]] = [
            (code(u.model), f"{u.requests:,}", f"{u.input_tokens:,}", f"{u.output_tokens:,}",
             f"{u.cost_usd:.4f}" if u.priced else "unpriced")
            for u in rec.usage
        ]  # fmt: skip
        if len(rec.usage) > 1:
            total = (
                sum(u.requests for u in rec.usage),
                sum(u.input_tokens for u in rec.usage),
                sum(u.output_tokens for u in rec.usage),
            )
            rows.append((strong("total"), *(f"{n:,}" for n in total), f"{rec.cost_usd:.4f}"))
        header = ("model", "requests", "input tokens", "output tokens", "cost (USD)")
        out.append(Table(header, tuple(rows), (False, True, True, True, True)))
        unpriced = [u.model for u in rec.usage if not u.priced]
        if unpriced:
            out.append(para(em("No known price (counted as $0): " + ", ".join(unpriced) + ".")))
    return out


def _design(rec: RunRecord, root: Path) -> list[Block]:
    out: list[Block] = [Heading(2, "Best design")]
    best = rec.best
    if best is None:
        return [*out, para(em("None yet."))]
    out.append(para(f"Trial {best.index}, context {best.context}: ", code(best.design_path)))
    try:
        source = (root / best.design_path).read_text(encoding="utf-8") if best.design_path else None
    except OSError:
        source = None
    if source is None:
        return [*out, para(em(f"The design file is missing: {best.design_path or '(no path)'}."))]
    return [*out, Code(source, "python")]


def _validation_table(v: Validation) -> Table:
    d = v.mean_e2e_s.get("design")
    if v.mean_slowdown:  # the tail and the slowdown beside whatever the objective is
        tail = tuple(
            (strong(n) if n == "design" else n, _s(m), _s(v.p99_e2e_s.get(n)),
             _s(v.mean_slowdown.get(n)), _s(v.cost.get(n)), _ratio(m, d))
            for n, m in v.mean_e2e_s.items()
        )  # fmt: skip
        wide = ("policy", "mean E2E (s)", "p99 E2E (s)", "mean slowdown", "cost (objective)",
                  "ratio to design")  # fmt: skip
        return Table(wide, tail, (False, True, True, True, True, True))
    if v.cost:  # scheduling and autoscaling: the task's objective too
        rows = tuple(
            (strong(n) if n == "design" else n, _s(m), _s(v.p99_e2e_s.get(n)),
             _s(v.cost.get(n)), _ratio(m, d))
            for n, m in v.mean_e2e_s.items()
        )  # fmt: skip
        header = ("policy", "mean E2E (s)", "p99 E2E (s)", "cost", "ratio to design")
        return Table(header, rows, (False, True, True, True, True))
    plain = tuple(
        (strong(n) if n == "design" else n, _s(m), _s(v.p99_e2e_s.get(n)), _ratio(m, d))
        for n, m in v.mean_e2e_s.items()
    )
    titles = ("policy", "mean E2E (s)", "p99 E2E (s)", "ratio to design")
    return Table(titles, plain, (False, True, True, True))


def _validation(rec: RunRecord, figure: bool) -> list[Block]:
    out: list[Block] = [Heading(2, "Validation on held-out seeds")]
    if not rec.validation:
        why = "it runs after the search" if rec.status == "running" else "the run ended without it"
        return [*out, para(em(f"No validation: {why}."))]
    out.append(para("The best design and every baseline on seeds the search never saw. "
                    "Ratio to design: the policy's mean E2E over the design's."))  # fmt: skip
    if rec.objective != "mean":
        out.append(para(f"The objective was {rec.objective!r}, not the mean E2E alone; whatever "
                        "the objective, the table shows the mean and p99 E2E and the mean "
                        "slowdown beside it (cost)."))  # fmt: skip
    for v in rec.validation:
        out.append(Heading(3, f"Workload {v.workload}"))
        if v.description:
            out.append(para(v.description))
        out.append(para(f"Held-out seeds: {', '.join(map(str, v.seeds)) or _DASH}."))
        if v.failure:
            out.append(para(strong("The design failed: "), code(v.failure)))
        if v.mean_e2e_s:
            out.append(_validation_table(v))
    if figure:
        out.append(
            Image(f"{FIGURES}/{_FIG_VALIDATION}", "Mean E2E of the best design vs baselines")
        )
    return out


def _search(rec: RunRecord, figure: bool) -> list[Block]:
    out: list[Block] = [Heading(2, "Search")]
    out.append(
        para(
            f"Score = {SCORE_SCALE:g} / mean E2E (s) on the search seeds; higher is better. "
            "Failed trials are crosses on the x axis. The running best counts only trials on all "
            "the search seeds, as the choice of the best design does."
        )
    )
    if figure:
        out.append(Image(f"{FIGURES}/{_FIG_SCORES}", "Score over simulations"))
    else:
        out.append(para(em("No simulations yet.")))
    if rec.baselines:
        best = rec.best
        d = best.mean_e2e_s if best is not None else None
        rows = tuple(
            (n, _s(m), f"{SCORE_SCALE / m:.3f}" if m else _DASH, _ratio(m, d))
            for n, m in rec.baselines.items()
        )
        out.append(para("Baselines on the search seeds:"))
        header = ("baseline", "mean E2E (s)", "score", "ratio to design")
        out.append(Table(header, rows, (False, True, True, True)))
    return out


def _latency(rec: RunRecord, figure: bool, notes: Sequence[str]) -> list[Block]:
    out: list[Block] = [Heading(2, "Latency distributions")]
    if figure:
        out.append(Image(f"{FIGURES}/{_FIG_CDF}", "Per-request E2E latency CDF per policy"))
    elif not notes:
        out.append(para(em("No per-request validation results to plot.")))
    if notes:
        out.append(Items(tuple((em(n),) for n in notes)))
    return out


def _trial_row(t: Trial, best: int | None) -> tuple[Inline, ...]:
    score = trial_score(t)
    return (
        strong(f"{t.index} (best)") if t.index == best else str(t.index),
        str(t.context),
        t.note,
        _s(t.mean_e2e_s),
        _DASH if score is None else f"{score:.3f}",
        code(t.failure) if t.failure else "",
    )


def _trials(rec: RunRecord) -> list[Block]:
    out: list[Block] = [Heading(2, "Trials")]
    if not rec.trials:
        return [*out, para(em("No trials yet."))]
    rows = tuple(_trial_row(t, rec.best_trial) for t in sorted(rec.trials, key=lambda t: t.index))
    header = ("trial", "context", "note", "mean E2E (s)", "score", "failure")
    return [*out, Table(header, rows, (True, True, False, True, True, False))]


def _short(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _TOOL_CHARS else line[: _TOOL_CHARS - 1] + "…"


def _log(rec: RunRecord) -> list[Block]:
    out: list[Block] = [Heading(2, "Research log")]
    if not rec.log:
        return [*out, para(em("Nothing logged yet."))]
    pending: list[tuple[Inline, ...]] = []  # consecutive one-line entries share a list
    briefs: dict[str, int] = {}  # every context of a run gets the same long brief: show it once
    for e in rec.log:
        when = f"+{_elapsed(e.at - rec.started_at)}"
        first = briefs.setdefault(e.text, e.context) if e.role == "brief" else e.context
        if first != e.context:
            head = strong(f"{_who(e.context)} · brief")
            pending.append((head, f" · {when}: the same brief as {_who(first)}"))
        elif e.role in _QUOTED:
            if pending:
                out.append(Items(tuple(pending)))
                pending = []
            out.append(Quote((strong(f"{_who(e.context)} · {e.role}"), f" · {when}"), e.text))
        elif e.role == "tool":
            pending.append((f"{_who(e.context)} · tool · {when}: ", code(_short(e.text))))
        else:
            pending.append((strong(f"{_who(e.context)} · {e.role}"), f" · {when}: {e.text}"))
    if pending:
        out.append(Items(tuple(pending)))
    return out
