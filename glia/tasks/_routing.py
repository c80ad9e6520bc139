"""Routing: a global router sends each request to a replica (or holds it); the objective is
the mean end-to-end latency. The Glia paper's task."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import msgspec

from glia.policies import BASELINES, Mechanisms, Router, compose
from glia.sim import Summary, WorkloadConfig

from ._objective import Objective
from ._setups import PAPER_CLUSTER, PAPER_WORKLOAD, PREFIX_CLUSTER, PREFIX_WORKLOAD
from ._task import HOW_TO_WORK, Preset, Slo, Task

__all__ = ["ROUTING"]

NAME = "routing"
_MEAN = Objective()


@dataclass(frozen=True, kw_only=True)
class _Routing(Task):
    goal: Objective = _MEAN
    """What a design is scored on (default: the mean E2E, the paper's objective)."""

    def with_objective(self, goal: Objective) -> _Routing:
        """This task scored on ``goal``: costs, briefs and reports follow it. A non-mean
        objective is reported as the task's own cost (like the other tasks'), not as the
        mean E2E."""
        return replace(self, goal=goal, objective=goal.text, cost_is_latency=goal.is_mean)

    def cost(self, s: Summary, slo: Slo | None = None) -> float:
        return self.goal.cost(s)

    def pooled_cost(self, summaries: Sequence[Summary], slo: Slo | None = None) -> float:
        """The objective over every request of every seed (means weighted by requests; for
        the mean objective exactly the pooled mean E2E)."""
        return self.goal.pooled_cost(summaries)

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
        unit = " s" if self.goal.in_seconds else ""
        table = "\n".join(f"  - {name}: {e2e:.2f}{unit}" for name, e2e in baselines.items())
        seeds_text = str(seeds) if seeds else "(the run's secret search seeds)"
        objective = self._objective_paragraph(seeds_text, budget)
        return f"""\
You are a systems researcher designing the request router of an LLM-serving cluster. Work like
one: look at the data, form a hypothesis, write a router that tests it, simulate it, read the
per-request results, explain what happened, and iterate.

## The system ({preset})
{description}
Each replica runs a vLLM-style engine: continuous batching with chunked prefill, a paged KV cache
(blocks of 16 tokens). A replica admits queued requests in order while KV blocks are free. When
a running request needs a block and none is free, the youngest running request is preempted: its
blocks are freed and it is recomputed later (a restart costs its whole prefill again). Output
lengths are unknown to the router; prompt lengths are known.

## Your design
A Python file defining one subclass of `glia.policies.Router` with `schedule(self, cluster)`.
It is called on every arrival and every completion. `cluster.queue` holds requests not yet
routed (arrival order; each has `.id`, `.arrived_at`, `.num_prefill_tokens`, and `.prefix_id`
/ `.prefix_len`: the conversation its prompt continues and how many tokens it shares with it);
`cluster.now` is the time; `cluster.replicas[i]` has `gpu`, `model`, `num_blocks`, `block_size`,
`num_allocated_blocks`, `num_free_blocks`, `queue` (routed, not yet admitted), `num_queued`,
`running` (each with `request`, `num_processed_tokens`, `num_generated_tokens`,
`num_allocated_blocks`, `in_prefill`), `num_running`, `num_outstanding` and
`cached_prefix(request)` (prompt tokens its prefix cache would serve, when caching is on).
Return a list of `(replica_index, request)`, the index into `cluster.replicas`; requests you
do not return stay queued and are offered again at the next call (so a router may
hold them). Use `self.rng` for randomness. Allowed imports: math, numpy, collections, heapq,
itertools, functools, dataclasses and similar pure-computation modules. Designs run in a sandbox.
A working example is in `example_router.py` (least requests in flight).

## Objective and budget
{objective}
{table}

{HOW_TO_WORK}{previous}
"""

    def _objective_paragraph(self, seeds_text: str, budget: int) -> str:
        """The brief's objective paragraph (the paper's wording for the mean objective)."""
        if self.goal.is_mean:
            return f"""\
Minimise the mean end-to-end latency (E2E) of requests. `run_simulation` returns a score of
20 / mean E2E (higher is better), the mean E2E over seeds {seeds_text}, per-seed values and summary
metrics, and per-request CSVs you can analyse with `run_analysis` (numpy is available; columns
include request_e2e_time, request_scheduling_delay, prefill_e2e_time, request_num_restarts,
request_num_prefill_tokens, request_num_decode_tokens, replica_id). You have {budget}
simulations in this context: each `run_simulation` call uses one, whatever the outcome, so
think before you run. Baseline routers on the same seeds (mean E2E):"""
        goal = self.goal.text[0].upper() + self.goal.text[1:]
        return f"""\
{goal}. The tail counts: an order that starves long prompts loses. `run_simulation` returns
`cost` (this objective over seeds {seeds_text}, lower is better), a score of 20 / cost, the mean
and p99 E2E, per-seed values and summary metrics, and per-request CSVs you can analyse with
`run_analysis` (numpy is available; columns include request_e2e_time, request_slowdown,
request_scheduling_delay, prefill_e2e_time, request_num_restarts, request_num_prefill_tokens,
request_num_decode_tokens, replica_id). You have {budget} simulations in this context: each
`run_simulation` call uses one, whatever the outcome, so think before you run. Baseline routers
on the same seeds (cost):"""


PRESETS = (
    Preset(
        name="glia-routing",
        description=(
            "The Glia paper's routing study: 4 x A10 serving Llama-3-8B (2,240 KV blocks "
            "each), ShareGPT first turns with 5% of prompts and 5% of outputs inflated 10x, "
            "log-normal arrivals (sigma 2) at 7.5 QPS for 1,000 s"
        ),
        cluster=PAPER_CLUSTER,
        workload=PAPER_WORKLOAD,
        task=NAME,
    ),
    Preset(
        name="azure-conv",
        description=(
            "One hour of Azure's production conversation trace (Splitwise, 2023; 19,366 "
            "requests, 5.5 req/s, bursty) replayed on the paper's 4 x A10 cluster"
        ),
        cluster=PAPER_CLUSTER,
        workload=WorkloadConfig(trace="azure_conv", arrivals="trace", max_tokens=8192),
        task=NAME,
    ),
    Preset(
        name="chat-prefix",
        description=(
            "Multi-turn chat: ShareGPT messages threaded into conversations of 4 turns on "
            "average (each prompt carries its history), Poisson arrivals at 4 QPS for "
            "1,000 s on the paper's cluster, with 30% of each replica's KV blocks caching "
            "conversation prefixes"
        ),
        cluster=msgspec.structs.replace(PAPER_CLUSTER, prefix_cache=0.3),
        workload=WorkloadConfig(
            trace="sharegpt_first_turn",
            arrivals="poisson",
            qps=4.0,
            duration_s=1000.0,
            turns=4.0,
            max_tokens=8192,
        ),
        task=NAME,
    ),
    Preset(
        name="sharegpt-conv",
        description=(
            "Whole ShareGPT conversations (long prompts, mean 2,340 tokens; Sarathi-Serve's "
            "trace) with Poisson arrivals at 1.2 QPS for 1,000 s on the paper's cluster, "
            "below its saturation point"
        ),
        cluster=PAPER_CLUSTER,
        workload=WorkloadConfig(
            trace="sharegpt", arrivals="poisson", qps=1.2, duration_s=1000.0, max_tokens=8192
        ),
        task=NAME,
    ),
    Preset(
        name="prefix-heavy",
        description=(
            "IBM's llm-d router study: 4 x H100 serving Qwen2.5-7B; six groups of requests, "
            "each prompt a shared 14,000-token prefix then a ShareGPT first turn, 64 output "
            "tokens, Poisson arrivals at 85 QPS for 180 s; each replica may cache five of the "
            "six prefixes (7% of its 66,490 KV blocks; hits share the cached blocks), and the "
            "router sees engine metrics scraped every 0.5 s (a replica's cache cannot be read)"
        ),
        cluster=PREFIX_CLUSTER,
        workload=PREFIX_WORKLOAD,
        task=NAME,
    ),
    Preset(
        name="prefix-heavy-bursty",
        description=(
            "prefix-heavy with bursty arrivals: gamma gaps with a coefficient of variation of "
            "7 at the same mean 85 QPS for 180 s"
        ),
        cluster=PREFIX_CLUSTER,
        workload=msgspec.structs.replace(PREFIX_WORKLOAD, arrivals="gamma", cv=7.0),
        task=NAME,
    ),
)

ROUTING = _Routing(
    name=NAME,
    preset="glia-routing",
    presets=PRESETS,
    objective="minimise the mean end-to-end latency",
    baselines=BASELINES,
    base=Router,
    slot="router",
    system="the request router",
    example=("example_router.py", compose(Mechanisms(), name="LeastLoaded")),
    mechanisms=Mechanisms,
    compose=compose,
    cost_is_latency=True,
)
"""Routing, as in the Glia paper."""
