"""Named experiment setups: a cluster, a workload, the task they were made for, its default
router and SLO, and the workload each one's best design is also validated on.

Each task defines its own presets (:mod:`glia.tasks`); this module gathers them by name.
"""

from __future__ import annotations

from glia._errors import InputError, unknown_name
from glia.tasks import TASKS, Preset, Slo, Task

__all__ = ["PRESETS", "SECOND_WORKLOAD", "Preset", "Slo", "for_task", "preset"]

PRESETS: dict[str, Preset] = {p.name: p for t in TASKS.values() for p in t.presets}
"""Every preset by name."""

SECOND_WORKLOAD = {"glia-routing": "azure-conv", "azure-conv": "glia-routing",
                   "sharegpt-conv": "glia-routing", "chat-prefix": "glia-routing",
                   "glia-scheduling": "azure-conv", "diurnal": "azure-autoscale",
                   "azure-autoscale": "diurnal", "prefix-heavy": "prefix-heavy-bursty",
                   "prefix-heavy-bursty": "prefix-heavy"}  # fmt: skip
"""The workload each preset's best design is also validated on."""


def preset(name: str) -> Preset:
    """The preset called ``name``."""
    try:
        return PRESETS[name]
    except KeyError:
        raise unknown_name("preset", name, PRESETS) from None


def for_task(task: Task, name: str) -> Preset:
    """The preset ``name``, which must be made for ``task``."""
    p = preset(name)
    if p.task != task.name:
        fits = ", ".join(n for n, q in PRESETS.items() if q.task == task.name)
        raise InputError(
            f"preset {name!r} is made for the {p.task} task, not {task.name}: choose one of {fits}"
        )
    return p
