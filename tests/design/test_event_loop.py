"""A design run never blocks the event loop it shares with its local worker for long.

A watchdog task sleeps in short steps and records how late it wakes up: a blocking call in the
coordinator (disk I/O, rendering, a simulation run in-line) would make it late by that long,
and the worker sharing the loop would miss its heartbeats and in-progress acks meanwhile.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from glia._design import design_async
from glia.runtime import local_cluster

pytestmark = pytest.mark.anyio

STEP_S = 0.05
MAX_LAG_S = 1.0
"""Longest a step may overrun (well above scheduling noise on a loaded 2-core machine)."""


@pytest.mark.slow
async def test_a_design_run_never_blocks_the_event_loop_for_long(tmp_path: Path) -> None:
    lags: list[float] = []

    async def watch() -> None:
        while True:
            start = anyio.current_time()
            await anyio.sleep(STEP_S)
            lags.append(anyio.current_time() - start - STEP_S)

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch)
        async with local_cluster(workers=1, store_dir=str(tmp_path / "nats")) as client:
            run = await design_async(
                budget=3, search_seeds=(0,), holdout_seeds=(100,),
                settings={"duration_s": 60.0}, client=client, out=tmp_path / "runs",
            )  # fmt: skip
        tg.cancel_scope.cancel()
    assert run.record.status == "finished" and run.report_path is not None
    assert len(lags) > 20
    assert max(lags) < MAX_LAG_S, f"the event loop was blocked for {max(lags):.2f} s"
