"""The actor runtime: actors as tasks of one task group, supervised, drained on signals.

An actor is an object with a ``name``, an async ``run(task_status=...)`` that reports readiness
with ``task_status.started()`` and serves until drained, and a ``drain()`` that asks it to finish
what it is doing and return. :func:`supervise` runs actors together: one that crashes is
reported and restarted (with backoff) up to ``max_restarts`` times, after which the whole group
fails with :class:`ActorFailed` — never a silent hang. SIGINT or SIGTERM drains every actor; a
second signal cancels them (their unacknowledged work goes back to the bus).
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Sequence
from typing import Protocol

import anyio
import anyio.abc

from glia._errors import GliaError
from glia._logging import get_logger

__all__ = ["Actor", "ActorFailed", "supervise"]

log = get_logger("glia.runtime")


class Actor(Protocol):
    """What the runtime needs of an actor."""

    @property
    def name(self) -> str: ...

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = ...) -> None: ...

    def drain(self) -> None: ...


class ActorFailed(GliaError):
    """An actor kept crashing: the group it belonged to was stopped."""


async def supervise(
    actors: Sequence[Actor],
    *,
    max_restarts: int = 3,
    backoff: float = 0.5,
    handle_signals: bool = True,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Run ``actors`` until all of them return (drained); see the module docstring."""
    draining = anyio.Event()

    def drain_all() -> None:
        draining.set()
        for a in actors:
            a.drain()

    async def keep_running(actor: Actor, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        crashes, ready = 0, False
        while True:
            try:
                async with anyio.create_task_group() as inner:
                    await inner.start(actor.run)
                    if not ready:
                        ready = True
                        task_status.started()
                return  # the actor returned: drained
            except Exception as e:  # an ExceptionGroup too: whatever the actor raised
                crashes += 1
                cause = _root(e)
                log.error("actor_crashed", actor=actor.name, crashes=crashes, error=repr(cause))
                if crashes > max_restarts or draining.is_set():
                    raise ActorFailed(
                        f"actor {actor.name!r} crashed {crashes} times (last: {cause!r}); its "
                        "group was stopped"
                    ) from cause
                await anyio.sleep(backoff * 2 ** (crashes - 1))
                log.info("actor_restarting", actor=actor.name)

    failure: ActorFailed | None = None
    async with anyio.create_task_group() as tg:
        if handle_signals:
            tg.start_soon(_on_signals, drain_all, tg.cancel_scope)
        try:
            async with anyio.create_task_group() as members:
                for a in actors:
                    await members.start(keep_running, a)
                task_status.started()
        except BaseExceptionGroup as group:
            failed = [e for e in group.exceptions if isinstance(e, ActorFailed)]
            if not failed:
                raise
            failure = failed[0]
        finally:
            tg.cancel_scope.cancel()  # the signal watcher
    if failure is not None:
        raise failure


def _root(e: BaseException) -> BaseException:
    """The one exception inside (nested) single-member exception groups."""
    while isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1:
        e = e.exceptions[0]
    return e


async def _on_signals(drain_all: Callable[[], None], scope: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        drained = False
        async for sig in signals:
            if drained:
                log.warning("actors_cancelled", signal=sig.name)
                scope.cancel()
                return
            drained = True
            log.info("actors_draining", signal=sig.name)
            drain_all()
