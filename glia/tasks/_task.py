"""What a design task is: the policy it designs, its baselines, its objective, its presets, and
what the agents are told about it.

Every task turns a simulation's summary into one *cost* (lower is better) and a *score*
``20 / cost`` that the agents maximise. Everything that differs between tasks lives on its
:class:`Task` (one module per task in this package); no other module asks which task it is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np

from glia.policies import Policy
from glia.sim import ClusterConfig, Summary, WorkloadConfig

__all__ = ["HOW_TO_WORK", "SLO_PENALTY", "Preset", "Slo", "Task", "pooled_mean_e2e_s", "slo_excess"]

SLO_PENALTY = 10.0
"""How much a relative SLO excess multiplies an autoscaler's cost by (10 % over: 2x)."""


class Slo(msgspec.Struct, frozen=True, kw_only=True):
    """A service-level objective on the 90th percentiles of TTFT and TPOT (seconds)."""

    p90_ttft_s: float
    p90_tpot_s: float


class Preset(msgspec.Struct, frozen=True, kw_only=True):
    """A named cluster + workload, made for one task; ``router`` is the baseline router of the
    other tasks, ``slo`` what an autoscaler must keep."""

    name: str
    description: str
    cluster: ClusterConfig
    workload: WorkloadConfig
    task: str
    router: str = "llq"
    slo: Slo | None = None


def pooled_mean_e2e_s(summaries: Sequence[Summary]) -> float:
    """The mean E2E over every request of several simulations (each weighted by its
    requests, not each counted once)."""
    n = sum(s.num_requests for s in summaries)
    return sum(s.mean_e2e_s * s.num_requests for s in summaries) / n


def slo_excess(s: Summary, slo: Slo) -> float:
    """Relative excess of p90 TTFT and p90 TPOT over the SLO, summed (0 when it is met)."""
    return max(0.0, s.p90_ttft_s / slo.p90_ttft_s - 1.0) + max(
        0.0, s.p90_tpot_s / slo.p90_tpot_s - 1.0
    )


HOW_TO_WORK = """\
## How to work
Write designs into your workspace, run them, and analyse the results. Use `report` to record
a finding as you go. End each turn with a short report to your supervisor: what you tried, what
the data showed, your current best and your next hypothesis. Keep `best.py` a copy of the
design you would ship: it is the one validated on held-out seeds when your context ends (without
it, your lowest-cost trial is). When no simulations are left, end with your final report naming
your best design file."""
"""The part of every researcher brief that says how to work with the tools."""


@dataclass(frozen=True, kw_only=True)
class Task:
    """One kind of policy to design (see the module docstring)."""

    name: str
    preset: str
    """The default preset."""
    presets: tuple[Preset, ...]
    """The presets made for this task."""
    objective: str
    """The objective, in words, for briefs and reports."""
    baselines: Mapping[str, type[Policy]]
    base: type[Policy]
    """The class a design subclasses."""
    slot: str
    """The experiment field a design takes the place of: ``router``, ``scheduler`` or
    ``autoscaler`` (also what a policy of this task is called)."""
    system: str
    """The part of the cluster a design is, for briefs: e.g. "the request router"."""
    design_text: str = ""
    """What a design is and what it sees, for the researcher's brief."""
    example: tuple[str, str]
    """The working example in every workspace: its file name and its source."""
    mechanisms: type[Any]
    """The offline designer's catalogue: a msgspec Struct of mechanism choices."""
    compose: Callable[..., str]
    """Writes the design source of a ``mechanisms`` value: ``compose(spec, name=...)``."""
    cost_is_latency: bool = False
    """The objective is the mean end-to-end latency itself (reports show seconds)."""
    uses_slo: bool = False
    """The objective weighs the preset's SLO (reports show whether it was met)."""

    def cost(self, s: Summary, slo: Slo | None = None) -> float:
        """The objective's value for one simulation (lower is better)."""
        raise NotImplementedError

    def pooled_cost(self, summaries: Sequence[Summary], slo: Slo | None = None) -> float:
        """The objective over several seeds: the mean of each seed's cost."""
        return float(np.mean([self.cost(s, slo) for s in summaries]))

    def objective_text(self, slo: Slo | None) -> str:
        """The objective as the researcher reads it (a sentence, capitalised)."""
        return self.objective[0].upper() + self.objective[1:]

    def supervisor_brief(self, end: str) -> str:
        """The supervisor's instructions; ``end`` is the line that ends a context."""
        return f"""\
You supervise a systems researcher who designs {self.system} of an LLM-serving cluster by
running simulations (the objective: {self.objective}, within a simulation budget).
After each of their reports: ask the questions a demanding advisor would ask (why did it work,
what does the per-request data say, which requests gained or lost); recall earlier results they
may be forgetting; encourage directions that are paying off and stop ones that are not; push
them to combine ideas that helped separately, or that could only help together. Never write
algorithms or code, and never dictate a design: your job is to make them think. Keep replies
short. If the research has clearly converged or stalled and more simulations would be wasted,
reply with a last remark followed by a line containing only {end}.
"""

    def brief(
        self,
        *,
        preset: str,
        description: str,
        budget: int,
        seeds: list[int],
        baselines: dict[str, float],
        previous: str,
        slo: Slo | None,
    ) -> str:
        """The researcher's instructions: the brief a colleague would give (``seeds`` empty:
        the run's seeds are secret)."""
        seeds_text = str(seeds) if seeds else "(the run's secret search seeds)"
        table = "\n".join(f"  - {name}: {cost:.3f}" for name, cost in baselines.items())
        objective, design = self.objective_text(slo), self.design_text
        return f"""\
You are a systems researcher designing {self.system} of an LLM-serving cluster. Work like one:
look at the data, form a hypothesis, write a design that tests it, simulate it, read the
results, explain what happened, and iterate.

## The system ({preset})
{description}
Each replica runs a vLLM-style engine: continuous batching with chunked prefill, a paged KV cache
(blocks of 16 tokens). When a running request needs a block and none is free, one running
request is preempted and recomputed later (a restart costs its whole prefill again).

## Your design
{design}Allowed imports: math, numpy, collections, heapq, itertools, functools and similar
pure-computation modules. Designs run in a sandbox.

## Objective and budget
{objective}. `run_simulation` returns `cost` (the objective, lower is better; mean over seeds
{seeds_text}), a score of 20 / cost, the metrics behind it, and per-request CSVs you can analyse
with `run_analysis` (numpy is available; columns include request_e2e_time, prefill_e2e_time,
decode_time_per_token, request_scheduling_delay, request_num_restarts,
request_num_prefill_tokens, replica_id). You have {budget} simulations in this context: each
`run_simulation` call uses one, whatever the outcome. Baselines on the same seeds (cost):
{table}

{HOW_TO_WORK}{previous}
"""
