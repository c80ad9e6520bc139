"""The Bus interface that actors and clients program against.

Two implementations share these semantics: :class:`~glia.bus.NatsBus` (JetStream, any number of
machines) and :class:`~glia.bus.MemoryBus` (one process; unit tests). Work-queue semantics:
each experiment request is delivered to one consumer at a time; unacknowledged deliveries come
back (``nak``, or after the ack wait when a worker dies) with ``attempt`` counting up; ``term``
drops a message for good. Results and events are kept per run and replayed from the start to
every new subscriber.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from ._messages import Event, ExperimentRequest, ExperimentResult, ResultMessage, SteerMessage

__all__ = ["Bus", "Delivery", "WorkQueue"]


class Delivery(Protocol):
    """One delivery of an experiment request to a worker."""

    @property
    def data(self) -> bytes: ...

    @property
    def attempt(self) -> int:
        """1 for the first delivery, then 2, 3, ... on redeliveries."""
        ...

    async def ack(self) -> None: ...

    async def nak(self, delay: float = 0.0) -> None:
        """Hand the request back to be redelivered after ``delay`` seconds."""
        ...

    async def term(self) -> None:
        """Drop the request for good (garbage, or dead-lettered)."""
        ...

    async def in_progress(self) -> None:
        """Still working on it: reset the redelivery timer."""
        ...


class WorkQueue(Protocol):
    """A worker's view of the experiment queue."""

    async def fetch(self, n: int, timeout: float) -> list[Delivery]:
        """Up to ``n`` deliveries, waiting at most ``timeout`` seconds for the first."""
        ...


class Bus(Protocol):
    """What Glia's actors need from a message bus."""

    async def submit(self, request: ExperimentRequest, msg_id: str) -> None:
        """Queue an experiment; a second submit with the same ``msg_id`` is dropped."""
        ...

    def work_queue(self, ack_wait: float) -> AbstractAsyncContextManager[WorkQueue]:
        """Consume experiment requests (shared by every worker)."""
        ...

    async def dead_letter(self, data: bytes) -> None:
        """Keep a request that exhausted its deliveries, for inspection."""
        ...

    def exhausted(self) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """Requests whose every delivery went unacknowledged (their workers died), each taken
        off the queue and handed to one listener among all that listen."""
        ...

    async def publish_result(self, result: ResultMessage) -> None: ...

    def results(self, run_id: str) -> AbstractAsyncContextManager[AsyncIterator[ResultMessage]]:
        """Every result of ``run_id`` from the first, then live ones as they come."""
        ...

    async def publish_event(self, event: Event) -> None: ...

    def events(self, run_id: str) -> AbstractAsyncContextManager[AsyncIterator[Event]]:
        """Every event of ``run_id`` (``"*"``: of all runs) from the first, then live."""
        ...

    async def publish_steer(self, msg: SteerMessage) -> None:
        """Send a steering message to the coordinator of run ``msg.run_id`` (kept, so a
        coordinator that resumes later still gets it)."""
        ...

    def steering(self, run_id: str) -> AbstractAsyncContextManager[AsyncIterator[SteerMessage]]:
        """Every steering message of design run ``run_id`` from the first, then live."""
        ...

    async def cached(self, key: str) -> ExperimentResult | None:
        """The result stored for an experiment key, if any."""
        ...

    async def cache(self, result: ExperimentResult) -> None: ...

    async def put_artifact(self, name: str, data: bytes) -> None: ...

    async def save_checkpoint(self, run_id: str, data: bytes) -> None:
        """Keep the latest checkpoint of design run ``run_id``."""
        ...

    async def load_checkpoint(self, run_id: str) -> bytes | None:
        """The latest checkpoint of design run ``run_id``, if any."""
        ...

    async def get_artifact(self, name: str) -> bytes: ...

    async def queue_depth(self) -> int:
        """Experiment requests waiting or in flight."""
        ...
