"""Mechanism catalogues of the scheduling and autoscaling tasks, and the designs they compose.

Like :mod:`glia.policies._mechanisms` for routers: the offline designer searches over these
structs, and :func:`compose_scheduler` / :func:`compose_autoscaler` write the readable,
self-contained design file a researcher would write for a choice (it runs in the sandbox like
any other design).

Replica scheduler mechanisms: admission **order** (arrival, or shortest prompt first with
**aging**: a request gains ``aging`` tokens of priority per second it waits, and a
**starvation bound**: one that has waited ``starve_s`` goes first), **backfill** (requests that
fit pass one that does not), the iteration's **token budget** (Sarathi chunking) and the
preemption **victim** (the youngest, as vLLM; or the one holding the most KV blocks, which frees
memory with the fewest preemptions; or the one with the fewest tokens computed, which loses the
least work).

Autoscaler mechanisms: the load **target** (ongoing requests per replica), the **window** the
load is averaged over, a **boost** that over-provisions on the way up (new replicas take a cold
start to arrive), a scale-down **delay** (how long the lower count must be wanted first), a
**trend** term that scales for the load expected one cold start ahead (from the arrival rate's
slope over the window), and the call **interval**.
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = [
    "ScalerMechanisms",
    "SchedulerMechanisms",
    "compose_autoscaler",
    "compose_scheduler",
]

Victim = Literal["youngest", "most-blocks", "least-progress"]


class SchedulerMechanisms(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One point of the scheduler design space (the defaults are vLLM's FCFS)."""

    order: Literal["arrival", "shortest-prompt"] = "arrival"
    aging: float = 0.0
    """Tokens of priority gained per second waited (shortest-prompt only; 0: none)."""
    starve_s: float = 0.0
    """A request waiting longer than this goes first, oldest first (shortest-prompt only; 0:
    never): a bound on starvation that leaves the order of everyone else alone."""
    backfill: bool = False
    token_budget: int = 0
    """Tokens per iteration (0: the replica's chunk size)."""
    victim: Victim = "youngest"

    def describe(self) -> str:
        parts = [f"order={self.order}"]
        if self.order == "shortest-prompt":
            parts.append(f"aging={self.aging:g}")
            if self.starve_s:
                parts.append(f"starve={self.starve_s:g}s")
        parts.append("backfill" if self.backfill else "no-backfill")
        if self.token_budget:
            parts.append(f"token_budget={self.token_budget}")
        parts.append(f"victim={self.victim}")
        return ", ".join(parts)


def compose_scheduler(m: SchedulerMechanisms, *, name: str = "Candidate") -> str:
    """Design source (a ``ReplicaScheduler`` subclass called ``name``) implementing ``m``."""
    if not name.isidentifier():
        raise ValueError(f"class name {name!r} is not an identifier")
    if m.order == "arrival":
        order = "        return replica.queue\n"
    else:
        order = (
            "        # Shortest prompt first; waiting earns priority, and a request waiting\n"
            "        # longer than STARVE_S (if set) goes first: long prompts never starve.\n"
            "        def key(q):\n"
            "            waited = now - q.arrived_at\n"
            "            if STARVE_S and waited > STARVE_S:\n"
            "                return (0, q.arrived_at, q.id)\n"
            "            return (1, q.num_prefill_tokens - AGING * waited, q.id)\n\n"
            "        return sorted(replica.queue, key=key)\n"
        )
    if m.victim == "youngest":
        victim = (
            "        return max((r.request for r in replica.running),\n"
            "                   key=lambda q: (q.arrived_at, q.id))\n"
        )
    elif m.victim == "least-progress":
        victim = (
            "        # Lose the least work: the request with the fewest tokens computed.\n"
            "        low = min(replica.running, key=lambda r: (\n"
            "            r.num_processed_tokens, -r.request.arrived_at, -r.request.id))\n"
            "        return low.request\n"
        )
    else:
        victim = (
            "        # Free the most memory with one preemption (ties: the youngest).\n"
            "        top = max(replica.running, key=lambda r: (\n"
            "            r.num_allocated_blocks, r.request.arrived_at, r.request.id))\n"
            "        return top.request\n"
        )
    budget = str(m.token_budget) if m.token_budget else "None"
    return (
        "from glia.policies import ReplicaScheduler\n\n"
        f"AGING = {m.aging!r}  # tokens of priority per second waited\n"
        f"STARVE_S = {m.starve_s!r}  # seconds after which a request goes first (0: never)\n\n\n"
        f"class {name}(ReplicaScheduler):\n"
        f'    """{m.describe()}"""\n\n'
        f"    skip_blocked = {m.backfill!r}\n"
        f"    token_budget = {budget}\n\n"
        "    def order(self, replica, now):\n"
        f"{order}\n"
        "    def victim(self, replica, now):\n"
        f"{victim}"
    )


class ScalerMechanisms(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One point of the autoscaler design space (the defaults are close to the HPA's)."""

    target: float = 24.0
    """Ongoing requests per replica to aim for."""
    window_s: float = 60.0
    boost: float = 1.0
    """Over-provisioning factor when scaling up."""
    down_delay_s: float = 300.0
    trend: bool = False
    interval_s: float = 15.0

    def describe(self) -> str:
        parts = [
            f"target={self.target:g}", f"window={self.window_s:g}s",
            f"boost={self.boost:g}", f"down_delay={self.down_delay_s:g}s",
        ]  # fmt: skip
        if self.trend:
            parts.append("trend")
        parts.append(f"interval={self.interval_s:g}s")
        return ", ".join(parts)


def compose_autoscaler(m: ScalerMechanisms, *, name: str = "Candidate") -> str:
    """Design source (an ``Autoscaler`` subclass called ``name``) implementing ``m``."""
    if not name.isidentifier():
        raise ValueError(f"class name {name!r} is not an identifier")
    return f'''import math

from glia.policies import Autoscaler

TARGET = {m.target!r}  # ongoing requests (queued + running) per replica
WINDOW_S = {m.window_s!r}  # load averaged over this many seconds
BOOST = {m.boost!r}  # over-provision when scaling up: new replicas take a cold start
DOWN_DELAY_S = {m.down_delay_s!r}  # a lower count must be wanted this long before draining
TREND = {m.trend!r}  # scale for the load expected one cold start ahead
COLD_START_S = 180.0


class {name}(Autoscaler):
    """{m.describe()}"""

    interval_s = {m.interval_s!r}

    def setup(self, cluster, rng):
        super().setup(cluster, rng)
        self.samples = []  # (time, ongoing requests, arrivals per second)
        self.low_since = None

    def scale(self, load):
        now = load.now
        self.samples.append((now, load.num_ongoing, load.arrival_rate))
        self.samples = [s for s in self.samples if s[0] > now - WINDOW_S]
        ongoing = sum(s[1] for s in self.samples) / len(self.samples)
        if TREND and len(self.samples) > 1:
            # Little's law: ongoing grows with the arrival rate; extrapolate one cold start.
            (t0, _, r0), (t1, _, r1) = self.samples[0], self.samples[-1]
            rate = sum(s[2] for s in self.samples) / len(self.samples)
            if t1 > t0 and rate > 0:
                growth = (r1 - r0) / (t1 - t0) * COLD_START_S / rate
                ongoing *= max(1.0, 1.0 + growth)
        current = load.num_replicas
        want = max(1, math.ceil(ongoing / TARGET))
        if want > current:
            self.low_since = None
            return max(want, math.ceil(want * BOOST))
        if want < current:
            if self.low_since is None:
                self.low_since = now
            if now - self.low_since >= DOWN_DELAY_S:
                self.low_since = None
                return want
            return current
        self.low_since = None
        return current
'''
