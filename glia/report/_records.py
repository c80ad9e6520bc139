"""What a design run records: the data the coordinator checkpoints and the report is made from.

A run directory holds ``run.json`` (a :class:`RunRecord`), the researchers' workspaces
(``ctx-<k>/``: designs, per-request CSVs, notes), the validation CSVs (``validation/``) and the
report (``report.md``, ``report.html``, ``figures/``). Paths inside a record are relative to the
run directory. New fields get defaults, so older run directories stay readable.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from glia._atomic import write_atomic
from glia.sim import Summary

__all__ = [
    "Budget",
    "LogEntry",
    "ModelUsage",
    "RunRecord",
    "StopKind",
    "Trial",
    "Validation",
    "load_record",
    "save_record",
]

Role = Literal["brief", "researcher", "supervisor", "tool", "coordinator", "human"]
Status = Literal["running", "finished", "stopped", "interrupted", "failed"]
StopKind = Literal["", "finished", "budget", "provider", "model", "interrupted", "human"]
"""Why a design run ended: its search finished, a budget ran out, the model provider kept
failing, the model misbehaved (a context was cut short), it was interrupted (a signal, or
``stop`` set), or a person stopped its search (steering; the best so far is still validated);
``""`` while it runs. ``glia design`` exits non-zero for the last three."""


class Budget(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Limits of a design run; ``None`` means unlimited (simulations are always bounded)."""

    simulations: int = 15
    """``run_simulation`` calls over all contexts."""
    tokens: int | None = None
    """Input plus output tokens over every model."""
    usd: float | None = None
    """Metered cost over every model (models without a known price count as free)."""
    wall_s: float | None = None
    """Wall-clock time of the search (validation and report come after it)."""


class Trial(msgspec.Struct, frozen=True, kw_only=True):
    """One ``run_simulation`` call: a design evaluated on the search seeds."""

    index: int
    """1-based position in the run (the simulation budget counts these)."""
    context: int
    design_path: str
    """The design file as it was run: a copy under ``ctx-<k>/trials/``."""
    seeds: list[int]
    mean_e2e_s: float | None = None
    """Mean end-to-end latency over every request of every seed (``None``: failed)."""
    score: float | None = None
    """``20 / cost``: higher is better."""
    cost: float | None = None
    """The task's objective over the seeds (see :mod:`glia.tasks`; routing: ``mean_e2e_s``)."""
    per_seed_e2e_s: list[float] = []
    summary: Summary | None = None
    """Summary of the first seed's simulation."""
    csv_paths: list[str] = []
    """Per-request CSVs, one per seed."""
    failure: str | None = None
    """What went wrong, on one line, when the design could not be evaluated."""
    note: str = ""
    """The researcher's label for this experiment (its hypothesis)."""
    at: float = 0.0
    sim_s: float = 0.0
    """Simulator seconds the trial took, summed over its seeds (a cached result counts what
    it cost when it was simulated; 0 in records made before this was kept)."""


class LogEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One line of the research log: who said what, in which context."""

    context: int
    role: Role
    text: str
    at: float


class Validation(msgspec.Struct, frozen=True, kw_only=True):
    """The best design and every baseline on held-out seeds of one workload."""

    workload: str
    """Name of the workload (the task's preset, or the second workload)."""
    description: str
    seeds: list[int]
    mean_e2e_s: dict[str, float]
    """Policy name (``"design"`` for the best design) -> mean E2E over every seed's requests."""
    p99_e2e_s: dict[str, float] = {}
    """Policy -> mean over seeds of the p99 E2E."""
    p50_e2e_s: dict[str, float] = {}
    """Policy -> mean over seeds of the median E2E."""
    mean_slowdown: dict[str, float] = {}
    """Policy -> mean slowdown over every seed's requests (shown beside any objective)."""
    cost: dict[str, float] = {}
    """Policy -> the task's objective over the seeds."""
    csv_paths: dict[str, str] = {}
    """Policy -> per-request CSV of the first held-out seed (for latency CDFs)."""
    failure: str | None = None
    """Set when the design failed on this workload."""


class ModelUsage(msgspec.Struct, frozen=True, kw_only=True):
    """Metered use of one model."""

    model: str
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    priced: bool = True
    """False when the model has no known price (its cost counts as 0)."""


class RunRecord(msgspec.Struct, kw_only=True):
    """Everything about a design run (mutable: the coordinator updates and checkpoints it)."""

    run_id: str
    task: str
    preset: str
    model: str
    supervisor_model: str
    contexts: int
    sequential: bool
    budget: Budget
    search_seeds: list[int]
    started_at: float
    status: Status = "running"
    stop_reason: str = ""
    stop_kind: StopKind = ""
    finished_at: float | None = None
    trials: list[Trial] = []
    log: list[LogEntry] = []
    best_trial: int | None = None
    """``Trial.index`` of the best design found so far."""
    baselines: dict[str, float] = {}
    """Baseline name -> mean E2E on the search seeds."""
    baseline_costs: dict[str, float] = {}
    """Baseline name -> the task's objective on the search seeds (what designs must beat)."""
    validation: list[Validation] = []
    usage: list[ModelUsage] = []
    report_path: str | None = None
    objective: str = "mean"
    """The routing objective's spec (see :func:`glia.tasks.parse_objective`)."""

    @property
    def best(self) -> Trial | None:
        """The best trial so far."""
        return next((t for t in self.trials if t.index == self.best_trial), None)

    @property
    def cost_usd(self) -> float:
        return sum(u.cost_usd for u in self.usage)


_decoder = msgspec.json.Decoder(RunRecord)


def save_record(record: RunRecord, path: str) -> None:
    """Write ``record`` as JSON to ``path`` atomically (a crash never leaves half a file)."""
    write_atomic(path, msgspec.json.format(msgspec.json.encode(record), indent=1))


def load_record(data: bytes) -> RunRecord:
    """Decode a ``run.json``; raises ``msgspec.DecodeError`` on anything else."""
    return _decoder.decode(data)
