"""``glia latency`` and ``glia calibrate``: the latency model held against measured iterations.

``glia latency`` predicts the time of each iteration in a CSV (and its error where the CSV has a
measured time); ``glia calibrate`` fits every coefficient of the model to such a file and saves a
profile for ``--profile``.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Annotated

import msgspec
import typer
from rich.console import Console
from rich.table import Table

from glia._errors import InputError
from glia._logging import configure_logging
from glia.sim import (
    CalibrationResult,
    Efficiency,
    ErrorStats,
    LatencyModel,
    catalogue,
    error_stats,
    load_profile,
    measured,
    predict_ms,
    read_iterations,
)
from glia.sim import calibrate as fit_profile

from ._app import JsonOpt, KvPrecisionOpt, PrecisionOpt, _user_errors

__all__ = ["calibrate", "latency"]

ItersArg = Annotated[
    str,
    typer.Argument(
        help=(
            "CSV of iterations: prefill_tokens, decode_batch, decode_ctx or decode_lens "
            "(e.g. 16x256+16x4096), optional prefill_ctx, prefill_seqs, median_ms, mode; or "
            "batch_size,context_tokens,prefill_tokens,time_ms. Or a shipped measurement: "
            "h200-llama-3-8b, h200-llama-3-8b-fp8."
        ),
        show_default=False,
    ),
]
GpuReq = Annotated[str, typer.Option("--gpu", help="GPU kind (see `glia simulate --help`).")]
ModelReq = Annotated[str, typer.Option("--model", help="Model served.")]
TpReq = Annotated[int, typer.Option("--tp", min=1, help="Tensor-parallel degree.")]
ModeOpt = Annotated[
    str,
    typer.Option(
        "--mode",
        help="Measurements to use where the CSV has a mode column ('all': every row).",
    ),
]


def latency(
    iterations: ItersArg,
    gpu: GpuReq,
    model: ModelReq,
    tp: TpReq = 1,
    precision: PrecisionOpt = None,
    kv_precision: KvPrecisionOpt = None,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            help="Profile from `glia calibrate` (a file, or a shipped one: h200-llama-3-8b).",
            show_default=False,
        ),
    ] = None,
    mode: ModeOpt = "graph",
    json_output: JsonOpt = False,
) -> None:
    """Predict each iteration's time with the latency model, beside its measurement if any.

    Prints the CSV with a predicted_ms column added (and error_pct where the row has a
    measured median_ms or time_ms); a summary of errors per kind goes to stderr.
    """
    configure_logging()
    with _user_errors():
        its = read_iterations(iterations)
        eff = load_profile(profile) if profile is not None else None
        _, g = catalogue().gpu(gpu)
        _, m = catalogue().model(model)
        lm = LatencyModel.build(g, m, tp, eff, precision, kv_precision)
    pred = predict_ms(its, lm)
    rows = []
    for it, p in zip(its, pred, strict=True):
        row: dict[str, object] = dict(it.fields)
        row["predicted_ms"] = round(float(p), 4)
        if it.measured_ms is not None:
            row["error_pct"] = round(100 * (float(p) / it.measured_ms - 1), 2)
        rows.append(row)
    pts = measured(its, None if mode == "all" else mode)
    index = {id(it): i for i, it in enumerate(its)}
    stats = error_stats(pts, pred[[index[id(p)] for p in pts]]) if pts else {}
    if json_output:
        out = {"rows": rows, "errors": stats}
        sys.stdout.write(msgspec.json.encode(out).decode() + "\n")
        return
    columns = [*its[0].fields, "predicted_ms"]
    if any("error_pct" in r for r in rows):
        columns.append("error_pct")
    writer = csv.DictWriter(sys.stdout, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    if stats:
        Console(stderr=True).print(_error_table(f"Error against measured ({mode} rows)", stats))


def calibrate(
    measurements: ItersArg,
    gpu: Annotated[str, typer.Option("--gpu", help="GPU kind the measurements come from.")],
    model: Annotated[str, typer.Option("--model", help="Model that was served.")],
    tp: TpReq = 1,
    precision: PrecisionOpt = None,
    kv_precision: KvPrecisionOpt = None,
    mode: ModeOpt = "graph",
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write the profile here (JSON).", dir_okay=False),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Fit every coefficient of the latency model to measured iteration times.

    Reports the error per kind of iteration (prefill, decode, mixed), and per kind predicted by
    a fit on the other kinds alone; saves a profile for --profile with --out.
    """
    configure_logging()
    with _user_errors():
        its = read_iterations(measurements)
        pts = measured(its, None if mode == "all" else mode)
        others = len(measured(its, None)) - len(pts)
        if others and len(pts) < len(Efficiency.__struct_fields__):  # the coefficients to fit
            raise InputError(
                f"{measurements} has {len(pts)} measured rows of mode {mode!r} and {others} of "
                "other modes: choose them with --mode (e.g. --mode all)"
            )
        fit = fit_profile(pts, gpu, model, tp, precision, kv_precision)
    fit = msgspec.structs.replace(fit, source=str(measurements))
    data = msgspec.json.format(msgspec.json.encode(fit), indent=2) + b"\n"
    if out is not None:
        try:
            out.write_bytes(data)
        except OSError as e:
            typer.echo(f"error: cannot write {out}: {e.strerror}", err=True)
            raise typer.Exit(2) from None
    if json_output:
        sys.stdout.write(data.decode())
        return
    console = Console()
    console.print(_coefficients(fit))
    console.print(_error_table("Error of the fit", fit.errors))
    if fit.held_out:
        console.print(_error_table("Each kind predicted by a fit on the others", fit.held_out))
    if out is not None:
        Console(stderr=True).print(f"Wrote {out}: use it with --profile {out}", highlight=False)


def _coefficients(fit: CalibrationResult) -> Table:
    table = Table(title=f"Latency profile: {fit.gpu} x {fit.model}, tp={fit.tp}")
    table.add_column("coefficient")
    table.add_column("value", justify="right")
    for name in fit.efficiency.__struct_fields__:
        table.add_row(name, f"{getattr(fit.efficiency, name):.4g}")
    table.add_row("points", str(fit.points))
    return table


def _error_table(title: str, stats: dict[str, ErrorStats]) -> Table:
    table = Table(title=title)
    for col in ("kind", "points", "median error", "worst error", "worst row"):
        table.add_column(col, justify="left" if col == "kind" else "right")
    for kind, s in stats.items():
        table.add_row(
            kind, str(s.points), f"{s.median_pct:.1f}%", f"{s.worst_pct:.1f}%", str(s.worst_row)
        )
    return table
