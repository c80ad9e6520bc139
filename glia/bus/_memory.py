"""The Bus in one process: the same semantics as NATS JetStream, for unit tests and local runs."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio

from ._bus import Delivery
from ._messages import (
    Event,
    ExperimentRequest,
    ExperimentResult,
    ResultMessage,
    SteerMessage,
    WorkerHeartbeat,
    encode,
)
from ._nats import MAX_DELIVER
from ._server import BusError

__all__ = ["MemoryBus"]


@dataclass
class _Entry:
    data: bytes
    attempt: int = 0
    available_at: float = 0.0
    deadline: float = math.inf  # while delivered and not acknowledged
    done: bool = False


class _Delivery:
    def __init__(self, bus: MemoryBus, entry: _Entry, ack_wait: float) -> None:
        self._bus, self._entry, self._ack_wait = bus, entry, ack_wait

    @property
    def data(self) -> bytes:
        return self._entry.data

    @property
    def attempt(self) -> int:
        return self._entry.attempt

    async def ack(self) -> None:
        self._entry.done = True

    async def term(self) -> None:
        self._entry.done = True

    async def nak(self, delay: float = 0.0) -> None:
        self._entry.deadline = math.inf
        self._entry.available_at = anyio.current_time() + delay
        self._bus._wake()

    async def in_progress(self) -> None:
        self._entry.deadline = anyio.current_time() + self._ack_wait


class _Queue:
    def __init__(self, bus: MemoryBus, ack_wait: float) -> None:
        self._bus, self._ack_wait = bus, ack_wait

    async def fetch(self, n: int, timeout: float) -> list[Delivery]:
        with anyio.move_on_after(timeout):
            while True:
                got = self._bus._take(n, self._ack_wait)
                if got:
                    return [_Delivery(self._bus, e, self._ack_wait) for e in got]
                await self._bus._changed.wait()
        return []


class MemoryBus:
    """An in-process bus. Deliveries not acknowledged within ``ack_wait`` come back, up to
    ``MAX_DELIVER`` times, like a JetStream work-queue consumer."""

    def __init__(self) -> None:
        self._entries: list[_Entry] = []
        self._seen: set[str] = set()
        self._changed = anyio.Event()
        self._results: dict[str, list[ResultMessage]] = defaultdict(list)
        self._events: dict[str, list[Event]] = defaultdict(list)
        self._all_events: list[Event] = []
        self._steering: dict[str, list[SteerMessage]] = defaultdict(list)
        self._kv: dict[str, ExperimentResult] = {}
        self._artifacts: dict[str, bytes] = {}
        self._checkpoints: dict[str, bytes] = {}
        self.dead_letters: list[bytes] = []

    def _wake(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    def _take(self, n: int, ack_wait: float) -> list[_Entry]:
        now = anyio.current_time()
        out: list[_Entry] = []
        for e in self._entries:
            if len(out) == n:
                break
            if e.done or e.attempt >= MAX_DELIVER:
                continue  # JetStream, too, stops delivering after max_deliver
            if e.deadline != math.inf:
                if e.deadline > now:
                    continue  # delivered and still within its ack wait
            elif e.available_at > now:
                continue  # nak'ed with a delay
            e.attempt += 1
            e.deadline = now + ack_wait
            out.append(e)
        self._entries = [e for e in self._entries if not e.done]
        return out

    async def submit(self, request: ExperimentRequest, msg_id: str) -> None:
        if msg_id in self._seen:
            return
        self._seen.add(msg_id)
        self._entries.append(_Entry(encode(request)))
        self._wake()

    @asynccontextmanager
    async def work_queue(self, ack_wait: float) -> AsyncIterator[_Queue]:
        yield _Queue(self, ack_wait)

    async def dead_letter(self, data: bytes) -> None:
        self.dead_letters.append(data)

    @asynccontextmanager
    async def exhausted(self) -> AsyncIterator[AsyncIterator[bytes]]:
        async def requests() -> AsyncIterator[bytes]:
            while True:
                now = anyio.current_time()
                for e in self._entries:
                    if not e.done and e.attempt >= MAX_DELIVER and e.deadline <= now:
                        e.done = True
                        yield e.data
                await anyio.sleep(0.05)

        yield requests()

    async def queue_depth(self) -> int:
        return sum(1 for e in self._entries if not e.done and e.attempt < MAX_DELIVER)

    async def publish_result(self, result: ResultMessage) -> None:
        self._results[result.run_id].append(result)
        self._wake()

    async def publish_event(self, event: Event) -> None:
        if not isinstance(event, WorkerHeartbeat):
            self._events[event.run_id].append(event)
        self._all_events.append(event)
        self._wake()

    async def publish_steer(self, msg: SteerMessage) -> None:
        log = self._steering[msg.run_id]
        if all(m.id != msg.id for m in log):  # like the stream's duplicate window
            log.append(msg)
        self._wake()

    @asynccontextmanager
    async def steering(self, run_id: str) -> AsyncIterator[AsyncIterator[SteerMessage]]:
        yield self._replay(self._steering[run_id])  # type: ignore[misc]

    @asynccontextmanager
    async def results(self, run_id: str) -> AsyncIterator[AsyncIterator[ResultMessage]]:
        yield self._replay(self._results[run_id])  # type: ignore[misc]

    @asynccontextmanager
    async def events(self, run_id: str) -> AsyncIterator[AsyncIterator[Event]]:
        log = self._all_events if run_id == "*" else self._events[run_id]
        yield self._replay(log)  # type: ignore[misc]

    async def _replay(self, log: Sequence[object]) -> AsyncIterator[object]:
        i = 0
        while True:
            while i < len(log):
                yield log[i]
                i += 1
            await self._changed.wait()

    async def cached(self, key: str) -> ExperimentResult | None:
        return self._kv.get(key)

    async def cache(self, result: ExperimentResult) -> None:
        self._kv[result.key] = result

    async def put_artifact(self, name: str, data: bytes) -> None:
        self._artifacts[name] = data

    async def get_artifact(self, name: str) -> bytes:
        try:
            return self._artifacts[name]
        except KeyError:
            raise BusError(f"no artifact {name!r} in the object store") from None

    async def save_checkpoint(self, run_id: str, data: bytes) -> None:
        self._checkpoints[run_id] = data

    async def load_checkpoint(self, run_id: str) -> bytes | None:
        return self._checkpoints.get(run_id)
