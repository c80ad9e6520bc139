"""The autoscaling design interface and its baselines.

An :class:`Autoscaler` is called every ``interval_s`` simulated seconds with a
:class:`~glia.sim.LoadView` and returns how many replicas it wants. New replicas serve only
after the cluster's cold start; removed ones drain first (see :mod:`glia.sim._autoscaling`).

The baselines are modelled on the autoscalers LLM deployments use, each measuring load the
same way, as *ongoing requests per replica* (queued plus running: the custom metric vLLM
deployments scale on), against one shared ``target``, so that a comparison between them is a
comparison of their control laws:

* :class:`HpaAutoscaler` - Kubernetes' Horizontal Pod Autoscaler: every 15 s, ``ceil(replicas
  x metric / target)``, ignored within a 10 % tolerance; scale-up at once (at most doubling, or
  +4), scale-down only to the highest recommendation of the last 5 minutes.
* :class:`KpaAutoscaler` - Knative's KPA: every 2 s, the concurrency averaged over a 60 s stable
  window and a 6 s panic window; when the panic window wants twice the replicas ready, panic
  mode scales on it and refuses to scale down until 60 s without panic; scale-down at most
  halves.
* :class:`RayServeAutoscaler` - Ray Serve: the load averaged over 30 s; a new replica count is
  applied only after the decision has held for ``upscale_delay_s`` (30 s) or
  ``downscale_delay_s`` (600 s).
* :class:`StaticAutoscaler` - no autoscaling: every replica of the pool, all the time.
"""

from __future__ import annotations

import math
from collections import deque

from glia.sim import LoadView

from ._policy import Policy, resolve

__all__ = [
    "AUTOSCALERS",
    "Autoscaler",
    "HpaAutoscaler",
    "KpaAutoscaler",
    "RayServeAutoscaler",
    "StaticAutoscaler",
    "resolve_autoscaler",
]


class Autoscaler(Policy):
    """Base class of autoscalers: override :meth:`scale` (and ``interval_s``, at least 1 s)."""

    interval_s: float = 15.0
    """Simulated seconds between calls of :meth:`scale`."""

    def scale(self, load: LoadView) -> int:
        """The number of replicas wanted (active plus starting); clamped to
        ``[load.min_replicas, load.max_replicas]``. The base class keeps the current count."""
        return load.num_replicas


class StaticAutoscaler(Autoscaler):
    """No autoscaling: the whole pool serves all the time (peak provisioning)."""

    name = "static"

    def scale(self, load: LoadView) -> int:
        return load.max_replicas


class _Windowed(Autoscaler):
    """Keeps ``(time, ongoing requests)`` samples for averaging over recent windows."""

    target: float = 24.0
    """Ongoing requests (queued plus running) per replica to aim for."""

    window_s: float = 60.0

    def __init__(self) -> None:
        self._samples: deque[tuple[float, int]] = deque()

    def _sample(self, load: LoadView) -> None:
        self._samples.append((load.now, load.num_ongoing))
        while self._samples and self._samples[0][0] <= load.now - self.window_s:
            self._samples.popleft()

    def _mean(self, now: float, span: float) -> float:
        recent = [v for t, v in self._samples if t > now - span]
        return sum(recent) / len(recent) if recent else 0.0


class HpaAutoscaler(_Windowed):
    """Kubernetes HPA on ongoing requests per replica (see the module docstring)."""

    name = "hpa"
    interval_s = 15.0
    tolerance = 0.1
    scale_down_window_s = 300.0

    def __init__(self) -> None:
        super().__init__()
        self._recommendations: deque[tuple[float, int]] = deque()

    def scale(self, load: LoadView) -> int:
        current = load.num_replicas
        # Replicas still starting count as idle (the HPA's conservative rule for unready pods).
        per_replica = load.num_ongoing / max(current, 1)
        ratio = per_replica / self.target
        want = current if abs(ratio - 1.0) <= self.tolerance else math.ceil(current * ratio)
        self._recommendations.append((load.now, want))
        while self._recommendations[0][0] <= load.now - self.scale_down_window_s:
            self._recommendations.popleft()
        if want > current:
            return min(want, max(2 * current, current + 4))
        if want < current:  # the highest recommendation of the window, never above current
            return min(current, max(r for _, r in self._recommendations))
        return current


class KpaAutoscaler(_Windowed):
    """Knative's KPA with stable and panic windows (see the module docstring)."""

    name = "kpa"
    interval_s = 2.0
    window_s = 60.0
    panic_window_s = 6.0
    panic_threshold = 2.0
    max_scale_down_rate = 2.0

    def __init__(self) -> None:
        super().__init__()
        self._panic_until = -1.0

    def scale(self, load: LoadView) -> int:
        self._sample(load)
        now, current = load.now, load.num_replicas
        stable = math.ceil(self._mean(now, self.window_s) / self.target)
        panic = math.ceil(self._mean(now, self.panic_window_s) / self.target)
        if panic >= self.panic_threshold * max(load.num_active, 1):
            self._panic_until = now + self.window_s
        if now < self._panic_until:  # panicking: scale on the short window, never down
            return max(current, panic)
        return max(stable, math.ceil(current / self.max_scale_down_rate))


class RayServeAutoscaler(_Windowed):
    """Ray Serve's autoscaler with its up- and down-scale delays (see the module docstring)."""

    name = "ray-serve"
    interval_s = 5.0
    window_s = 30.0
    upscale_delay_s = 30.0
    downscale_delay_s = 600.0

    def __init__(self) -> None:
        super().__init__()
        self._since = 0.0  # when the decision's direction last changed
        self._direction = 0

    def scale(self, load: LoadView) -> int:
        self._sample(load)
        now, current = load.now, load.num_replicas
        want = max(1, math.ceil(self._mean(now, self.window_s) / self.target))
        direction = (want > current) - (want < current)
        if direction != self._direction:
            self._direction, self._since = direction, now
        waited = now - self._since + self.interval_s  # this call counts as one interval
        if direction > 0 and waited >= self.upscale_delay_s:
            return want
        if direction < 0 and waited >= self.downscale_delay_s:
            return want
        return current


AUTOSCALERS: dict[str, type[Autoscaler]] = {
    cls.name: cls for cls in (StaticAutoscaler, HpaAutoscaler, KpaAutoscaler, RayServeAutoscaler)
}
"""Every baseline autoscaler by name."""


def resolve_autoscaler(spec: str | Autoscaler | type[Autoscaler]) -> Autoscaler:
    """An autoscaler from a baseline name, a class or an instance."""
    return resolve("autoscaler", spec, Autoscaler, AUTOSCALERS)
