"""The baseline routers: what production systems and the Glia paper compare against.

All are deterministic given the simulation seed; ties go to the lowest replica index.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from operator import attrgetter
from typing import TypeVar

import numpy as np

from glia._errors import InputError
from glia.sim import ClusterView, ReplicaView, Request

from ._prefix_index import PrefixIndex, cached_tokens
from ._router import Assignment, Router

__all__ = [
    "BASELINES",
    "CacheAwareRouter",
    "ExpertRouter",
    "HeadRoomAdmissionRouter",
    "LeastKvRouter",
    "LeastLoadedQueueRouter",
    "LeastOutstandingRouter",
    "LlmdPrefixRouter",
    "LlmdScorerRouter",
    "LlmdWeighted11Router",
    "LlmdWeighted322Router",
    "PowerOfTwoRouter",
    "RandomRouter",
    "RoundRobinRouter",
]


_F = TypeVar("_F", bound=Callable[..., object])


def _idle_when_queue_empty(schedule: _F) -> _F:
    """Mark a ``schedule`` that returns nothing and changes nothing when the global queue is
    empty: the simulator may then skip calling it (half the calls: completions). A subclass
    that overrides ``schedule`` does not inherit the mark."""
    schedule.__dict__["idle_when_queue_empty"] = True
    return schedule


def _prompt_blocks(tokens: float, block_size: int) -> int:
    return math.ceil(tokens / block_size)


class RandomRouter(Router):
    """Each request to a replica drawn uniformly at random."""

    name = "random"

    def schedule(self, cluster: ClusterView) -> list[Assignment]:
        q = cluster.queue
        picks = self.rng.integers(0, cluster.num_replicas, size=len(q))
        return [(int(r), req) for r, req in zip(picks, q, strict=True)]


class RoundRobinRouter(Router):
    """Replicas in turn."""

    name = "round-robin"

    def setup(self, cluster: ClusterView, rng: np.random.Generator) -> None:
        super().setup(cluster, rng)
        self._next = 0

    def schedule(self, cluster: ClusterView) -> list[Assignment]:
        out = []
        n = cluster.num_replicas
        self._next %= n  # the replicas may have changed (an engine left `glia serve`'s rotation)
        for req in cluster.queue:
            out.append((self._next, req))
            self._next = (self._next + 1) % n
        return out


def _greedy(cluster: ClusterView, load: list[int]) -> list[Assignment]:
    """Route every queued request, in arrival order, to the least ``load`` (then lowest id)."""
    out = []
    for req in cluster.queue:
        best = load.index(min(load))  # the first minimum: the lowest id among the least loaded
        out.append((best, req))
        load[best] += 1
    return out


class LeastOutstandingRouter(Router):
    """LOR: the replica with the fewest requests waiting in its queue (Vidur's ``lor``)."""

    name = "lor"

    @_idle_when_queue_empty
    def schedule(self, cluster: ClusterView) -> list[Assignment]:
        if not cluster.num_queued:  # nothing to route: skip reading the replicas
            return []
        return _greedy(cluster, [r.num_queued for r in cluster.replicas])


class LeastLoadedQueueRouter(Router):
    """LLQ: the replica with the fewest requests in flight (queued plus running)."""

    name = "llq"

    @_idle_when_queue_empty
    def schedule(self, cluster: ClusterView) -> list[Assignment]:
        if not cluster.num_queued:  # nothing to route: skip reading the replicas
            return []
        return _greedy(cluster, [r.num_outstanding for r in cluster.replicas])


class PowerOfTwoRouter(Router):
    """Power of two choices: of two distinct random replicas, the one with fewer in flight."""

    name = "power-of-two"

    @_idle_when_queue_empty
    def schedule(self, cluster: ClusterView) -> list[Assignment]:
        if not cluster.num_queued:
            return []
        n = cluster.num_replicas
        load = [r.num_outstanding for r in cluster.replicas]
        out = []
        for req in cluster.queue:
            if n == 1:
                best = 0
            else:
                a, b = (int(x) for x in self.rng.choice(n, size=2, replace=False))
                best = a if (load[a], a) <= (load[b], b) else b
            out.append((best, req))
            load[best] += 1
        return out


def _committed_blocks(r: ReplicaView, extra_per_token: float = 1.0) -> int:
    """Blocks allocated now plus those the queued prompts will take on admission."""
    bs = r.block_size
    total = r.num_allocated_blocks
    for q in r.queue:  # _prompt_blocks, inline: HRA calls this for every replica at every call
        total += math.ceil(q.num_prefill_tokens * extra_per_token / bs)
    return total


class LeastKvRouter(Router):
    """The replica with the fewest KV blocks committed (allocated plus queued prompts)."""

    name = "least-kv"

    @_idle_when_queue_empty
    def schedule(self, cluster: ClusterView) -> list[Assignment]:
        if not cluster.num_queued:
            return []
        reps = cluster.replicas
        kv = [_committed_blocks(r) for r in reps]
        load = [r.num_outstanding for r in reps]
        out = []
        for req in cluster.queue:
            best = min(range(len(reps)), key=lambda i: (kv[i], load[i], i))
            out.append((best, req))
            kv[best] += _prompt_blocks(req.num_prefill_tokens, reps[best].block_size)
            load[best] += 1
        return out


class LlmdScorerRouter(Router):
    """llm-d's inference-scheduler scorers, weighted: queue, KV use and prefix cache.

    Queue score: ``(max_q - q) / (max_q - min_q)`` over replicas (1 when all equal); KV score:
    ``1 - used / capacity``; prefix score: the fraction of the prompt cached on the replica
    (``cached_prefix / prompt``). The replica with the highest weighted sum wins. The class
    default weighs queue and KV equally, with no prefix scorer; ``queue_weight``, ``kv_weight``
    and ``prefix_weight`` set other weights (non-negative, not all 0).

    Behind scraped metrics (``metrics_interval_s`` above 0) the prefix scorer reads the
    router's own record of what it sent where (llm-d's approximate prefix-cache scorer; see
    :class:`~glia.policies._prefix_index.PrefixIndex`), since an engine's cache cannot be read.
    """

    name = "llm-d"
    queue_weight = 1.0
    kv_weight = 1.0
    prefix_weight = 0.0

    def __init__(
        self,
        *,
        queue_weight: float | None = None,
        kv_weight: float | None = None,
        prefix_weight: float | None = None,
    ) -> None:
        given = {"queue_weight": queue_weight, "kv_weight": kv_weight,
                 "prefix_weight": prefix_weight}  # fmt: skip
        for key, value in given.items():
            if value is None:
                continue
            if not (math.isfinite(value) and value >= 0.0):
                raise InputError(f"llm-d scorer {key} is {value}: give a finite weight >= 0")
            setattr(self, key, float(value))
        if self.queue_weight == self.kv_weight == self.prefix_weight == 0.0:
            raise InputError(
                "llm-d scorer weights are all 0: give at least one positive weight "
                "(queue_weight, kv_weight or prefix_weight)"
            )
        self._index = PrefixIndex()

    def setup(self, cluster: ClusterView, rng: np.random.Generator) -> None:
        super().setup(cluster, rng)
        self._index = PrefixIndex()  # a new run: nothing sent anywhere yet

    @property
    def weights(self) -> tuple[float, float, float]:
        """``(prefix_weight, queue_weight, kv_weight)``."""
        return (self.prefix_weight, self.queue_weight, self.kv_weight)

    @_idle_when_queue_empty
    def schedule(self, cluster: ClusterView) -> list[Assignment]:
        if not cluster.num_queued:
            return []
        reps = cluster.replicas
        queued = [r.num_queued for r in reps]
        kv = [_committed_blocks(r) for r in reps]
        out = []
        for req in cluster.queue:
            lo, hi = min(queued), max(queued)
            best, best_score = 0, float("-inf")
            for i, r in enumerate(reps):
                qs = 1.0 if hi == lo else (hi - queued[i]) / (hi - lo)
                ks = 1.0 - kv[i] / r.num_blocks
                score = self.queue_weight * qs + self.kv_weight * ks
                if self.prefix_weight:
                    hit = cached_tokens(r, req, self._index)
                    score += self.prefix_weight * hit / req.num_prefill_tokens
                if score > best_score:
                    best, best_score = i, score
            out.append((best, req))
            if self.prefix_weight:
                self._index.record(reps[best], req)
            queued[best] += 1
            kv[best] += _prompt_blocks(req.num_prefill_tokens, reps[best].block_size)
        return out


class LlmdPrefixRouter(LlmdScorerRouter):
    """llm-d's scorers with its prefix-cache scorer added, equally weighted: queue, KV use and
    the fraction of the prompt cached on the replica (``cached_prefix / prompt``)."""

    name = "llm-d-prefix"
    prefix_weight = 1.0


class LlmdWeighted11Router(LlmdScorerRouter):
    """llm-d's prefix-cache and load (queue) scorers weighted 1:1, no KV scorer: the tuned
    weighting of IBM's llm-d router study on prefix-heavy traffic."""

    name = "llm-d-1-1"
    prefix_weight = 1.0
    queue_weight = 1.0
    kv_weight = 0.0


class LlmdWeighted322Router(LlmdScorerRouter):
    """llm-d's default prefix-cache-aware profile: prefix-cache, queue and KV-use scorers
    weighted 3:2:2."""

    name = "llm-d-3-2-2"
    prefix_weight = 3.0
    queue_weight = 2.0
    kv_weight = 2.0


class CacheAwareRouter(Router):
    """SGLang's cache-aware router: the replica holding the most of the prompt if that is at
    least ``cache_threshold`` of it, else the least loaded; but when the load is imbalanced
    (in-flight requests differ by more than ``balance_abs`` and by a factor over
    ``balance_rel``), always the least loaded."""

    name = "sglang-cache"
    cache_threshold = 0.5
    balance_abs = 32
    balance_rel = 1.0001

    def __init__(self) -> None:
        self._index = PrefixIndex()  # behind scraped metrics: what it sent where

    def setup(self, cluster: ClusterView, rng: np.random.Generator) -> None:
        super().setup(cluster, rng)
        self._index = PrefixIndex()  # a new run: nothing sent anywhere yet

    @_idle_when_queue_empty
    def schedule(self, cluster: ClusterView) -> list[Assignment]:
        if not cluster.num_queued:
            return []
        reps = cluster.replicas
        load = [r.num_outstanding for r in reps]
        out = []
        for req in cluster.queue:
            least = min(range(len(reps)), key=lambda i: (load[i], i))
            hi, lo = max(load), load[least]
            best = least
            if not (hi - lo > self.balance_abs and hi > lo * self.balance_rel):
                hits = [cached_tokens(r, req, self._index) for r in reps]
                top = max(range(len(reps)), key=lambda i: (hits[i], -load[i], -i))
                if hits[top] >= self.cache_threshold * req.num_prefill_tokens:
                    best = top
            out.append((best, req))
            self._index.record(reps[best], req)
            load[best] += 1
        return out


_prompt_then_arrival = attrgetter("num_prefill_tokens", "arrived_at", "id")


def _shortest_prompt_first(queue: tuple[Request, ...]) -> list[Request]:
    return sorted(queue, key=_prompt_then_arrival)


class ExpertRouter(Router):
    """The human expert's router (Glia paper): shortest prompt first; hold when memory is full.

    Route the shortest queued prompt to the replica with the fewest committed blocks if that
    replica stays under ``limit`` (2,100 of 2,240 blocks, scaled to the replica's size);
    otherwise hold the queue until the next completion. (A request over the limit on its own
    goes to an empty replica, else it would wait for a completion that never comes.)
    """

    name = "expert"
    limit_fraction = 2100 / 2240

    @_idle_when_queue_empty
    def schedule(self, cluster: ClusterView) -> list[Assignment]:
        if not cluster.num_queued:
            return []
        reps = cluster.replicas
        committed = [_committed_blocks(r) for r in reps]
        out = []
        for req in _shortest_prompt_first(cluster.queue):
            best = min(range(len(reps)), key=lambda i: (committed[i], i))
            r = reps[best]
            need = _prompt_blocks(req.num_prefill_tokens, r.block_size)
            if committed[best] + need >= self.limit_fraction * r.num_blocks and not (
                committed[best] == 0 and r.num_outstanding == 0
            ):  # an empty replica takes even a prompt over the limit: no completion will come
                break
            out.append((best, req))
            committed[best] += need
        return out


class HeadRoomAdmissionRouter(Router):
    """HRA, the router Glia found (paper Fig. 12): head-room admission, shortest prompt first.

    Each request is projected to need ``ceil(prompt * (1 + decode_ratio) / block_size)`` blocks.
    For each replica, projected use = allocated blocks + the projection of every request routed
    there but not started. The shortest queued prompt goes to the replica with the lowest
    projected use (ties: fewer in flight) among those that keep ``safety`` of their blocks free
    after adding it; if none can, the queue is held until the next completion. (An empty replica
    takes even a request over the limit, else it would wait for a completion that never comes.)
    """

    name = "hra"
    decode_ratio = 0.6
    safety = 0.03

    @_idle_when_queue_empty
    def schedule(self, cluster: ClusterView) -> list[Assignment]:
        if not cluster.num_queued:
            return []
        reps = cluster.replicas
        grow = 1.0 + self.decode_ratio
        projected = [_committed_blocks(r, grow) for r in reps]
        load = [r.num_outstanding for r in reps]
        sizes = [r.block_size for r in reps]
        capacity = [r.num_blocks for r in reps]
        reserve = [int(c * self.safety) for c in capacity]
        indices = range(len(reps))
        out = []
        for req in _shortest_prompt_first(cluster.queue):
            tokens = req.num_prefill_tokens * grow
            best, least, fewest = -1, 0, 0
            for i in indices:
                p = projected[i]
                if capacity[i] - (p + math.ceil(tokens / sizes[i])) < reserve[i] and not (
                    p == 0 and reps[i].num_outstanding == 0
                ):  # an empty replica takes even an oversized request: nothing else will
                    continue
                # The least (projected, load, index): indices ascend, so a tie keeps the first.
                if best < 0 or p < least or (p == least and load[i] < fewest):
                    best, least, fewest = i, p, load[i]
            if best < 0:
                break
            out.append((best, req))
            projected[best] += math.ceil(tokens / sizes[best])
            load[best] += 1
        return out


BASELINES: dict[str, type[Router]] = {
    cls.name: cls
    for cls in (
        RandomRouter,
        RoundRobinRouter,
        LeastOutstandingRouter,
        LeastLoadedQueueRouter,
        PowerOfTwoRouter,
        LeastKvRouter,
        LlmdScorerRouter,
        LlmdPrefixRouter,
        LlmdWeighted11Router,
        LlmdWeighted322Router,
        CacheAwareRouter,
        ExpertRouter,
        HeadRoomAdmissionRouter,
    )
}
"""Every baseline router by name, in the order reports list them."""
