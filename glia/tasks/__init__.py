"""The design tasks, one module each: routing, scheduling and autoscaling.

A :class:`Task` owns everything that differs between tasks: the policy a design subclasses and
the experiment field it takes, its baselines, its objective and cost, its presets, what the
researcher and the supervisor are told, the working example and the offline designer's
catalogue, and how reports show it. Adding a task means adding a module here and listing it in
:data:`TASKS`.
"""

from __future__ import annotations

from glia._errors import InputError, unknown_name

from ._autoscaling import AUTOSCALING
from ._objective import OBJECTIVE_TERMS, Objective, parse_objective
from ._routing import ROUTING
from ._scheduling import SCHEDULING
from ._task import HOW_TO_WORK, SLO_PENALTY, Preset, Slo, Task, pooled_mean_e2e_s, slo_excess

__all__ = [
    "AUTOSCALING",
    "DEFAULT_TASK",
    "HOW_TO_WORK",
    "OBJECTIVE_TERMS",
    "ROUTING",
    "SCHEDULING",
    "SLO_PENALTY",
    "TASKS",
    "Objective",
    "Preset",
    "Slo",
    "Task",
    "parse_objective",
    "pooled_mean_e2e_s",
    "resolve_task",
    "slo_excess",
    "task_for",
]

TASKS: dict[str, Task] = {t.name: t for t in (ROUTING, SCHEDULING, AUTOSCALING)}
"""Every task by name."""

DEFAULT_TASK = ROUTING
"""The task of a design or an experiment that names none (the Glia paper's)."""


def task_for(name: str, objective: str = "mean") -> Task:
    """The task called ``name`` scored on ``objective`` (an objective spec, see
    :func:`parse_objective`; only routing takes one other than ``mean``)."""
    task = resolve_task(name)
    goal = parse_objective(objective)
    if goal.is_mean:
        return task
    if task is not ROUTING:
        raise InputError(
            f"--objective {objective!r} is for routing only: task {name!r} has its own "
            "objective (drop --objective)"
        )
    return ROUTING.with_objective(goal)


def resolve_task(name: str) -> Task:
    """The task called ``name``."""
    try:
        return TASKS[name]
    except KeyError:
        raise unknown_name("task", name, TASKS) from None
