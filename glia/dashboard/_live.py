"""Live state of every run, fed by ONE subscription to the bus's event stream, fanned out to SSE.

The dashboard follows ``glia.events.>`` with the same replaying subscription ``glia monitor``
uses (:meth:`glia.bus.NatsBus.events` with ``"*"``), so a server started late still sees every
run from its start. Each browser tab is an SSE client of this one fan-out: the bus carries one
subscription per dashboard server however many tabs are open (:attr:`Live.subscriptions`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

import anyio
import structlog
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from glia.bus import (
    AgentMessage,
    Event,
    ExperimentFailed,
    ExperimentFinished,
    ExperimentQueued,
    ExperimentStarted,
    RunStatus,
    Steered,
    TrialFinished,
    WorkerHeartbeat,
    to_json,
)

__all__ = ["EventSource", "Live", "RunView"]

log = structlog.get_logger(__name__)

_SHOWN = (AgentMessage, RunStatus, TrialFinished, Steered)
"""The events a run page shows live (experiment lifecycle events go to the cluster page)."""
_BACKLOG = 256
"""Events a slow tab may fall behind by before it is dropped (it reconnects and replays)."""


class EventSource(Protocol):
    """What the dashboard needs from a bus: the replaying event stream (``NatsBus`` has it)."""

    def events(self, run_id: str) -> AbstractAsyncContextManager[AsyncIterator[Event]]: ...


@dataclass
class RunView:
    """What the live stream has told about one run: its shown events in order and its status."""

    events: list[bytes] = field(default_factory=list)
    status: str = "running"
    trials: int = 0
    best: float | None = None
    cost_usd: float = 0.0


@dataclass
class Live:
    """Per-run state in memory plus the SSE fan-out; :meth:`follow` feeds it from the bus."""

    runs: dict[str, RunView] = field(default_factory=dict)
    workers: dict[str, WorkerHeartbeat] = field(default_factory=dict)
    queued: set[str] = field(default_factory=set)
    running: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Experiment (``run/key``) -> the worker running it and the experiment's label."""
    failed: int = 0
    subscriptions: int = 0
    """Subscriptions this dashboard has opened on the bus (one while it follows)."""
    _tabs: dict[str, set[MemoryObjectSendStream[bytes]]] = field(default_factory=dict)

    async def follow(
        self, bus: EventSource, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Apply every event of every run (replayed from the start, then live) until cancelled."""
        async with bus.events("*") as events:
            self.subscriptions += 1
            task_status.started()
            async for ev in events:
                self.apply(ev)

    def apply(self, ev: Event) -> None:
        """Fold one event into the state and push it to the tabs watching its run."""
        if isinstance(ev, WorkerHeartbeat):
            self.workers[ev.worker] = ev
            self._push("_cluster", to_json(ev))
            return
        if isinstance(ev, ExperimentQueued | ExperimentStarted | ExperimentFinished
                      | ExperimentFailed):  # fmt: skip
            key = f"{ev.run_id}/{ev.key}"
            self.queued.discard(key)
            self.running.pop(key, None)
            if isinstance(ev, ExperimentQueued):
                self.queued.add(key)
            elif isinstance(ev, ExperimentStarted):
                self.running[key] = (ev.worker, ev.label)
            elif isinstance(ev, ExperimentFailed):
                self.failed += 1
            self._push("_cluster", to_json(ev))
            return
        if not isinstance(ev, _SHOWN):
            return
        run = self.runs.setdefault(ev.run_id, RunView())
        data = to_json(ev)
        run.events.append(data)
        if isinstance(ev, RunStatus):
            run.status = ev.status
            run.cost_usd = ev.cost_usd
        elif isinstance(ev, TrialFinished):
            run.trials += 1
            if ev.cost is not None and (run.best is None or ev.cost < run.best):
                run.best = ev.cost
        self._push(ev.run_id, data)

    def _push(self, topic: str, data: bytes) -> None:
        for tab in list(self._tabs.get(topic, ())):
            try:
                tab.send_nowait(data)
            except anyio.WouldBlock:
                # a tab that stopped reading loses its stream rather than holding memory
                log.info("dashboard_slow_tab_dropped", topic=topic)
                self._tabs[topic].discard(tab)
                tab.close()
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._tabs[topic].discard(tab)

    @asynccontextmanager
    async def watch(self, topic: str) -> AsyncIterator[MemoryObjectReceiveStream[bytes]]:
        """The events of ``topic`` (a run id, or ``"_cluster"``): what is known, then live.

        The stream ends when :meth:`close` is called (the server shuts down) or the tab falls
        :data:`_BACKLOG` events behind.
        """
        backlog = list(self.runs[topic].events) if topic in self.runs else []
        send, receive = anyio.create_memory_object_stream[bytes](len(backlog) + _BACKLOG)
        for data in backlog:  # room for all of it: never blocks
            send.send_nowait(data)
        self._tabs.setdefault(topic, set()).add(send)
        try:
            with receive:
                yield receive
        finally:
            self._tabs[topic].discard(send)
            send.close()

    def close(self) -> None:
        """End every tab's stream (the server is shutting down: their handlers return)."""
        for tabs in self._tabs.values():
            for tab in tabs:
                tab.close()
            tabs.clear()
