"""``glia bench``: a preset's workload replayed against a real OpenAI-compatible endpoint."""

from __future__ import annotations

import sys
from typing import Annotated

import anyio
import msgspec
import typer
from rich.console import Console
from rich.table import Table

from glia._logging import configure_logging
from glia.engines import BenchOutcome
from glia.engines import bench as run_bench
from glia.sim import WorkloadConfig, build_trace

from ._app import (
    ConcurrencyOpt,
    DurationOpt,
    IslOpt,
    JsonOpt,
    NumRequestsOpt,
    OslOpt,
    OutOpt,
    PresetOpt,
    QpsOpt,
    SeedOpt,
    TraceOpt,
    _cannot_write,
    _prepare_out,
    _user_errors,
)
from ._setup import experiment_setup

__all__ = ["bench"]


def bench(
    endpoint: Annotated[
        str,
        typer.Option(
            "--endpoint",
            help="Base URL of an OpenAI-compatible server (vLLM, SGLang, llama.cpp, a proxy).",
        ),
    ],
    preset: PresetOpt = "glia-routing",
    trace: TraceOpt = None,
    qps: QpsOpt = None,
    duration: DurationOpt = None,
    concurrency: ConcurrencyOpt = None,
    isl: IslOpt = None,
    osl: OslOpt = None,
    num_requests: NumRequestsOpt = None,
    speed: Annotated[
        float,
        typer.Option(
            "--speed",
            help="Simulated seconds per wall second of the endpoint (an emulated engine's).",
        ),
    ] = 1.0,
    model: Annotated[
        str | None,
        typer.Option(
            "--model", help="Model name to request [default: the first listed].", show_default=False
        ),
    ] = None,
    vocab: Annotated[
        int, typer.Option("--vocab", min=2, help="Prompt token ids are drawn below this.")
    ] = 1000,
    text_prompts: Annotated[
        bool,
        typer.Option(
            "--text-prompts",
            help="Send prompts as text, a word w<id> per token (servers without token-id prompts).",
        ),
    ] = False,
    api_key: Annotated[
        str,
        typer.Option(
            "--api-key",
            envvar="GLIA_BENCH_API_KEY",
            show_default=False,
            help="Bearer token for the endpoint (env GLIA_BENCH_API_KEY).",
        ),
    ] = "EMPTY",
    seed: SeedOpt = 0,
    out: OutOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Replay a workload against a real endpoint; measure TTFT, TPOT and E2E per request.

    The workload is the preset's (or --trace's), open-loop at its arrival times or closed-loop
    with --concurrency, as in `glia simulate`; --out writes the same requests.csv and
    summary.json columns as `glia simulate --out`, so the two compare column for column.
    """
    configure_logging()
    with _user_errors():
        cluster, workload = experiment_setup(
            preset, trace=trace, qps=qps, duration=duration, concurrency=concurrency, isl=isl,
            osl=osl, max_requests=num_requests,
        )  # fmt: skip
        requests = build_trace(workload, seed, max_context=cluster.resolve().max_context)
        _prepare_out(out)
        with Console(stderr=True).status(
            f"Sending {len(requests):,} requests to {endpoint} ...", spinner="dots"
        ):
            outcome = anyio.run(
                lambda: run_bench(
                    endpoint,
                    requests,
                    model=model,
                    speed=speed,
                    seed=seed,
                    vocab=vocab,
                    api_key=api_key,
                    text_prompts=text_prompts,
                )
            )
    record = _record(outcome, endpoint, preset, seed, workload)
    for f in outcome.failures[:5]:
        typer.echo(f"note: request {f.request} failed: {f.error}", err=True)
    if len(outcome.failures) > 5:
        typer.echo(f"note: {len(outcome.failures) - 5} more requests failed", err=True)
    if json_output:
        sys.stdout.write(msgspec.json.encode(record).decode() + "\n")
    else:
        Console().print(_table(outcome, endpoint))
    if out is not None:
        try:
            (out / "requests.csv").write_text(outcome.requests.to_csv(), encoding="utf-8")
            summary = msgspec.json.format(msgspec.json.encode(record)) + b"\n"
            (out / "summary.json").write_bytes(summary)
        except OSError as e:
            _cannot_write(out, e)
        typer.echo(f"Wrote {out / 'requests.csv'} and {out / 'summary.json'}", err=True)


def _record(
    outcome: BenchOutcome, endpoint: str, preset: str, seed: int, workload: WorkloadConfig
) -> dict[str, object]:
    return {
        "endpoint": endpoint,
        "model": outcome.model,
        "preset": preset,
        "seed": seed,
        "failed": len(outcome.failures),
        **msgspec.to_builtins(outcome.summary),
        "workload": msgspec.to_builtins(workload),
    }


def _table(outcome: BenchOutcome, endpoint: str) -> Table:
    s = outcome.summary
    table = Table(title=f"{outcome.model} at {endpoint}", title_justify="left")
    table.add_column("metric")
    for col in ("mean", "p50", "p90", "p99"):
        table.add_column(col, justify="right")
    for label, key, scale, fmt in (
        ("E2E latency (s)", "e2e_s", 1.0, "{:.2f}"),
        ("TTFT (s)", "ttft_s", 1.0, "{:.3f}"),
        ("TPOT (ms)", "tpot_s", 1e3, "{:.1f}"),
    ):
        values = [getattr(s, f"{stat}_{key}") * scale for stat in ("mean", "p50", "p90", "p99")]
        table.add_row(label, *(fmt.format(v) for v in values))
    table.caption = (
        f"{s.num_requests:,} requests completed, {len(outcome.failures)} failed; "
        f"{s.throughput_rps:.2f} req/s, {s.throughput_tokens_s:,.0f} output tok/s"
    )
    return table
