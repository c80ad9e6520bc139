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

DRAIN_S = 10.0
"""How long the worker has, once the block exits, to finish the experiments it is running;
then it is cancelled and ends its processes (what it had not finished stays queued)."""


@asynccontextmanager
async def local_cluster(
    *, workers: int | None = None, store_dir: str | None = None, limits: Limits | None = None
) -> AsyncIterator[Client]:
    """A private cluster on this machine: a nats-server (JetStream in ``store_dir``, or a
    temporary directory) and a worker using ``workers`` processes (default: one per core),
    running designs under ``limits`` (see :class:`~glia.experiment.Limits`).

    Nothing to set up; everything stops when the block exits, within seconds: the worker
    drains first, for up to :data:`DRAIN_S`; when the block raises or is cancelled, it is
    cancelled at once (its processes are ended, not waited for).
    """
    raised: BaseException | None = None
    try:
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
            except BaseException as e:
                raised = e
                raise
            finally:
                worker.drain()
                # A raise or a cancellation cancels the group at once; a normal exit waits for
                # the drain, but not for ever (a design may run for minutes, the bus be gone).
                tg.cancel_scope.deadline = min(
                    tg.cancel_scope.deadline, anyio.current_time() + DRAIN_S
                )
    except BaseExceptionGroup as group:
        if raised is None or group.exceptions != (raised,):
            raise
    else:
        return
    raise raised  # what the block raised, not wrapped by the group it ran in
