"""The design interfaces inside the sandbox: ``glia.policies`` as a design imports it there.

The same classes, defaults and documentation as the trusted ``glia.policies`` bases, over the
snapshot views of :mod:`.views`; the baselines and helpers of the trusted package are not here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from .views import ClusterView, LoadView, ReplicaView, Request

__all__ = ["Assignment", "Autoscaler", "Policy", "ReplicaScheduler", "Router"]

Assignment = tuple[int, Request]
"""``(replica index, request)``: send this request from the global queue to that replica."""


class Policy:
    """Base of the design interfaces."""

    name: ClassVar[str] = ""
    """Short name used in reports; defaults to the class name."""

    rng: Any
    """A seeded ``numpy.random.Generator``."""

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__dict__.get("name"):
            cls.name = cls.__name__

    def setup(self, cluster: ClusterView, rng: Any) -> None:
        """Called once before the first request; call ``super().setup`` to keep ``self.rng``."""
        self.rng = rng


class Router(Policy):
    """Base class of every router: implement :meth:`schedule`, returning ``(replica index,
    request)`` pairs of requests from ``cluster.queue`` to route now (others are held)."""

    def schedule(self, cluster: ClusterView) -> list[Assignment]:
        """Return the requests of ``cluster.queue`` to route now, with their replicas."""
        raise NotImplementedError(f"{type(self).__name__} must implement schedule(cluster)")


class ReplicaScheduler(Policy):
    """Base class of replica schedulers: vLLM's behaviour, to override piece by piece."""

    token_budget: int | None = None
    skip_blocked: bool = False

    def order(self, replica: ReplicaView, now: float) -> Sequence[Request]:
        """First come, first served."""
        return replica.queue

    def victim(self, replica: ReplicaView, now: float) -> Request:
        """The running request that arrived last."""
        return max((r.request for r in replica.running), key=lambda q: (q.arrived_at, q.id))

    def admitted(self, replica: ReplicaView, requests: Sequence[Request]) -> None:
        """Told after every :meth:`order` call which requests the replica admitted."""


class Autoscaler(Policy):
    """Base class of autoscalers: override :meth:`scale` (and ``interval_s``, at least 1 s)."""

    interval_s: float = 15.0

    def scale(self, load: LoadView) -> int:
        """The number of replicas wanted; the base class keeps the current count."""
        return load.num_replicas
