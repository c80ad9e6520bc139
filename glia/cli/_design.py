"""``glia design`` and ``glia report``: the agents' design runs from the command line."""

from __future__ import annotations

import json
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import anyio
import typer
from rich.console import Console
from rich.markup import escape

from glia._errors import GliaError
from glia._logging import configure_logging
from glia.bus import AgentMessage, Event, ProviderRetry, RunStatus, Steered, TrialFinished
from glia.presets import PRESETS
from glia.tasks import DEFAULT_TASK, task_for

from ._app import CredsOpt, JsonOpt, NatsOpt, TrustOpt, _fail, _user_errors

if TYPE_CHECKING:
    from glia._design import DesignStop

__all__ = ["design", "report"]


class _Progress:
    """Live progress of a design run on stderr (stdout stays for ``--json``)."""

    def __init__(self) -> None:
        self.console = Console(stderr=True, highlight=False)

    def __call__(self, ev: Event) -> None:
        c = self.console
        if isinstance(ev, TrialFinished):
            e2e = f"{ev.mean_e2e_s:.2f} s" if ev.mean_e2e_s is not None else "[red]failed[/red]"
            best = f"{ev.best_e2e_s:.2f} s" if ev.best_e2e_s is not None else "-"
            if ev.cost is not None and ev.cost != ev.mean_e2e_s:  # another task's objective
                e2e += f", cost {ev.cost:.3f}"
                best = f"cost {ev.best_cost:.3f}" if ev.best_cost is not None else "-"
            c.print(f"[bold]trial {ev.index}/{ev.budget}[/bold] (context {ev.context}): "
                    f"mean E2E {e2e}   best {best}")  # fmt: skip
            if ev.failure:
                c.print(f"  [dim]{escape(ev.failure)}[/dim]")
        elif isinstance(ev, AgentMessage) and ev.role in ("researcher", "supervisor"):
            text = ev.text if len(ev.text) < 600 else ev.text[:600] + " ..."
            colour = "cyan" if ev.role == "researcher" else "magenta"
            c.print(f"[{colour}]{ev.role} (context {ev.context}):[/{colour}]")
            c.print(text, markup=False)
        elif isinstance(ev, AgentMessage) and ev.role == "coordinator":
            c.print(f"[yellow]{escape(ev.text)}[/yellow]")
        elif isinstance(ev, ProviderRetry):
            c.print(f"[yellow]provider error ({ev.error}): retry {ev.attempt} in "
                    f"{ev.wait_s:.0f} s[/yellow]")  # fmt: skip
        elif isinstance(ev, Steered):
            c.print(f"[bold yellow]{ev.action} from {escape(ev.origin)}[/bold yellow]"
                    + (f": {escape(ev.text)}" if ev.text else ""))  # fmt: skip
        elif isinstance(ev, RunStatus):
            c.print(f"[bold green]{ev.status}[/bold green]: {escape(ev.message)}")


def design(
    task: Annotated[
        str, typer.Option("--task", help="What to design: routing, scheduling or autoscaling.")
    ] = DEFAULT_TASK.name,
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset",
            "-p",
            help=f"Cluster + workload: {', '.join(PRESETS)} [default: the task's: glia-routing, "
            "glia-scheduling, diurnal].",
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        str,
        typer.Option(
            "--model",
            help=(
                "The researcher's model: 'offline' (deterministic non-LLM designer, no key) or a "
                "pydantic-ai model string such as openai:gpt-4.1 (key from the environment)."
            ),
        ),
    ] = "offline",
    supervisor_model: Annotated[
        str | None,
        typer.Option(
            "--supervisor-model",
            help="The supervisor's model (default: --model).",
            show_default=False,
        ),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url",
            help="OpenAI-compatible server for --model (vLLM, Ollama, llama.cpp), e.g. "
            "http://localhost:8000/v1.",
            show_default=False,
        ),
    ] = None,
    budget: Annotated[
        int,
        typer.Option(
            "--budget",
            "-n",
            envvar="GLIA_BUDGET",
            help="Simulations over all contexts (GLIA_BUDGET sets the default).",
        ),
    ] = 15,
    contexts: Annotated[
        int, typer.Option("--contexts", "-k", help="Research contexts sharing the budget.")
    ] = 1,
    sequential: Annotated[
        bool,
        typer.Option(
            "--sequential",
            help="Run contexts one after another, each starting from "
            "the best design so far (default: in parallel).",
        ),
    ] = False,
    max_tokens: Annotated[
        int | None, typer.Option("--max-tokens", help="Token budget.", show_default=False)
    ] = None,
    max_usd: Annotated[
        float | None, typer.Option("--max-usd", help="Dollar budget.", show_default=False)
    ] = None,
    max_wall: Annotated[
        float | None,
        typer.Option("--max-wall", help="Seconds of search at most.", show_default=False),
    ] = None,
    seeds: Annotated[
        int,
        typer.Option(
            "--seeds",
            min=1,
            max=20,
            help="Seeds each simulation averages over (and held-out seeds the best design is "
            "validated on), drawn from a secret made for the run and written to run.json at "
            "its end.",
        ),
    ] = 5,
    settings: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Override a preset field, e.g. --set qps=9 --set num_replicas=8 (repeatable).",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Where run directories go.", file_okay=False)
    ] = Path("glia-runs"),
    resume: Annotated[
        str | None,
        typer.Option(
            "--resume",
            help="Continue an interrupted run (its directory or id).",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            help="Local worker processes without --nats (default: one per core).",
            show_default=False,
            min=1,
        ),
    ] = None,
    nats_url: NatsOpt = None,
    creds: CredsOpt = None,
    trust_design: TrustOpt = False,
    known_seeds: Annotated[
        bool,
        typer.Option(
            "--known-seeds",
            help="Use seeds 0.. and held-out seeds 100.. instead of secret ones, to compare two "
            "runs (a design could then rebuild the workload it is judged on).",
        ),
    ] = False,
    objective: Annotated[
        str,
        typer.Option(
            "--objective",
            help="What a routing design is scored on: mean, p99, slowdown or a '+' mix with "
            "weights, e.g. mean+p99:1,0.5 (mean E2E + 0.5 x p99 E2E).",
        ),
    ] = "mean",
    gate: Annotated[
        bool,
        typer.Option(
            "--gate",
            help="Wait before held-out validation until a person approves the chosen design or "
            "picks another trial (the dashboard, or glia steer RUN approve|pick N; needs --nats).",
        ),
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Let the agents design a policy by experiment, then validate it and write a report.

    Exit status: 0 when the search finished or a budget ran out; 2 for bad input; 3 when the
    model provider kept failing; 4 when the model misbehaved and a context was cut short;
    128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM) when interrupted. The summary
    (or ``--json`` object) is printed in every case but bad input and a second interruption.
    """
    from glia._design import EXIT_CODES, DesignStop, design_async
    from glia.report import Budget

    # The live progress tells the story; per-experiment log lines would drown it.
    configure_logging(level=logging.WARNING)
    b = Budget(simulations=budget, tokens=max_tokens, usd=max_usd, wall_s=max_wall)
    progress = _Progress()
    signals: list[int] = []
    overrides = _settings(settings or [])

    async def main() -> dict[str, Any] | None:
        stop = DesignStop()
        summary: dict[str, Any] | None = None
        error: list[GliaError] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(_on_signals, stop, signals, tg.cancel_scope, progress.console)
            try:
                run = await design_async(
                    task, preset=preset, model=model, supervisor_model=supervisor_model,
                    base_url=base_url, budget=b, contexts=contexts, sequential=sequential,
                    out=out, nats=nats_url, creds=str(creds) if creds else None,
                    workers=workers, resume=resume, on_event=progress,
                    seeds=seeds, settings=overrides, stop=stop, trust_design=trust_design,
                    search_seeds=tuple(range(seeds)) if known_seeds else None,
                    holdout_seeds=tuple(range(100, 100 + seeds)) if known_seeds else None,
                    objective=objective, gate=gate,
                )  # fmt: skip
                summary = run.summary()
            except GliaError as e:  # raised below, as itself rather than in a group
                error.append(e)
            finally:
                tg.cancel_scope.cancel()
        if error:
            raise error[0]
        return summary

    with _user_errors():
        summary = anyio.run(main)
    if summary is None:  # a second signal: stopped at once (the last checkpoint resumes)
        raise typer.Exit(128 + signals[-1])
    _print_summary(summary, json_output)
    kind = summary["stop_kind"]
    raise typer.Exit(128 + signals[0] if kind == "interrupted" else EXIT_CODES.get(kind, 0))


async def _on_signals(
    stop: DesignStop, signals: list[int], scope: anyio.CancelScope, console: Console
) -> None:
    """The first SIGINT or SIGTERM stops the run cleanly (saved, reported, resumable); a
    second one stops it at once."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as received:
        async for signum in received:
            signals.append(signum)
            name = signal.Signals(signum).name
            if len(signals) > 1:
                console.print(f"[red]{name} again: stopping now[/red]")
                scope.cancel()
                return
            console.print(
                f"[yellow]{name}: stopping the run (saving it and writing its report; "
                "send it again to stop at once)[/yellow]"
            )
            stop(f"interrupted by {name}")


def _print_summary(summary: dict[str, Any], json_output: bool) -> None:
    if json_output:
        sys.stdout.write(json.dumps(summary) + "\n")
        sys.stdout.flush()
        return
    c = Console()
    llq = summary["baselines"].get("llq")
    best = summary["best_mean_e2e_s"]
    c.print(f"run {summary['run_id']}: {summary['status']} ({summary['stop_reason']})")
    costs, cost = summary["baseline_costs"], summary["best_cost"]
    task = task_for(summary["task"], summary.get("objective", "mean"))
    if not task.cost_is_latency and cost is not None and costs:
        top = min(costs, key=costs.__getitem__)
        c.print(
            f"best design {summary['best_design_path']}: cost {cost:.3f} = "
            f"{cost / costs[top]:.2f}x the best baseline ({top}, {costs[top]:.3f})"
        )
    elif best is not None:
        ratio = f" = {best / llq:.2f}x LLQ ({llq:.2f} s)" if llq else ""
        c.print(f"best design {summary['best_design_path']}: mean E2E {best:.2f} s{ratio}")
    c.print(f"simulations {summary['simulations_used']}, cost ${summary['cost_usd']:.4f}")
    c.print(f"report: {summary['report_path']}")


def _settings(pairs: list[str]) -> dict[str, object]:
    """``key=value`` pairs, values read as JSON when they parse (numbers), else as text."""
    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            _fail(f"--set {pair!r}: give KEY=VALUE, e.g. --set qps=9")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


def report(
    run: Annotated[Path, typer.Argument(help="A design run's directory.", file_okay=False)],
) -> None:
    """(Re)write the Markdown and HTML report of a design run."""
    from glia.report import write_report

    with _user_errors():
        path = write_report(run)
    if not path.exists():
        _fail(f"no report was written for {run}")
    typer.echo(str(path))
