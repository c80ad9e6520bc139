"""The replica-scheduling design interface and its baselines.

A :class:`ReplicaScheduler` runs inside every replica: before each iteration it orders the
requests waiting there for admission, and when memory runs out it picks the running request to
preempt. One object serves every replica (it is told which replica it is looking at).
"""

from __future__ import annotations

from collections.abc import Sequence

from glia.sim import ReplicaView, Request

from ._policy import Policy, resolve

__all__ = [
    "SCHEDULERS",
    "FairScheduler",
    "FcfsScheduler",
    "ReplicaScheduler",
    "SarathiScheduler",
    "ShortestPromptScheduler",
    "resolve_scheduler",
]


class ReplicaScheduler(Policy):
    """Base class of replica schedulers: vLLM's behaviour, to override piece by piece.

    * :meth:`order` returns the waiting requests of ``replica.queue`` to admit, in order;
      requests left out wait for a later iteration. Admission stops at the first request that
      does not fit in memory, unless ``skip_blocked`` is true.
    * :meth:`victim` returns the running request to preempt (``replica.running[k].request``);
      it is recomputed from scratch later.
    * ``token_budget`` caps the tokens of an iteration (Sarathi's chunk size; ``None``: the
      replica's).
    * :meth:`admitted` is told which of the ordered requests were admitted.
    """

    token_budget: int | None = None
    skip_blocked: bool = False

    def order(self, replica: ReplicaView, now: float) -> Sequence[Request]:
        """First come, first served."""
        return replica.queue

    def victim(self, replica: ReplicaView, now: float) -> Request:
        """The running request that arrived last."""
        return max((r.request for r in replica.running), key=lambda q: (q.arrived_at, q.id))

    def admitted(self, replica: ReplicaView, requests: Sequence[Request]) -> None:
        """Told after every :meth:`order` call which requests the replica admitted, in order
        (those that fitted in memory, budget and batch); does nothing unless overridden."""


class FcfsScheduler(ReplicaScheduler):
    """vLLM's default: first come first served; preempt the youngest."""

    name = "fcfs"


class ShortestPromptScheduler(ReplicaScheduler):
    """Shortest prompt first (requests that fit are not held behind one that does not)."""

    name = "spf"
    skip_blocked = True

    def order(self, replica: ReplicaView, now: float) -> Sequence[Request]:
        return sorted(replica.queue, key=lambda q: (q.num_prefill_tokens, q.arrived_at, q.id))


class FairScheduler(ReplicaScheduler):
    """Shortest prompt first with aging, so nothing starves: a request's priority is its prompt
    length minus ``aging`` tokens per second it has waited."""

    name = "fair"
    skip_blocked = True
    aging = 200.0

    def order(self, replica: ReplicaView, now: float) -> Sequence[Request]:
        def key(q: Request) -> tuple[float, float, int]:
            return (q.num_prefill_tokens - self.aging * (now - q.arrived_at), q.arrived_at, q.id)

        return sorted(replica.queue, key=key)


class SarathiScheduler(ReplicaScheduler):
    """FCFS with Sarathi-Serve's small chunks: at most ``token_budget`` tokens an iteration, so
    long prefills interfere less with running decodes (at some cost in time to first token)."""

    name = "sarathi-512"
    token_budget = 512


SCHEDULERS: dict[str, type[ReplicaScheduler]] = {
    cls.name: cls
    for cls in (FcfsScheduler, ShortestPromptScheduler, FairScheduler, SarathiScheduler)
}
"""Every baseline replica scheduler by name."""


def resolve_scheduler(spec: str | ReplicaScheduler | type[ReplicaScheduler]) -> ReplicaScheduler:
    """A scheduler from a baseline name, a class or an instance."""
    return resolve("scheduler", spec, ReplicaScheduler, SCHEDULERS)
