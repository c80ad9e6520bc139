"""The agenda: every future event of a simulation on one heap, in the order they happen.

An event is ``(time, kind, key)``. Events are handled by time; at one instant by kind, in the
order of :class:`Kind`; within a kind by key (a replica id: the lower first). That order is the
whole tie-break rule of the simulator, written once, here, as data. An event can be cancelled
(a replica leaving a lazy run has a new iteration end; a start that is called off never becomes
ready): the entry stays on the heap but no longer counts.
"""

from __future__ import annotations

import heapq
from enum import IntEnum

__all__ = ["Agenda", "Kind"]


class Kind(IntEnum):
    """The kinds of event, in the order they are handled at one instant."""

    ITERATION_END = 0
    """A replica's iteration (or lazy run of iterations) ends; key: the replica."""
    READY = 1
    """A starting replica has loaded and becomes active; key: the replica."""
    TICK = 2
    """The autoscaler's periodic call."""
    ARRIVAL = 3
    """The next request of the trace arrives (only the next one is ever on the agenda)."""


class Agenda:
    """Future events of a run with ``keys`` replicas (see the module docstring)."""

    __slots__ = ("_heap", "_versions")

    def __init__(self, keys: int) -> None:
        self._heap: list[tuple[float, int, int, int]] = []  # (time, kind, key, version)
        # An entry counts while its version is that of its (kind, key); cancel() bumps it.
        self._versions = [[0] * max(keys, 1) for _ in Kind]

    def push(self, time: float, kind: int, key: int = 0) -> None:
        """Add the event ``kind`` (a :class:`Kind`) of ``key`` at ``time``."""
        heapq.heappush(self._heap, (time, kind, key, self._versions[kind][key]))

    def cancel(self, kind: int, key: int) -> None:
        """Call off every pending event ``kind`` of ``key``."""
        self._versions[kind][key] += 1

    def next_time(self) -> float:
        """Time of the next event (inf when none is left)."""
        heap, versions = self._heap, self._versions
        while heap and versions[heap[0][1]][heap[0][2]] != heap[0][3]:
            heapq.heappop(heap)
        return heap[0][0] if heap else float("inf")

    def entries(self) -> tuple[list[tuple[float, int, int, int]], list[list[int]]]:
        """The heap of ``(time, kind, key, version)`` entries and the versions by kind and key,
        for an event loop that inlines :meth:`push`, :meth:`pop` and :meth:`next_time`: an entry
        counts while ``versions[kind][key] == version``."""
        return self._heap, self._versions

    def pop(self) -> tuple[float, int, int]:
        """Remove and return the next event as ``(time, kind, key)``; ``(inf, -1, 0)`` when
        none is left."""
        heap, versions = self._heap, self._versions
        while heap:
            time, kind, key, version = heapq.heappop(heap)
            if versions[kind][key] == version:
                return time, kind, key
        return float("inf"), -1, 0
