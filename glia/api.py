"""The programmatic Python API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from glia._batch import DesignFailed
from glia._errors import InputError
from glia.policies import (
    Autoscaler,
    ReplicaScheduler,
    RouterSpec,
    resolve_autoscaler,
    resolve_router,
    resolve_scheduler,
)
from glia.sandbox import BASES, DesignFailure, Limits, run_sandboxed
from glia.sim import (
    ClusterConfig,
    SimResult,
    WorkloadConfig,
    build_trace,
    builtin_traces,
    catalogue,
    load_trace_csv,
    run_simulation,
)
from glia.sim._presets import PRESETS
from glia.sim._presets import preset as get_preset

__all__ = ["experiment_config", "simulate"]

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

    * a different ``gpu``, ``model`` or ``tp`` re-derives the KV capacity from GPU memory
      (a preset's block count belongs to its own hardware) unless ``num_blocks`` is given;
    * a ``trace`` (without ``arrivals``) is used as given, without the preset's inflation: one
      with an ``arrived_at`` column is replayed at its own times (``qps`` and ``duration_s``
      then rescale and cut it), one without keeps the preset's arrival process.
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
    hardware = ("gpu", "model", "tp")
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


def _design_source(design: str | Path) -> str:
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


def simulate(
    router: RouterSpec = "llq",
    preset: str | None = "glia-routing",
    *,
    design: str | Path | None = None,
    seed: int = 0,
    cluster: ClusterConfig | None = None,
    workload: WorkloadConfig | None = None,
    limits: Limits | None = None,
    scheduler: str | ReplicaScheduler | None = None,
    autoscaler: str | Autoscaler | None = None,
    task: str | None = None,
    **overrides: Any,
) -> SimResult:
    """Simulate one router on a preset (or given) cluster and workload.

    ``router`` is a baseline name (see :data:`glia.policies.BASELINES`), a ``.py`` design file,
    a :class:`~glia.policies.Router` subclass or instance. ``design`` (a ``.py`` file or the
    source text itself) and ``.py`` routers run in the sandbox (see :mod:`glia.sandbox`, with
    ``limits``) and raise :class:`~glia.DesignFailed` when they cannot be evaluated; classes and
    instances are trusted and run in this process. Keyword ``overrides`` change single
    fields of the cluster or workload, e.g. ``simulate("hra", qps=9.0, num_replicas=8)``.
    ``scheduler`` (a baseline name such as ``"spf"``, or a
    :class:`~glia.policies.ReplicaScheduler`) orders and admits requests inside each replica;
    ``autoscaler`` (e.g. ``"hpa"``, or an :class:`~glia.policies.Autoscaler`) sets the number
    of replicas of an autoscaled cluster (see :class:`~glia.sim.Autoscale`). A ``design`` is
    the policy of ``task`` (default: the preset's task): a Router, ReplicaScheduler or
    Autoscaler subclass; the other places take the baselines given by name.
    The same arguments and seed always give the same result.
    """
    c, w = experiment_config(preset, cluster, workload, **overrides)
    if design is None and isinstance(router, str | Path) and str(router).endswith(".py"):
        design, router = Path(router), "llq"
    if design is not None:
        task = task or (get_preset(preset).task if preset is not None else "routing")
        if task not in BASES:
            raise InputError(f"task is {task!r}: choose one of {', '.join(BASES)}")
        names = {"router": router, "scheduler": scheduler, "autoscaler": autoscaler}
        for key, value in names.items():
            if value is not None and not isinstance(value, str):
                raise InputError(
                    f"with a design, give the {key} by baseline name, not {value!r} (a design "
                    "runs in the sandbox, which cannot receive objects)"
                )
        out = run_sandboxed(
            _design_source(design), c, w, seed, limits, task=task,
            router=str(router), scheduler=names["scheduler"],  # type: ignore[arg-type]
            autoscaler=names["autoscaler"],  # type: ignore[arg-type]
        )  # fmt: skip
        if isinstance(out, DesignFailure):
            raise DesignFailed(out)
        return out
    resolved = c.resolve()
    trace = build_trace(w, seed, max_context=resolved.max_context)
    sched = resolve_scheduler(scheduler) if scheduler is not None else None
    scaler = resolve_autoscaler(autoscaler) if autoscaler is not None else None
    return run_simulation(
        trace, c, resolve_router(router), seed=seed, workload=w, scheduler=sched,
        autoscaler=scaler,
    )  # fmt: skip
