"""``glia compare``: search methods x repeats at equal budgets, with CIs, curves and tails."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import anyio
import typer
from rich.console import Console

from glia._logging import configure_logging
from glia.presets import PRESETS
from glia.tasks import DEFAULT_TASK

from ._app import CredsOpt, JsonOpt, NatsOpt, TrustOpt, _user_errors
from ._design import _settings

if TYPE_CHECKING:
    from glia.compare import RunResult

__all__ = ["compare"]

_DEFAULT_METHODS = "glia,best-of-n,evolve,random"


def compare(
    task: Annotated[
        str, typer.Option("--task", help="What to design: routing, scheduling or autoscaling.")
    ] = DEFAULT_TASK.name,
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset",
            "-p",
            help=f"Cluster + workload: {', '.join(PRESETS)} [default: the task's].",
            show_default=False,
        ),
    ] = None,
    methods: Annotated[
        str,
        typer.Option(
            "--methods",
            help="Comma-separated: glia, glia-mcg, glia-mcg-sequential, no-supervisor, best-of-n, "
            "evolve, random.",
        ),
    ] = _DEFAULT_METHODS,
    repeats: Annotated[
        int, typer.Option("--repeats", "-r", help="Independent design runs per method.")
    ] = 10,
    budget: Annotated[
        int,
        typer.Option("--budget", "-n", help="Simulations per run (failed designs spend it too)."),
    ] = 20,
    model: Annotated[
        str,
        typer.Option(
            "--model",
            help="The researchers' model: 'offline' (no language model, no key) or a "
            "pydantic-ai model string such as openai:gpt-4.1.",
        ),
    ] = "offline",
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url", help="OpenAI-compatible server for --model.", show_default=False
        ),
    ] = None,
    objective: Annotated[
        str,
        typer.Option(
            "--objective",
            help="What a routing design is scored on: mean, p99, slowdown or a '+' mix with "
            "weights, e.g. mean+p99:1,0.5.",
        ),
    ] = "mean",
    seeds: Annotated[
        int,
        typer.Option(
            "--seeds",
            min=1,
            max=20,
            help="Seeds per simulation (and held-out seeds per validation).",
        ),
    ] = 5,
    seed: Annotated[
        int,
        typer.Option("--seed", min=0, help="Draws every repeat's seeds and the methods' choices."),
    ] = 0,
    settings: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="Override a preset field, e.g. --set qps=9.", show_default=False
        ),
    ] = None,
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="The comparison's directory (run it again with the same settings to resume).",
            file_okay=False,
        ),
    ] = Path("glia-compare"),
    parallel: Annotated[int, typer.Option("--parallel", min=1, help="Design runs at once.")] = 4,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help="Local worker processes without --nats (default: one per core).",
            show_default=False,
        ),
    ] = None,
    nats_url: NatsOpt = None,
    creds: CredsOpt = None,
    trust_design: TrustOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Compare search methods at equal simulation budgets: every method x repeat is an
    independent design run; the report gives held-out scores with bootstrap 90 % CIs, search
    curves, T90/T95, valid-candidate rates, tokens, dollars, simulator CPU-seconds and the tail
    latencies of each best design. A stopped comparison resumes when run again."""
    from glia.compare import compare_async

    configure_logging(level=logging.WARNING)
    console = Console(stderr=True, highlight=False)
    overrides = _settings(settings or [])

    def progress(r: RunResult) -> None:
        score = f"{r.score:.3f}" if r.score is not None else "no design"
        console.print(
            f"[bold]{r.method}[/bold] repeat {r.repeat}: score {score} x {r.reference.upper()}, "
            f"{r.valid}/{r.simulations} valid ({r.status})"
        )

    async def main() -> str:
        c = await compare_async(
            task, preset=preset, methods=methods, repeats=repeats, budget=budget, model=model,
            base_url=base_url, objective=objective, out=out, seeds=seeds, seed=seed,
            settings=overrides, workers=workers, parallel=parallel, nats=nats_url,
            creds=str(creds) if creds else None, trust_design=trust_design, on_run=progress,
        )  # fmt: skip
        from glia.compare._compare import dump_json

        if json_output:
            return dump_json(c)
        lines = [f"{'method':<14} {'runs':>4} {'score':>7} {'90% CI':>17} {'T90':>4} {'valid':>6}"]
        for m in c.methods:
            ci = f"[{m.ci90[0]:.3f}, {m.ci90[1]:.3f}]" if m.ci90 else "-"
            score = f"{m.score_mean:.3f}" if m.score_mean is not None else "-"
            t90 = str(m.t90_sims) if m.t90_sims is not None else "-"
            valid = f"{m.valid_rate:.2f}" if m.valid_rate is not None else "-"
            lines.append(f"{m.name:<14} {m.repeats:>4} {score:>7} {ci:>17} {t90:>4} {valid:>6}")
        lines.append(f"report: {c.report_path}")
        return "\n".join(lines)

    with _user_errors():
        text = anyio.run(main)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
