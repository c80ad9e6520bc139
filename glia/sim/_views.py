"""Read-only views of the cluster that routing policies receive.

Views read the live simulator state on demand (so a policy pays only for what it looks at) and
expose no way to change it. True output lengths are not reachable through them.
"""

from __future__ import annotations

from typing import Literal

from ._replica import Replica
from ._request import Request, RunningRequest

__all__ = ["ClusterView", "ReplicaView", "Trigger"]

Trigger = Literal["arrival", "completion", "ready", "scale"]


class ReplicaView:
    """One replica as a policy sees it."""

    __slots__ = ("_r", "gpu", "model")

    def __init__(self, replica: Replica, gpu: str, model: str) -> None:
        self._r = replica
        self.gpu = gpu
        self.model = model

    @property
    def id(self) -> int:
        """The replica's stable number; its position in ``cluster.replicas`` is what a router
        returns (the same, unless an autoscaler has turned some replicas off)."""
        return self._r.id

    @property
    def num_blocks(self) -> int:
        """KV-cache capacity in blocks."""
        return self._r.num_blocks

    @property
    def block_size(self) -> int:
        """Tokens per KV block."""
        return self._r.block_size

    @property
    def watermark_blocks(self) -> int:
        """Blocks the replica keeps free when admitting a new request."""
        return self._r.watermark

    @property
    def num_allocated_blocks(self) -> int:
        """KV blocks held by running requests now."""
        self._r.sync()
        return self._r.num_blocks - self._r.free

    @property
    def num_free_blocks(self) -> int:
        self._r.sync()
        return self._r.free

    @property
    def queue(self) -> tuple[Request, ...]:
        """Requests routed here but not yet admitted, in the order the replica will admit them."""
        return tuple(j.req for j in self._r.queue)

    @property
    def num_queued(self) -> int:
        return len(self._r.queue)

    @property
    def running(self) -> tuple[RunningRequest, ...]:
        """Admitted requests (holding KV blocks), with their progress."""
        return self._r.snapshot()

    @property
    def num_running(self) -> int:
        return self._r.num_running

    def cached_prefix(self, request: Request) -> int:
        """Prompt tokens of ``request`` this replica's prefix cache would serve if it were
        admitted now (0 without prefix caching; see :mod:`glia.sim._prefix`)."""
        cache = self._r.cache
        return cache.peek(request) if cache is not None else 0

    @property
    def prefix_cache_blocks(self) -> int:
        """KV blocks the replica's prefix cache holds now (0 without prefix caching)."""
        cache = self._r.cache
        return cache.used if cache is not None else 0

    @property
    def num_outstanding(self) -> int:
        """Queued plus running requests."""
        r = self._r
        return len(r.queue) + len(r.prefilling) + len(r.decoding)

    def __repr__(self) -> str:
        return (
            f"ReplicaView(id={self.id}, queued={self.num_queued}, running={self.num_running}, "
            f"blocks={self.num_allocated_blocks}/{self.num_blocks})"
        )


class ClusterView:
    """The whole cluster at the moment a policy is called."""

    __slots__ = ("_queue", "now", "replicas", "trigger")

    def __init__(
        self,
        now: float,
        trigger: Trigger,
        queue: dict[int, Request],
        replicas: tuple[ReplicaView, ...],
    ) -> None:
        self.now = now
        """Simulated time in seconds."""
        self.trigger: Trigger = trigger
        """Why the policy is called: a request arrived, one completed somewhere, a replica
        became ready (autoscaling), or an autoscaler is looking (``"scale"``)."""
        self._queue = queue
        self.replicas = replicas
        """The replicas a router may use; a router returns a position in this tuple (the
        replica's id, unless an autoscaler has turned some replicas off)."""

    @property
    def queue(self) -> tuple[Request, ...]:
        """The global queue: arrived requests not yet routed, in arrival order."""
        return tuple(self._queue.values())

    @property
    def num_queued(self) -> int:
        return len(self._queue)

    @property
    def num_replicas(self) -> int:
        return len(self.replicas)
