"""The programmatic Python API."""

from __future__ import annotations

from typing import Any

import msgspec

from glia._errors import InputError
from glia.policies import RouterSpec, resolve_router
from glia.sim import ClusterConfig, SimResult, WorkloadConfig, build_trace, run_simulation
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
    :class:`WorkloadConfig` (e.g. ``qps``, ``duration_s``, ``trace``). A ``trace`` override
    without ``arrivals`` replays the trace's own arrival times if it has them.
    """
    base = get_preset(preset) if preset is not None else None
    c = cluster or (base.cluster if base else ClusterConfig())
    w = workload or (base.workload if base else WorkloadConfig())
    unknown = set(overrides) - _CLUSTER_FIELDS - _WORKLOAD_FIELDS
    if unknown:
        fields = ", ".join(sorted(_CLUSTER_FIELDS | _WORKLOAD_FIELDS))
        raise InputError(f"unknown setting(s) {', '.join(sorted(unknown))}: choose from {fields}")
    c_over = {k: v for k, v in overrides.items() if k in _CLUSTER_FIELDS and v is not None}
    w_over = {k: v for k, v in overrides.items() if k in _WORKLOAD_FIELDS and v is not None}
    try:
        if c_over:
            c = msgspec.convert(msgspec.to_builtins(c) | c_over, ClusterConfig)
        if w_over:
            w = msgspec.convert(msgspec.to_builtins(w) | w_over, WorkloadConfig)
    except msgspec.ValidationError as e:
        raise InputError(f"invalid setting: {e}") from None
    return c, w


def simulate(
    router: RouterSpec = "llq",
    preset: str | None = "glia-routing",
    *,
    seed: int = 0,
    cluster: ClusterConfig | None = None,
    workload: WorkloadConfig | None = None,
    **overrides: Any,
) -> SimResult:
    """Simulate one router on a preset (or given) cluster and workload.

    ``router`` is a baseline name (see :data:`glia.policies.BASELINES`), a ``.py`` design file,
    a :class:`~glia.policies.Router` subclass or instance. Keyword ``overrides`` change single
    fields of the cluster or workload, e.g. ``simulate("hra", qps=9.0, num_replicas=8)``.
    The same arguments and seed always give the same result.
    """
    c, w = experiment_config(preset, cluster, workload, **overrides)
    resolved = c.resolve()
    trace = build_trace(w, seed, max_context=resolved.max_context)
    return run_simulation(trace, c, resolve_router(router), seed=seed, workload=w)
