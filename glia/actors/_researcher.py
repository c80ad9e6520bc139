"""The researcher: a pydantic-ai Agent that designs a policy by experiment.

Its tools work on its own workspace (list/read/write/edit files), run analysis scripts over its
results in a limited process, run simulations of a design on the cluster's workers, and publish
findings. It ends each turn with a report to its supervisor. Everything outside the agent (the
budget, the bus, checkpoints) sits behind :class:`Bench`, which the coordinator implements.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from pydantic_ai import Agent, RunContext
from pydantic_ai.models import Model

from glia.policies._mechanisms import Mechanisms, compose
from glia.policies._task_mechanisms import (
    ScalerMechanisms,
    SchedulerMechanisms,
    compose_autoscaler,
    compose_scheduler,
)

from . import _analysis
from ._workspace import Workspace, WorkspaceError

__all__ = ["EXAMPLES", "EXAMPLE_ROUTER", "Bench", "ResearchDeps", "brief", "researcher_agent"]

EXAMPLE_ROUTER = compose(Mechanisms(), name="LeastLoaded")
"""The working example in every routing workspace (``example_router.py``): LLQ routing."""

EXAMPLES = {
    "routing": ("example_router.py", EXAMPLE_ROUTER),
    "scheduling": ("example_scheduler.py", compose_scheduler(SchedulerMechanisms(), name="Fcfs")),
    "autoscaling": (
        "example_autoscaler.py",
        compose_autoscaler(ScalerMechanisms(), name="Reactive"),
    ),
}
"""Each task's working example: its file name in the workspace and its source."""

_HOW_TO_WORK = """\
## How to work
Write designs into your workspace, run them, and analyse the results. Use `report` to record
a finding as you go. End each turn with a short report to your supervisor: what you tried, what
the data showed, your current best and your next hypothesis. Keep `best.py` a copy of the
design you would ship: it is the one validated on held-out seeds when your context ends (without
it, your lowest-cost trial is). When no simulations are left, end with your final report naming
your best design file."""

_SYSTEM = {
    "routing": "the request router",
    "scheduling": "the per-replica request scheduler",
    "autoscaling": "the autoscaler",
}

_SCHEDULER_DESIGN = """\
A Python file defining one subclass of `glia.policies.ReplicaScheduler`. One object serves every
replica. Before each iteration of a replica with waiting requests, `order(self, replica, now)`
returns the requests of `replica.queue` to admit, in order (those left out wait); admission
stops at the first that does not fit in KV memory unless the class sets `skip_blocked = True`.
`victim(self, replica, now)` returns the running request (`replica.running[k].request`) to
preempt when memory runs out. `token_budget` (class attribute, read once) caps the tokens of an
iteration (None: 8,192). `replica` has `num_blocks`, `num_free_blocks`, `queue`, `running`
(each with `request`, `num_processed_tokens`, `num_generated_tokens`, `num_allocated_blocks`,
`in_prefill`); requests have `.id`, `.arrived_at`, `.num_prefill_tokens`. Requests are routed
to replicas by least-loaded-queue. A working example is in `example_scheduler.py` (vLLM's FCFS).
"""

_AUTOSCALER_DESIGN = """\
A Python file defining one subclass of `glia.policies.Autoscaler`: `scale(self, load)` is called
every `interval_s` simulated seconds (class attribute, at least 1) and returns the number of
replicas wanted (clamped to `load.min_replicas`..`load.max_replicas`). A new replica serves only
after a cold start (3 minutes: loading the model) but costs GPU time from the start; a removed
one drains (finishes what it holds) first. `load` has `now`, `num_active`, `num_starting`,
`num_draining`, `num_replicas` (active + starting), `num_ongoing` (requests queued or running
anywhere), `arrivals` and `completions` since the previous call, `arrival_rate`, `window_s`,
and `cluster` (the active replicas, as a router sees them: `cluster.replicas[i].num_running`,
`num_queued`, `num_allocated_blocks`, `num_blocks`; `cluster.num_queued`). Keep your own history
in `self` (initialise it in `setup(self, cluster, rng)`, calling `super().setup`). Requests are
routed by least-loaded-queue. A working example is in `example_autoscaler.py`.
"""


class Bench(Protocol):
    """What a researcher's tools need from the run (implemented by the coordinator)."""

    async def run_simulation(
        self, context: int, design_path: str, note: str, seeds: list[int] | None
    ) -> dict[str, Any]: ...

    async def publish(self, context: int, text: str) -> None: ...


@dataclass
class ResearchDeps:
    """A researcher's context: which one it is, its files, and the run it works for."""

    context: int
    workspace: Workspace
    bench: Bench


def brief(
    *,
    preset: str,
    description: str,
    budget: int,
    seeds: list[int],
    baselines: dict[str, float],
    previous: str = "",
    task: str = "routing",
    objective: str = "",
) -> str:
    """The researcher's instructions: the brief a colleague would give."""
    if task != "routing":
        return _task_brief(
            task=task, preset=preset, description=description, budget=budget, seeds=seeds,
            baselines=baselines, previous=previous, objective=objective,
        )  # fmt: skip
    table = "\n".join(f"  - {name}: {e2e:.2f} s" for name, e2e in baselines.items())
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
Minimise the mean end-to-end latency (E2E) of requests. `run_simulation` returns a score of
20 / mean E2E (higher is better), the mean E2E over seeds {seeds}, per-seed values and summary
metrics, and per-request CSVs you can analyse with `run_analysis` (numpy is available; columns
include request_e2e_time, request_scheduling_delay, prefill_e2e_time, request_num_restarts,
request_num_prefill_tokens, request_num_decode_tokens, replica_id). You have {budget}
simulations in this context: each `run_simulation` call uses one, whatever the outcome, so
think before you run. Baseline routers on the same seeds (mean E2E):
{table}

{_HOW_TO_WORK}{previous}
"""


def _task_brief(
    *,
    task: str,
    preset: str,
    description: str,
    budget: int,
    seeds: list[int],
    baselines: dict[str, float],
    previous: str,
    objective: str,
) -> str:
    table = "\n".join(f"  - {name}: {cost:.3f}" for name, cost in baselines.items())
    design = _SCHEDULER_DESIGN if task == "scheduling" else _AUTOSCALER_DESIGN
    return f"""\
You are a systems researcher designing {_SYSTEM[task]} of an LLM-serving cluster. Work like one:
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
{seeds}), a score of 20 / cost, the metrics behind it, and per-request CSVs you can analyse with
`run_analysis` (numpy is available; columns include request_e2e_time, prefill_e2e_time,
decode_time_per_token, request_scheduling_delay, request_num_restarts,
request_num_prefill_tokens, replica_id). You have {budget} simulations in this context: each
`run_simulation` call uses one, whatever the outcome. Baselines on the same seeds (cost):
{table}

{_HOW_TO_WORK}{previous}
"""


def researcher_agent(model: Model) -> Agent[ResearchDeps, str]:
    """The researcher agent with its tools (its instructions come with each run)."""
    agent: Agent[ResearchDeps, str] = Agent(model, deps_type=ResearchDeps, retries=3)

    @agent.tool
    async def list_files(ctx: RunContext[ResearchDeps]) -> str:
        """List the files in your workspace with their sizes."""
        return "\n".join(ctx.deps.workspace.list()) or "(empty)"

    @agent.tool
    async def read_file(ctx: RunContext[ResearchDeps], path: str, offset: int = 0) -> str:
        """Read a file of your workspace (up to 64,000 characters from `offset`)."""
        try:
            return ctx.deps.workspace.read(path, offset)
        except WorkspaceError as e:
            return f"error: {e}"

    @agent.tool
    async def write_file(ctx: RunContext[ResearchDeps], path: str, content: str) -> str:
        """Create or replace a file of your workspace (e.g. a design, or notes)."""
        try:
            return ctx.deps.workspace.write(path, content)
        except WorkspaceError as e:
            return f"error: {e}"

    @agent.tool
    async def edit_file(ctx: RunContext[ResearchDeps], path: str, old: str, new: str) -> str:
        """Replace the one occurrence of `old` in a file by `new`."""
        try:
            return ctx.deps.workspace.edit(path, old, new)
        except WorkspaceError as e:
            return f"error: {e}"

    @agent.tool
    async def run_analysis(ctx: RunContext[ResearchDeps], script: str) -> str:
        """Run a Python analysis script in your workspace directory (numpy available; 30 s,
        1 GB; no network). Returns what it prints."""
        out = await _analysis.run_analysis(script, ctx.deps.workspace.root)
        if out.ok:
            return out.output or "(no output: print what you want to see)"
        return f"error: {out.error}\n{out.output}".rstrip()

    @agent.tool
    async def run_simulation(
        ctx: RunContext[ResearchDeps],
        design_path: str,
        note: str = "",
        seeds: list[int] | None = None,
    ) -> dict[str, Any]:
        """Simulate the design in `design_path` (uses one simulation of your budget).

        `note` says what this experiment tests (it goes into the research log); `seeds`
        overrides the default seeds. Returns the score (20 / mean E2E), metrics, the
        experiment id and the per-request CSV paths in your workspace — or the failure with
        its traceback if the design could not run.
        """
        return await ctx.deps.bench.run_simulation(ctx.deps.context, design_path, note, seeds)

    @agent.tool
    async def report(ctx: RunContext[ResearchDeps], findings: str) -> str:
        """Record a finding in the research log (visible to your team live)."""
        await ctx.deps.bench.publish(ctx.deps.context, findings)
        return "recorded"

    return agent
