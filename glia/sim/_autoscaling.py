"""Replica lifecycle for autoscaled clusters: the autoscaling hook and the fleet it steers.

Every replica of the pool is in one state: ``off``, ``starting`` (loading the model: it holds
no requests and is invisible to the router until ``cold_start_s`` has passed), ``active``
(routable) or ``draining`` (no longer routable; it finishes every request it holds, then turns
off). A replica costs GPU time from the moment it starts loading until it is off, or until the run
ends with its last completion.

An autoscaler is called every ``interval_s`` seconds with a :class:`LoadView` and returns the
number of replicas it wants (active plus starting). Growing starts the lowest-numbered off
replicas; shrinking first cancels starting replicas (the latest to become ready first), then
drains the active replicas holding the fewest requests. The autoscaler only sets the count:
what happens to requests is the router's business, and no request is ever dropped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np

from ._agenda import Agenda, Kind
from ._views import ClusterView, ReplicaView

if TYPE_CHECKING:
    from ._replica import Replica

__all__ = ["Fleet", "LoadView", "ReplicaState", "ScalingPolicy"]

ReplicaState = Literal["off", "starting", "active", "draining"]


class ScalingPolicy(Protocol):
    """What the engine needs of an autoscaler (see :class:`glia.policies.Autoscaler`)."""

    @property
    def name(self) -> str: ...

    @property
    def interval_s(self) -> float: ...

    def setup(self, cluster: ClusterView, rng: np.random.Generator) -> None: ...

    def scale(self, load: LoadView) -> int: ...


class LoadView:
    """What an autoscaler sees when it is called.

    ``cluster`` is the routable part of the cluster (active replicas and the global queue).
    ``arrivals`` and ``completions`` count requests since the previous call, ``window_s``
    seconds ago. Autoscalers that smooth over longer windows keep their own history.
    """

    __slots__ = (
        "_fleet",
        "arrivals",
        "cluster",
        "completions",
        "max_replicas",
        "min_replicas",
        "now",
        "window_s",
    )

    def __init__(
        self, fleet: Fleet, cluster: ClusterView, window_s: float, arrivals: int, completions: int
    ) -> None:
        self._fleet = fleet
        self.now = cluster.now
        """Simulated time in seconds."""
        self.cluster = cluster
        self.window_s = window_s
        self.arrivals = arrivals
        self.completions = completions
        self.min_replicas = fleet.min_replicas
        self.max_replicas = len(fleet.states)

    @property
    def num_active(self) -> int:
        """Replicas serving now."""
        return self._fleet.count("active")

    @property
    def num_starting(self) -> int:
        """Replicas loading the model (they count towards the replicas asked for)."""
        return self._fleet.count("starting")

    @property
    def num_draining(self) -> int:
        """Replicas finishing their requests before turning off."""
        return self._fleet.count("draining")

    @property
    def num_replicas(self) -> int:
        """Replicas asked for: active plus starting (what :meth:`scale` returned last)."""
        return self.num_active + self.num_starting

    @property
    def num_ongoing(self) -> int:
        """Requests in the system: the global queue plus every replica's queued and running."""
        return self.cluster.num_queued + sum(
            len(r.queue) + r.num_running for r in self._fleet.replicas
        )

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


class Fleet:
    """Which replicas are on, which the router may use, and the GPU time they cost."""

    def __init__(
        self,
        replicas: list[Replica],
        views: tuple[ReplicaView, ...],
        gpus: list[int],
        *,
        initial: int,
        min_replicas: int,
        cold_start_s: float,
        agenda: Agenda,
    ) -> None:
        self.replicas = replicas
        self._agenda = agenda  # where starting replicas' READY events go
        self._views = views
        self._gpus = gpus
        self.min_replicas = min_replicas
        self.cold_start_s = cold_start_s
        n = len(replicas)
        on: list[ReplicaState] = ["active"]
        off: list[ReplicaState] = ["off"]
        self.states = on * initial + off * (n - initial)
        self._on_since = [0.0] * initial + [-1.0] * (n - initial)
        self._ready_at = [0.0] * n
        self._gpu_s = 0.0
        self._replica_s = 0.0
        self.scale_events = 0
        self.routable: list[int] = list(range(initial))
        self.views = tuple(views[i] for i in self.routable)

    def count(self, state: ReplicaState) -> int:
        return self.states.count(state)

    def ready(self, rid: int) -> None:
        """Make starting replica ``rid`` active (its READY event came)."""
        self.states[rid] = "active"
        self._refresh()

    def resize(self, now: float, desired: int) -> None:
        """Start or stop replicas so that ``desired`` are active or starting."""
        desired = max(self.min_replicas, min(desired, len(self.states)))
        current = self.count("active") + self.count("starting")
        if desired > current:
            for rid in [i for i, s in enumerate(self.states) if s == "off"][: desired - current]:
                self.states[rid] = "starting"
                self._on_since[rid] = now
                self._ready_at[rid] = now + self.cold_start_s
                self.replicas[rid].reset_cache()  # a fresh engine: nothing cached
                self._agenda.push(now + self.cold_start_s, Kind.READY, rid)
                self.scale_events += 1
        elif desired < current:
            excess = current - desired
            starting = sorted(
                (i for i, s in enumerate(self.states) if s == "starting"),
                key=lambda i: (-self._ready_at[i], -i),
            )
            for rid in starting[:excess]:
                self._turn_off(now, rid)
            excess -= min(excess, len(starting))
            active = sorted(self.routable, key=lambda i: (self._held(i), -i))
            for rid in active[:excess]:
                self.states[rid] = "draining"
                self.scale_events += 1
                self.drained(now, rid)
        self._refresh()

    def drained(self, now: float, rid: int) -> bool:
        """Turn replica ``rid`` off if it is draining and holds nothing; whether it did."""
        if self.states[rid] == "draining" and not self.replicas[rid].busy and not self._held(rid):
            self._turn_off(now, rid)
            return True
        return False

    def _held(self, rid: int) -> int:
        r = self.replicas[rid]
        return len(r.queue) + r.num_running

    def _turn_off(self, now: float, rid: int) -> None:
        if self.states[rid] == "starting":
            self._agenda.cancel(Kind.READY, rid)  # called off before it was ready
        self._account(now, rid)
        self.states[rid] = "off"
        self._on_since[rid] = -1.0
        self.scale_events += 1

    def _account(self, now: float, rid: int) -> None:
        gpu_s, replica_s = self._on_time(rid, now)
        self._gpu_s += gpu_s
        self._replica_s += replica_s

    def _on_time(self, rid: int, until: float) -> tuple[float, float]:
        """GPU-seconds and seconds replica ``rid`` has been on by ``until`` since it started."""
        since = self._on_since[rid]
        return ((until - since) * self._gpus[rid], until - since) if since >= 0.0 else (0.0, 0.0)

    def _refresh(self) -> None:
        self.routable = [i for i, s in enumerate(self.states) if s == "active"]
        self.views = tuple(self._views[i] for i in self.routable)

    def totals(self, end: float) -> tuple[float, float]:
        """``(GPU-hours, mean replicas on)`` over ``[0, end]``, counting replicas still on."""
        gpu_s, replica_s = self._gpu_s, self._replica_s
        for rid in range(len(self.states)):
            g, r = self._on_time(rid, end)
            gpu_s, replica_s = gpu_s + g, replica_s + r
        mean = replica_s / end if end > 0 else float(self.count("active"))
        return gpu_s / 3600.0, mean
