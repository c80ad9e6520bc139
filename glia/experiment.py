"""Experiments as plain data: what one simulation is, what a design that fails produces, the
limits a design runs under, and how a preset plus overrides becomes a cluster and a workload.

This module is data and pure functions only (it runs nothing): the bus's messages, the sandbox,
the workers and the public API all build on it. Running an experiment is
:func:`glia._batch.run_experiment`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

import msgspec

from glia._errors import DesignError, InputError
from glia.presets import PRESETS
from glia.presets import preset as get_preset
from glia.sim import (
    ClusterConfig,
    Summary,
    WorkloadConfig,
    builtin_traces,
    catalogue,
    load_trace_csv,
)
from glia.tasks import DEFAULT_TASK

__all__ = [
    "DesignFailed",
    "DesignFailure",
    "Experiment",
    "FailureKind",
    "Limits",
    "design_source",
    "experiment_config",
]


class Experiment(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One simulation: a baseline ``router``, replica ``scheduler`` (default: none, vLLM's
    FCFS) and ``autoscaler`` (default: none, every replica serves) by name. A design's
    ``design_source`` takes the place of its ``task``'s policy (``routing``: the router,
    ``scheduling``: the scheduler, ``autoscaling``: the autoscaler)."""

    cluster: ClusterConfig
    workload: WorkloadConfig
    seed: int = 0
    router: str = "llq"
    design_source: str | None = None
    scheduler: str | None = None
    autoscaler: str | None = None
    task: str = DEFAULT_TASK.name

    def key(self) -> str:
        """Content hash of everything that determines the result (hex SHA-256)."""
        return hashlib.sha256(msgspec.msgpack.encode(self)).hexdigest()


class DesignFailed(DesignError):
    """A design could not be evaluated; ``failure`` says how (kind, message, traceback)."""

    def __init__(self, failure: DesignFailure) -> None:
        super().__init__(str(failure))
        self.failure = failure

    def __reduce__(self) -> tuple[type[DesignFailed], tuple[DesignFailure]]:
        return (type(self), (self.failure,))


FailureKind = Literal[
    "syntax",
    "import",
    "exception",
    "timeout",
    "memory",
    "invalid-decision",
    "forbidden",
    "cpu",
    "protocol",
]
"""Why a design failed: ``cpu`` (its CPU time ran out), ``protocol`` (its process broke the
sandbox's protocol: garbage, an oversized message, or an exit without a report) and
``timeout`` (the wall-clock limit) are told apart."""


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """Resources a design's simulation may use."""

    wall_s: float = 60.0
    cpu_s: float = 60.0
    memory_mb: int = 2048
    output_kb: int = 4
    """Captured stdout/stderr of the design, kept up to this size (the rest is counted)."""
    trusted: bool = False
    """Run the design without the OS boundary (a fresh, empty process all the same): only for
    designs you wrote or trust, on machines where the boundary cannot be set up."""


_CAPS = {"message": 2000, "traceback": 4000, "output": 9000}
"""Characters a failure keeps of each text (see :meth:`DesignFailure.capped`)."""


class DesignFailure(msgspec.Struct, frozen=True, kw_only=True):
    """A design that could not be evaluated.

    ``message`` says what went wrong and what to change; ``traceback`` is trimmed to the
    design's own lines (``design.py:LINE``); ``output`` is what the design printed (truncated);
    ``partial`` summarizes the requests it completed before failing, if any.
    """

    kind: FailureKind
    message: str
    traceback: str = ""
    output: str = ""
    partial: Summary | None = None
    """Metrics of the requests completed before the failure, as the design's own process
    computed them (informative only: not verified by a replay)."""

    def capped(self) -> DesignFailure:
        """This failure with its texts cut to a few KB (each cut says how much it dropped), so
        that it stays small on the bus whatever the design printed or raised."""
        changes = {}
        for field, cap in _CAPS.items():
            text: str = getattr(self, field)
            if len(text) > cap:
                changes[field] = text[:cap] + f"\n[... {len(text) - cap} more characters cut]"
        return msgspec.structs.replace(self, **changes) if changes else self

    def one_line(self) -> str:
        """Kind, message and the design's innermost line, on one line."""
        where = [
            ln.split(" in ")[0].strip() for ln in self.traceback.splitlines() if "design.py:" in ln
        ]
        return f"{self.kind}: {self.message}" + (f" (at {where[-1]})" if where else "")

    def __str__(self) -> str:
        tail = f"\n{self.traceback}" if self.traceback else ""
        return f"{self.kind}: {self.message}{tail}"


_CLUSTER_FIELDS = set(ClusterConfig.__struct_fields__)
_WORKLOAD_FIELDS = set(WorkloadConfig.__struct_fields__)


def experiment_config(
    preset: str | None = "glia-routing",
    cluster: ClusterConfig | None = None,
    workload: WorkloadConfig | None = None,
    **overrides: Any,
) -> tuple[ClusterConfig, WorkloadConfig]:
    """The cluster and workload of ``preset`` (or the given ones), with field ``overrides``.

    Overrides are fields of :class:`ClusterConfig` (e.g. ``num_replicas``, ``gpu``) or of
    :class:`WorkloadConfig` (e.g. ``qps``, ``duration_s``, ``trace``); ``None`` means "not
    given" (pass a whole config to clear a field). Two overrides carry more meaning:

    * a different ``gpu``, ``model``, ``tp``, ``precision`` or ``kv_precision`` re-derives the
      KV capacity from GPU memory (a preset's block count belongs to its own hardware) unless
      ``num_blocks`` is given;
    * a ``trace`` (without ``arrivals``) is used as given, without the preset's inflation: one
      with an ``arrived_at`` column is replayed at its own times (``qps`` and ``duration_s``
      then rescale and cut it), one without keeps the preset's arrival process;
    * a ``concurrency`` makes the workload closed-loop: the preset's arrival process (rate,
      duration) goes, and fixed ``isl``/``osl`` lengths are not inflated.
    """
    base = get_preset(preset) if preset is not None else None
    c = cluster or (base.cluster if base else ClusterConfig())
    w = workload or (base.workload if base else WorkloadConfig())
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = set(given) - _CLUSTER_FIELDS - _WORKLOAD_FIELDS
    if unknown:
        fields = ", ".join(sorted(_CLUSTER_FIELDS | _WORKLOAD_FIELDS))
        raise InputError(f"unknown setting(s) {', '.join(sorted(unknown))}: choose from {fields}")
    c_over = {k: v for k, v in given.items() if k in _CLUSTER_FIELDS}
    w_over = {k: v for k, v in given.items() if k in _WORKLOAD_FIELDS}
    hardware = ("gpu", "model", "tp", "precision", "kv_precision")
    if "num_blocks" not in c_over and any(
        k in c_over and _canonical(k, c_over[k]) != _canonical(k, getattr(c, k)) for k in hardware
    ):
        c_over["num_blocks"] = None
    if (
        "trace" in w_over
        and w_over["trace"] not in builtin_traces()
        and Path(w_over["trace"]).exists()
    ):
        # A file travels to workers by its path: make it absolute, so a worker process in
        # another working directory (or a resumed run started elsewhere) finds the same file.
        w_over["trace"] = str(Path(w_over["trace"]).expanduser().absolute())
    if "concurrency" in w_over:
        # Closed loop: clients send as they finish, so the preset's arrival process goes.
        w_over |= {
            "arrivals": "trace",
            "qps": given.get("qps"),
            "duration_s": given.get("duration_s"),
        }
        w_over.setdefault("diurnal", 0.0)
    if "isl" in w_over or "osl" in w_over:  # fixed lengths are not inflated
        w_over.setdefault("prompt_inflation", 0.0)
        w_over.setdefault("output_inflation", 0.0)
    if "trace" in w_over and "arrivals" not in w_over:
        _, has_arrivals = load_trace_csv(w_over["trace"])
        w_over.setdefault("prompt_inflation", 0.0)
        w_over.setdefault("output_inflation", 0.0)
        if has_arrivals:
            w_over |= {
                "arrivals": "trace",
                "qps": given.get("qps"),
                "duration_s": given.get("duration_s"),
            }
        elif w.arrivals == "trace":
            others = ", ".join(n for n, p in PRESETS.items() if p.workload.arrivals != "trace")
            raise InputError(
                f"trace {w_over['trace']!r} has no arrived_at column and the workload replays "
                f"recorded arrivals: add an arrived_at column (seconds) or use generated "
                f"arrivals (e.g. a preset that has them: {others})"
            )
    try:
        if c_over:
            c = msgspec.convert(msgspec.to_builtins(c) | c_over, ClusterConfig)
        if w_over:
            w = msgspec.convert(msgspec.to_builtins(w) | w_over, WorkloadConfig)
    except msgspec.ValidationError as e:
        raise InputError(f"invalid setting: {e}") from None
    return c, w


def design_source(design: str | Path) -> str:
    """The source of a design given as a file path or as the source text itself."""
    if isinstance(design, Path) or (design.endswith(".py") and "\n" not in design):
        path = Path(design)
        if not path.is_file():
            raise InputError(f"design file {str(path)!r} does not exist: give a .py file path")
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"design file {str(path)!r} cannot be read: {e}") from None
    return design


def _canonical(field: str, value: Any) -> Any:
    if field == "gpu":
        return catalogue().gpu(value)[0]
    if field == "model":
        return catalogue().model(value)[0]
    return value
