"""Scheduling: each replica's scheduler orders and admits its queued requests and picks whom
to preempt; the objective weighs the tail: mean E2E plus a tenth of the p99 E2E (s), so a
minute of tail costs as much as six seconds of mean and starving long requests does not pay."""

from __future__ import annotations

from dataclasses import dataclass

from glia.policies import SCHEDULERS, ReplicaScheduler, SchedulerMechanisms, compose_scheduler
from glia.sim import Summary

from ._setups import PAPER_CLUSTER, PAPER_WORKLOAD
from ._task import Preset, Slo, Task

__all__ = ["SCHEDULING"]

NAME = "scheduling"

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


@dataclass(frozen=True, kw_only=True)
class _Scheduling(Task):
    def cost(self, s: Summary, slo: Slo | None = None) -> float:
        return s.mean_e2e_s + 0.1 * s.p99_e2e_s


PRESETS = (
    Preset(
        name="glia-scheduling",
        description=(
            "The routing study's cluster and workload with least-loaded-queue routing: "
            "replicas often run out of KV memory and requests queue inside them, so the "
            "order they are admitted in (and who is preempted) decides mean and tail E2E"
        ),
        cluster=PAPER_CLUSTER,
        workload=PAPER_WORKLOAD,
        task=NAME,
    ),
)

SCHEDULING = _Scheduling(
    name=NAME,
    preset="glia-scheduling",
    presets=PRESETS,
    objective="minimise mean E2E + 0.1 x p99 E2E",
    baselines=SCHEDULERS,
    base=ReplicaScheduler,
    slot="scheduler",
    system="the per-replica request scheduler",
    design_text=_SCHEDULER_DESIGN,
    example=("example_scheduler.py", compose_scheduler(SchedulerMechanisms(), name="Fcfs")),
    mechanisms=SchedulerMechanisms,
    compose=compose_scheduler,
)
"""Replica scheduling."""
