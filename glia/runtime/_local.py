"""A private cluster on this machine: a nats-server, a bus connection and a local worker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from glia._client import Client
from glia.bus import NatsBus, nats_server
from glia.experiment import Limits

from ._supervise import supervise
from ._worker import SimWorker

__all__ = ["local_cluster"]


@asynccontextmanager
async def local_cluster(
    *, workers: int | None = None, store_dir: str | None = None, limits: Limits | None = None
) -> AsyncIterator[Client]:
    """A private cluster on this machine: a nats-server (JetStream in ``store_dir``, or a
    temporary directory) and a worker using ``workers`` processes (default: one per core),
    running designs under ``limits`` (see :class:`~glia.experiment.Limits`).

    Nothing to set up; everything stops when the block exits (the worker drains first).
    """
    async with (
        nats_server(store_dir=store_dir) as server,
        NatsBus.connect(server.url, name="glia-local") as bus,
        anyio.create_task_group() as tg,
    ):
        worker = SimWorker(bus, name="local", concurrency=workers, limits=limits)
        await tg.start(lambda task_status: supervise([worker], task_status=task_status,
                                                     handle_signals=False))  # fmt: skip
        try:
            yield Client(bus)
        finally:
            worker.drain()
