"""The actor runtime: supervision, restarts, and draining on signals."""

from __future__ import annotations

import os
import signal

import anyio
import anyio.abc
import pytest
from structlog.testing import capture_logs

from glia.runtime import ActorFailed, supervise

pytestmark = pytest.mark.anyio


class Flaky:
    """Crashes its first ``crashes`` runs, then serves until drained."""

    def __init__(self, name: str, crashes: int) -> None:
        self.name = name
        self.crashes = crashes
        self.runs = 0
        self.ready = 0
        self._stop = anyio.Event()

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        self.runs += 1
        task_status.started()
        self.ready += 1
        if self.runs <= self.crashes:
            raise RuntimeError(f"crash {self.runs}")
        await self._stop.wait()

    def drain(self) -> None:
        self._stop.set()


async def test_a_crashing_actor_is_restarted_and_the_others_go_on() -> None:
    flaky, steady = Flaky("flaky", crashes=2), Flaky("steady", crashes=0)
    with capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            await tg.start(lambda task_status: supervise(
                [flaky, steady], backoff=0.01, handle_signals=False, task_status=task_status
            ))  # fmt: skip
            with anyio.fail_after(5):
                while flaky.runs < 3:
                    await anyio.sleep(0.01)
            flaky.drain()
            steady.drain()
    assert (flaky.runs, steady.runs) == (3, 1)
    crashes = [e for e in logs if e["event"] == "actor_crashed"]
    assert [(e["actor"], e["crashes"], e["error"]) for e in crashes] == [
        ("flaky", 1, "RuntimeError('crash 1')"),
        ("flaky", 2, "RuntimeError('crash 2')"),
    ]
    assert all(e["log_level"] == "error" for e in crashes)


async def test_an_actor_that_keeps_crashing_fails_its_group_cleanly() -> None:
    doomed, bystander = Flaky("doomed", crashes=100), Flaky("bystander", crashes=0)
    with anyio.fail_after(10), pytest.raises(ActorFailed) as err:
        await supervise([doomed, bystander], max_restarts=2, backoff=0.01, handle_signals=False)
    assert str(err.value) == (
        "actor 'doomed' crashed 3 times (last: RuntimeError('crash 3')); its group was stopped"
    )
    assert doomed.runs == 3


async def test_sigterm_drains_every_actor_and_a_second_signal_cancels() -> None:
    a, b = Flaky("a", 0), Flaky("b", 0)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(lambda task_status: supervise([a, b], task_status=task_status))
            os.kill(os.getpid(), signal.SIGTERM)
    assert a._stop.is_set() and b._stop.is_set()

    class Stubborn(Flaky):
        def drain(self) -> None:  # ignores the first request to stop
            pass

    c = Stubborn("c", 0)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(lambda task_status: supervise([c], task_status=task_status))
            os.kill(os.getpid(), signal.SIGTERM)
            await anyio.sleep(0.1)
            os.kill(os.getpid(), signal.SIGTERM)
    assert c.runs == 1
