"""The ``glia`` application: the Typer app, the options its commands share, and how errors
and JSON reach the user."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import msgspec
import typer

import glia
from glia._errors import GliaError, InputError
from glia.experiment import DesignFailed
from glia.presets import PRESETS
from glia.sim import (
    catalogue,
)
from glia.tasks import TASKS

REFERENCE_ROUTER = "llq"
"""The router ``glia baselines`` compares every other one against (the paper's yardstick)."""

app = typer.Typer(
    name="glia",
    help=(
        "Glia: design and test routing policies for LLM-serving clusters in a fast simulator.\n\n"
        "Results go to stdout (a table, or JSON with --json); progress, logs and errors go to "
        "stderr."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

# --- options shared by the commands -----------------------------------------------------------

PresetOpt = Annotated[
    str,
    typer.Option(
        "--preset",
        "-p",
        help=f"Named cluster + workload: {', '.join(PRESETS)}.",
        show_default=True,
    ),
]
TraceOpt = Annotated[
    str | None,
    typer.Option(
        "--trace",
        help=(
            "Request trace replacing the preset's: a CSV with num_prefill_tokens and "
            "num_decode_tokens columns (and optionally arrived_at, seconds), or a shipped trace "
            "name (sharegpt_first_turn, sharegpt, azure_conv). With arrived_at its arrivals are "
            "replayed; without, the preset's arrival process is kept. Lengths are used as given "
            "(no inflation), capped at the preset's max_tokens."
        ),
        show_default=False,
    ),
]
QpsOpt = Annotated[
    float | None,
    typer.Option(
        "--qps",
        help="Mean arrival rate (requests/s); rescales time when replaying a trace.",
        show_default=False,
    ),
]
ConcurrencyOpt = Annotated[
    int | None,
    typer.Option(
        "--concurrency",
        min=1,
        help=(
            "Closed loop: N clients, each sending its next request when its last completes "
            "(like `vllm bench serve --max-concurrency N`), instead of the preset's arrivals."
        ),
        show_default=False,
    ),
]
IslOpt = Annotated[
    int | None,
    typer.Option("--isl", min=1, help="Every prompt this many tokens.", show_default=False),
]
OslOpt = Annotated[
    int | None,
    typer.Option("--osl", min=1, help="Every output this many tokens.", show_default=False),
]
NumRequestsOpt = Annotated[
    int | None,
    typer.Option(
        "--num-requests",
        min=1,
        help="Requests in all (closed loop: default 10 per client, at least 100).",
        show_default=False,
    ),
]
DurationOpt = Annotated[
    float | None,
    typer.Option(
        "--duration",
        help="Seconds of arrivals to generate (or of a replayed trace to keep).",
        show_default=False,
    ),
]
ReplicasOpt = Annotated[
    int | None, typer.Option("--replicas", help="Number of replicas.", show_default=False)
]
GpuOpt = Annotated[
    str | None,
    typer.Option(
        "--gpu",
        help=(
            f"GPU kind: {', '.join(catalogue().gpus)}. KV capacity is then derived from the "
            "GPU's memory."
        ),
        show_default=False,
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        help=(
            f"Model served: {', '.join(catalogue().models)}. KV capacity is then derived from "
            "the GPU's memory."
        ),
        show_default=False,
    ),
]
TpOpt = Annotated[
    int | None,
    typer.Option(
        "--tp", help="Tensor-parallel degree: GPUs per replica (1, 2, 4 or 8).", show_default=False
    ),
]
PrecisionOpt = Annotated[
    str | None,
    typer.Option(
        "--precision",
        help="Weights: bf16, fp16 or fp8 [default: the model's, bf16].",
        show_default=False,
    ),
]
KvPrecisionOpt = Annotated[
    str | None,
    typer.Option(
        "--kv-precision",
        help="KV cache: bf16, fp16 or fp8 [default: the model's, bf16].",
        show_default=False,
    ),
]
SeedOpt = Annotated[
    int, typer.Option("--seed", min=0, help="Seed of the workload and of randomized routers.")
]
OutOpt = Annotated[
    Path | None,
    typer.Option(
        "--out",
        "-o",
        help="Directory to write results into (created if missing).",
        show_default=False,
        file_okay=False,
    ),
]
ProfileOpt = Annotated[
    str | None,
    typer.Option(
        "--profile",
        help=(
            "Latency profile fitted by `glia calibrate` (a JSON file, or a shipped one: "
            "h200-llama-3-8b), replacing the GPU's defaults."
        ),
        show_default=False,
    ),
]
NoJitOpt = Annotated[
    bool,
    typer.Option(
        "--no-jit", help="Run the simulator's kernels as plain Python (same results; slower)."
    ),
]
NatsOpt = Annotated[
    str | None,
    typer.Option(
        "--nats",
        help=(
            "Submit the experiments to the workers of this NATS server or cluster "
            "(nats://host:4222, comma-separated for several). Without it, a private server "
            "and local workers are started for the command."
        ),
        show_default=False,
        envvar="GLIA_NATS_URL",
    ),
]
CredsOpt = Annotated[
    Path | None,
    typer.Option(
        "--creds",
        help="NATS credentials file (nkey/JWT) for --nats.",
        show_default=False,
        envvar="GLIA_NATS_CREDS",
        dir_okay=False,
    ),
]
TlsCaOpt = Annotated[
    Path | None,
    typer.Option(
        "--tls-ca",
        help="CA certificate to verify the NATS server's TLS certificate with.",
        show_default=False,
        envvar="GLIA_NATS_TLS_CA",
        dir_okay=False,
    ),
]
InProcessOpt = Annotated[
    bool,
    typer.Option(
        "--in-process",
        help=(
            "Simulate in this process (baselines: a local process pool) instead of through a "
            "private NATS server and local workers: a little faster to start, for debugging."
        ),
    ),
]
TrustOpt = Annotated[
    bool,
    typer.Option(
        "--trust-design",
        help=(
            "Run designs without the OS sandbox (namespaces, seccomp) on a machine where it "
            "cannot be set up: only for designs you wrote or trust."
        ),
    ),
]
JsonOpt = Annotated[
    bool,
    typer.Option("--json", help="Print the results as JSON on stdout, and nothing else there."),
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"glia {glia.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Glia: design and test routing policies for LLM-serving clusters in a fast simulator."""


# --- errors -----------------------------------------------------------------------------------


def _fail(message: str) -> NoReturn:
    """Print ``error: message`` as one line on stderr and exit with status 2."""
    one_line = " ".join(part.strip() for part in message.splitlines() if part.strip())
    typer.echo(f"error: {one_line}", err=True)
    raise typer.Exit(2)


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn any :class:`GliaError` into a one-line message and exit status 2."""
    try:
        yield
    except DesignFailed as e:
        _fail(f"design {e.failure.one_line()}")
    except GliaError as e:
        _fail(str(e))


def _design_source(design: Path | None, router: str | None) -> str | None:
    """The source of ``--design FILE`` (``None`` with ``--router NAME``): exactly one is given."""
    if (design is None) == (router is None):
        raise InputError("give exactly one of --design FILE and --router NAME")
    if design is None:
        return None
    try:
        return design.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"design file {str(design)!r} cannot be read: {e}") from None


def _cannot_write(out: Path, e: OSError) -> NoReturn:
    reason = e.strerror or str(e)
    _fail(f"cannot write to {out}: {reason}; choose a writable --out directory")


def _prepare_out(out: Path | None) -> None:
    """Create the output directory before any simulation runs, so a bad one fails fast."""
    if out is None:
        return
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        _cannot_write(out, e)


TaskOpt = Annotated[
    str | None,
    typer.Option(
        "--task",
        "-t",
        help=f"What to compare or design: {', '.join(TASKS)} [default: the preset's task].",
        show_default=False,
    ),
]


def _print_json(value: object) -> None:
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(value), indent=2).decode() + "\n")
    sys.stdout.flush()


def _write_json(path: Path, value: object) -> None:
    path.write_bytes(msgspec.json.format(msgspec.json.encode(value), indent=2) + b"\n")
