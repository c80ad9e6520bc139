"""What a design sees, built from the plain-data snapshots the trusted simulator sends.

These are the public fields of the simulator's views (``glia.sim.ClusterView`` and friends),
the same a router in front of real engines can know: never a request's output length, never
an arrival that has not happened. Heavy, rarely read fields (a replica's running requests, its
prefix cache) are fetched from the simulator on first use within a call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import msgspec

__all__ = ["ClusterView", "LoadView", "ReplicaView", "Request", "RunningRequest", "Trigger"]


class UnscrapableFieldError(Exception):
    """A design read a field a router in front of real engines cannot see (as the simulator's
    ``glia.sim.UnscrapableFieldError``, so the failure reads the same in and out of the box)."""


Trigger = Literal["arrival", "completion", "ready", "scale"]


class Request(msgspec.Struct, frozen=True, array_like=True):
    """A request as a policy sees it: never its true output length (see ``glia.sim.Request``)."""

    id: int
    arrived_at: float
    num_prefill_tokens: int
    prefix_id: int = -1
    prefix_len: int = 0


class RunningRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A request admitted on a replica, with its progress (see ``glia.sim.RunningRequest``)."""

    request: Request
    num_processed_tokens: int
    num_generated_tokens: int
    num_allocated_blocks: int
    in_prefill: bool
    num_restarts: int


class ReplicaView:
    """One replica as a policy sees it (see ``glia.sim.ReplicaView``)."""

    __slots__ = (
        "_allocated",
        "_blocks",
        "_cached",
        "_outstanding",
        "_prefix_blocks",
        "_running",
        "_running_now",
        "block_size",
        "gpu",
        "id",
        "metrics_age_s",
        "model",
        "num_blocks",
        "num_running",
        "queue",
        "watermark_blocks",
    )

    def __init__(
        self,
        id: int,
        gpu: str,
        model: str,
        num_blocks: int,
        block_size: int,
        watermark_blocks: int,
        fetch_running: Callable[[], tuple[RunningRequest, ...]],
        fetch_cached: Callable[[Request], int],
        fetch_blocks: Callable[[], tuple[int, int]],
    ) -> None:
        self.id = id
        self.gpu = gpu
        self.model = model
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.watermark_blocks = watermark_blocks
        self.num_running = 0
        self._allocated = -1  # -1: not sent with this call, fetched on first read
        self._prefix_blocks = -1
        self.queue: tuple[Request, ...] = ()
        """Requests routed here but not yet admitted, in the order the replica admits them."""
        self._running = fetch_running
        self._cached = fetch_cached
        self._blocks = fetch_blocks
        self._running_now: tuple[RunningRequest, ...] | None = None
        self.metrics_age_s = 0.0
        """How old the scraped fields are (0 unless the cluster's ``metrics_interval_s`` is)."""
        self._outstanding = -1  # -1: exact views, queue plus running

    def _scraped(self, name: str) -> None:
        # The same refusal, word for word, as glia.sim.StaleReplicaView's.
        if self._outstanding >= 0:
            raise UnscrapableFieldError(
                f"a design read ReplicaView.{name}, which a router in front of real engines "
                "cannot see (metrics_interval_s > 0): use num_allocated_blocks, num_free_blocks, "
                "num_queued, num_running, queue (as of the last scrape, see metrics_age_s) or "
                "num_outstanding (the router's own count)"
            )

    def _update(self, allocated: int, prefix_blocks: int) -> None:
        self._allocated, self._prefix_blocks = allocated, prefix_blocks
        self._running_now = None

    @property
    def num_allocated_blocks(self) -> int:
        """KV blocks held by running requests now."""
        if self._allocated < 0:
            self._allocated, self._prefix_blocks = self._blocks()
        return self._allocated

    @property
    def prefix_cache_blocks(self) -> int:
        """KV blocks the replica's prefix cache holds now (0 without prefix caching)."""
        self._scraped("prefix_cache_blocks")
        if self._prefix_blocks < 0:
            self._allocated, self._prefix_blocks = self._blocks()
        return self._prefix_blocks

    @property
    def num_free_blocks(self) -> int:
        return self.num_blocks - self.num_allocated_blocks

    @property
    def num_queued(self) -> int:
        return len(self.queue)

    @property
    def num_outstanding(self) -> int:
        """Queued plus running requests (the router's own count when metrics are scraped)."""
        if self._outstanding >= 0:
            return self._outstanding
        return len(self.queue) + self.num_running

    @property
    def running(self) -> tuple[RunningRequest, ...]:
        """Admitted requests (holding KV blocks), with their progress."""
        self._scraped("running")
        if self._running_now is None:
            self._running_now = self._running()
        return self._running_now

    def cached_prefix(self, request: Request) -> int:
        """Prompt tokens of ``request`` this replica's prefix cache would serve now."""
        self._scraped("cached_prefix")
        return self._cached(request)

    def __repr__(self) -> str:
        return (
            f"ReplicaView(id={self.id}, queued={self.num_queued}, running={self.num_running}, "
            f"blocks={self.num_allocated_blocks}/{self.num_blocks})"
        )


class ClusterView:
    """The whole cluster at the moment a policy is called (see ``glia.sim.ClusterView``)."""

    __slots__ = ("now", "queue", "replicas", "trigger")

    def __init__(
        self, now: float, trigger: Trigger, queue: tuple[Request, ...],
        replicas: tuple[ReplicaView, ...],
    ) -> None:  # fmt: skip
        self.now = now
        self.trigger: Trigger = trigger
        self.queue = queue
        """The global queue: arrived requests not yet routed, in arrival order."""
        self.replicas = replicas
        """The replicas a router may use; a router returns a position in this tuple."""

    @property
    def num_queued(self) -> int:
        return len(self.queue)

    @property
    def num_replicas(self) -> int:
        return len(self.replicas)


class LoadView:
    """What an autoscaler sees when it is called (see ``glia.sim.LoadView``)."""

    __slots__ = (
        "arrivals", "cluster", "completions", "max_replicas", "min_replicas", "now",
        "num_active", "num_draining", "num_ongoing", "num_starting", "window_s",
    )  # fmt: skip

    def __init__(
        self, cluster: ClusterView, *, window_s: float, arrivals: int, completions: int,
        min_replicas: int, max_replicas: int, num_active: int, num_starting: int,
        num_draining: int, num_ongoing: int,
    ) -> None:  # fmt: skip
        self.now = cluster.now
        self.cluster = cluster
        self.window_s = window_s
        self.arrivals = arrivals
        self.completions = completions
        self.min_replicas = min_replicas
        self.max_replicas = max_replicas
        self.num_active = num_active
        self.num_starting = num_starting
        self.num_draining = num_draining
        self.num_ongoing = num_ongoing

    @property
    def num_replicas(self) -> int:
        """Replicas asked for: active plus starting."""
        return self.num_active + self.num_starting

    @property
    def arrival_rate(self) -> float:
        """Requests per second that arrived since the previous call."""
        return self.arrivals / self.window_s if self.window_s > 0 else 0.0

    def __repr__(self) -> str:
        return (
            f"LoadView(now={self.now:.1f}, active={self.num_active}, starting="
            f"{self.num_starting}, draining={self.num_draining}, ongoing={self.num_ongoing}, "
            f"arrival_rate={self.arrival_rate:.2f})"
        )
