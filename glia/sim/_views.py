"""Read-only views of the cluster that routing policies receive.

Views read the live simulator state on demand (so a policy pays only for what it looks at) and
expose no way to change it. True output lengths are not reachable through them.
"""

from __future__ import annotations

from typing import Literal

from ._replica import Replica
from ._request import Request, RunningRequest

__all__ = ["SCRAPED_FIELDS", "UNSCRAPABLE_FIELDS", "ClusterView", "ReplicaView",
           "StaleReplicaView", "Trigger", "UnscrapableFieldError"]  # fmt: skip

Trigger = Literal["arrival", "completion", "ready", "scale"]


class ReplicaView:
    """One replica as a policy sees it."""

    __slots__ = ("_r", "gpu", "model")

    stale_fields: frozenset[str] = frozenset()
    """Fields shown as of the last metrics scrape rather than now (none here)."""

    def __init__(self, replica: Replica, gpu: str, model: str) -> None:
        self._r = replica
        self.gpu = gpu
        self.model = model

    @property
    def metrics_age_s(self) -> float:
        """How old the scraped fields (:data:`SCRAPED_FIELDS`) are, in seconds: 0 here, where
        every field is exact; a :class:`StaleReplicaView` (``metrics_interval_s`` above 0) shows
        the age of its last scrape."""
        return 0.0

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
        r = self._r
        r.sync()
        return r.num_blocks - r.free

    @property
    def num_free_blocks(self) -> int:
        self._r.sync()
        return self._r.free

    @property
    def queue(self) -> tuple[Request, ...]:
        """Requests routed here but not yet admitted, in the order the replica will admit them."""
        q = self._r.queue
        return tuple([j.req for j in q]) if q else ()

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


SCRAPED_FIELDS = frozenset({"queue", "num_queued", "num_running", "num_allocated_blocks",
                            "num_free_blocks"})  # fmt: skip
"""Fields a router in front of real engines reads from their ``/metrics`` (see
:mod:`glia.engines._scrape`: ``num_waiting``, ``num_running``, ``kv_usage``), so stale by up to
``metrics_interval_s``. ``queue`` is the last ``num_waiting`` requests the router itself sent
to the engine and has not seen complete (engines admit in order), so it is as stale as the
count."""

UNSCRAPABLE_FIELDS = frozenset({"running", "cached_prefix", "prefix_cache_blocks"})
"""Fields no engine's ``/metrics`` exposes: the order of an engine's own queue, its running
requests' progress and KV blocks, and its prefix cache. A router in front of real engines (and so
a design under ``metrics_interval_s`` above 0) cannot read them."""


class UnscrapableFieldError(Exception):
    """A design read a field of :data:`UNSCRAPABLE_FIELDS` under ``metrics_interval_s`` above 0.

    Not a ``DesignError`` itself: the simulator wraps it in one naming the policy and the time,
    as the sandbox does, so the failure reads the same in and out of the sandbox."""


class StaleReplicaView(ReplicaView):
    """A replica as a router in front of real engines sees it: scraped metrics, each with its age.

    ``num_queued``, ``num_running`` and the KV block counts are as of the last scrape, taken
    ``metrics_age_s`` seconds ago; the static facts (``id``, ``gpu``, ``num_blocks``, ...) and the
    router's own tracking (``num_outstanding``: requests it routed here that have not completed)
    are exact. The fields in :data:`UNSCRAPABLE_FIELDS` raise :class:`UnscrapableFieldError`.

    A scrape happens at the first policy call at or after each multiple of the interval and
    shows the replica at that call (so between two such calls its age grows from 0); the
    simulator's event loop is untouched, which keeps the exact default bit-identical.
    """

    __slots__ = ("_allocated", "_now", "_queue", "_running", "_scraped_at")

    stale_fields = SCRAPED_FIELDS

    def __init__(self, replica: Replica, gpu: str, model: str) -> None:
        super().__init__(replica, gpu, model)
        self._scraped_at = -1.0  # no scrape yet: the first policy call takes one
        self._now = 0.0
        self._running = self._allocated = 0
        self._queue: tuple[Request, ...] = ()

    def _scrape(self, now: float) -> None:
        r = self._r
        r.sync()
        self._queue = tuple(j.req for j in r.queue)
        self._running = r.num_running
        self._allocated = r.num_blocks - r.free
        self._scraped_at = now

    @property
    def metrics_age_s(self) -> float:
        """Seconds since the last scrape of this replica's metrics."""
        return self._now - self._scraped_at

    @property
    def num_queued(self) -> int:
        """Requests waiting on the replica, as of the last scrape (``num_waiting``)."""
        return len(self._queue)

    @property
    def num_running(self) -> int:
        """Requests running on the replica, as of the last scrape."""
        return self._running

    @property
    def num_allocated_blocks(self) -> int:
        """KV blocks in use, as of the last scrape (``kv_usage`` times ``num_blocks``)."""
        return self._allocated

    @property
    def num_free_blocks(self) -> int:
        return self._r.num_blocks - self._allocated

    def _unscrapable(self, name: str) -> UnscrapableFieldError:
        return UnscrapableFieldError(
            f"a design read ReplicaView.{name}, which a router in front of real engines cannot "
            f"see (metrics_interval_s > 0): use {', '.join(sorted(SCRAPED_FIELDS))} (as of the "
            "last scrape, see metrics_age_s) or num_outstanding (the router's own count)"
        )

    @property
    def queue(self) -> tuple[Request, ...]:
        """Requests waiting on the replica as of the last scrape, in admission order."""
        return self._queue

    @property
    def running(self) -> tuple[RunningRequest, ...]:
        raise self._unscrapable("running")

    def cached_prefix(self, request: Request) -> int:
        raise self._unscrapable("cached_prefix")

    @property
    def prefix_cache_blocks(self) -> int:
        raise self._unscrapable("prefix_cache_blocks")


class Scraper:
    """Refreshes stale views' metrics every ``interval`` seconds of simulated time."""

    __slots__ = ("_interval", "_next", "_views")

    def __init__(self, views: tuple[StaleReplicaView, ...], interval: float) -> None:
        self._views = views
        self._interval = interval
        self._next = 0.0  # the first call scrapes

    def look(self, now: float) -> None:
        """Called before each policy call at ``now`` (replicas synced to ``now``)."""
        if now >= self._next:
            for v in self._views:
                v._scrape(now)
            # The next scrape is due at the next multiple of the interval after now.
            self._next = (now // self._interval + 1.0) * self._interval
        for v in self._views:
            v._now = now
