"""What the researcher's ``run_simulation`` tool answers, as a typed record.

The coordinator builds a :class:`SimulationAnswer`; the model reads it as JSON (fields left at
their defaults are omitted); the offline designer decodes the same JSON back into a
:class:`SimulationAnswer` and reads fields, never wording.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["SimulationAnswer", "read_answer"]


class SimulationAnswer(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One ``run_simulation`` call's outcome (``ok``: the design ran on every seed)."""

    ok: bool
    simulations_left: int
    trial: int | None = None
    """The trial number (None when the call was refused and not counted)."""
    experiment: str | None = None
    failure: str | None = None
    """Why the design could not run, or why the call was refused."""
    traceback: str | None = None
    output: str | None = None
    """What the design printed (captured, truncated)."""
    score: float | None = None
    """20 / cost (higher is better)."""
    mean_e2e_s: float | None = None
    vs_llq: float | None = None
    per_seed_mean_e2e_s: list[float] | None = None
    seeds: list[int] | None = None
    first_seed: dict[str, float | int | bool] | None = None
    """Summary metrics of the first seed (the task's own among them)."""
    csv_paths: list[str] | None = None
    """Per-request CSVs in the workspace, one per seed."""
    prefix_caching: bool = False
    """The cluster caches prompt prefixes."""
    metrics_scraped: bool = False
    """The router sees engine metrics scraped at intervals: a replica's prefix cache cannot be
    read (the router must track what it sent where)."""
    cost: float | None = None
    """The task's objective when it is not the mean E2E (lower is better)."""
    objective: str | None = None
    vs_best_baseline: float | None = None
    per_seed_cost: list[float] | None = None
    slo_margin: float | None = None
    """How close the worst seed came to the SLO, as a fraction of it (negative: missed)."""

    @property
    def value(self) -> float | None:
        """The objective this design reached: its cost, else its mean E2E (None if it failed)."""
        if not self.ok:
            return None
        return self.cost if self.cost is not None else self.mean_e2e_s


def read_answer(content: Any) -> SimulationAnswer | None:
    """A tool return's content as an answer (None if it is not one)."""
    try:
        return msgspec.convert(content, SimulationAnswer)
    except msgspec.ValidationError:
        return None
