"""The per-replica scheduling hook: what the engine needs of a replica scheduler.

A scheduler decides, inside each replica, the order in which waiting requests are admitted
(and whether a request that does not fit blocks the ones behind it), the token budget of an
iteration, and which running request to preempt when memory runs out. Without one, a replica
behaves like vLLM: first come first served, the whole chunk budget, youngest preempted first.
See :class:`glia.policies.ReplicaScheduler` for the base class designs subclass.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ._request import Request

if TYPE_CHECKING:
    from ._views import ClusterView, ReplicaView

__all__ = ["SchedulingPolicy"]


class SchedulingPolicy(Protocol):
    """What the engine needs of a replica scheduler."""

    @property
    def name(self) -> str: ...

    @property
    def token_budget(self) -> int | None:
        """Tokens an iteration may process (``None``: the replica's chunk size)."""
        ...

    @property
    def skip_blocked(self) -> bool:
        """Whether a request that does not fit lets the ones after it be admitted."""
        ...

    def setup(self, cluster: ClusterView, rng: np.random.Generator) -> None: ...

    def order(self, replica: ReplicaView, now: float) -> Iterable[Request]:
        """The waiting requests to admit, in order (those left out wait)."""
        ...

    def victim(self, replica: ReplicaView, now: float) -> Request:
        """The running request to preempt when memory runs out."""
        ...

    def admitted(self, replica: ReplicaView, requests: Sequence[Request]) -> None:
        """After every :meth:`order` call: the requests the replica admitted, in order."""
        ...
