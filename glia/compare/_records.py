"""What a comparison keeps: its settings, each run's result, each method's statistics."""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["REFERENCE", "CompareConfig", "MethodSummary", "RunResult"]

REFERENCE = "llq"
"""The policy scores are relative to (when the task has it; else the best baseline)."""


class CompareConfig(msgspec.Struct, frozen=True, kw_only=True):
    """What a comparison's runs share (``compare.json``); a resumed one must match it."""

    task: str
    preset: str
    budget: int
    seeds: int
    objective: str
    model: str
    seed: int
    settings: dict[str, Any] = {}


class RunResult(msgspec.Struct, kw_only=True):
    """One method's design run of one repeat, as the comparison reads it (``result.json``)."""

    method: str
    repeat: int
    run_dir: str
    """The design run's directory, relative to the comparison's."""
    status: str
    stop_reason: str
    budget: int
    simulations: int
    """Simulations the run used (failed designs included: they spend budget)."""
    valid: int
    """Of those, designs that ran on every seed."""
    curve: list[float | None]
    """Best-so-far search cost / the reference's after each simulation (``budget`` values)."""
    reference: str
    score: float | None = None
    """Held-out cost of the best design / the reference's (None: no design was validated)."""
    cost: float | None = None
    reference_cost: float | None = None
    mean_e2e_s: float | None = None
    p50_e2e_s: float | None = None
    p99_e2e_s: float | None = None
    mean_slowdown: float | None = None
    reference_mean_e2e_s: float | None = None
    reference_p99_e2e_s: float | None = None
    tokens: int = 0
    usd: float = 0.0
    cpu_s: float = 0.0
    """Simulator seconds of the run's search simulations (baselines and validation aside)."""


class MethodSummary(msgspec.Struct, kw_only=True):
    """A method over its repeats."""

    name: str
    repeats: int
    """Finished runs."""
    scored: int
    """Runs with a validated design (the score statistics are over these)."""
    score_mean: float | None
    score_median: float | None
    ci90: tuple[float, float] | None
    """Bootstrap 90 % CI of the mean score over repeats."""
    t90_sims: int | None
    t95_sims: int | None
    valid_rate: float | None
    simulations: int
    tokens: int
    usd: float
    cpu_s: float
    mean_e2e_s: float | None
    p50_e2e_s: float | None
    p99_e2e_s: float | None
    mean_slowdown: float | None
    reference_mean_e2e_s: float | None
    reference_p99_e2e_s: float | None
    curve_median: list[float | None]
    curve_lo: list[float | None]
    curve_hi: list[float | None]
    """Bootstrap 90 % CI of the median curve (None where a repeat has nothing valid yet)."""

    def public(self) -> dict[str, Any]:
        """The object ``glia compare --json`` lists per method."""
        return {
            "name": self.name, "repeats": self.repeats, "score_mean": self.score_mean,
            "ci90": list(self.ci90) if self.ci90 else None, "t90_sims": self.t90_sims,
            "t95_sims": self.t95_sims, "valid_rate": self.valid_rate, "tokens": self.tokens,
            "usd": self.usd, "cpu_s": self.cpu_s, "mean_e2e_s": self.mean_e2e_s,
            "p99_e2e_s": self.p99_e2e_s, "p50_e2e_s": self.p50_e2e_s,
            "score_median": self.score_median, "simulations": self.simulations,
        }  # fmt: skip
