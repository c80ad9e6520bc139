"""The in-memory bus keeps JetStream's work-queue semantics; the worker runs on it too."""

from __future__ import annotations

import os

import anyio
import msgspec
import pytest

import glia
from glia import Client, Experiment, run_experiment
from glia.bus import (
    MAX_DELIVER,
    ExperimentFailure,
    ExperimentRequest,
    ExperimentResult,
    MemoryBus,
    decode_request,
)
from glia.runtime import SimWorker
from glia.sandbox import Limits
from glia.sim import Summary

from .conftest import small_experiments

pytestmark = pytest.mark.anyio

BAD_DESIGN = """
from glia.policies import Router

class OffByOne(Router):
    def schedule(self, cluster):
        return [(cluster.num_replicas, r) for r in cluster.queue]
"""


def _request(i: int = 0) -> ExperimentRequest:
    return ExperimentRequest(run_id="r", experiment=small_experiments(1)[0], label=str(i))


async def test_submits_with_the_same_id_are_queued_once() -> None:
    bus = MemoryBus()
    await bus.submit(_request(), "r.k")
    await bus.submit(_request(), "r.k")
    async with bus.work_queue(ack_wait=5) as q:
        got = await q.fetch(10, timeout=0.1)
    assert len(got) == 1
    assert decode_request(got[0].data) == _request()


async def test_unacknowledged_deliveries_come_back_with_their_attempt_counted() -> None:
    bus = MemoryBus()
    await bus.submit(_request(), "a")
    async with bus.work_queue(ack_wait=0.2) as q:
        (first,) = await q.fetch(1, timeout=0.1)
        assert first.attempt == 1
        assert await q.fetch(1, timeout=0.05) == []  # held while within its ack wait
        await anyio.sleep(0.25)
        (again,) = await q.fetch(1, timeout=0.1)
        assert again.attempt == 2
        await again.nak(delay=0.2)
        assert await q.fetch(1, timeout=0.05) == []
        await anyio.sleep(0.2)
        (third,) = await q.fetch(1, timeout=0.1)
        assert third.attempt == 3
        await third.ack()
        await anyio.sleep(0.25)
        assert await q.fetch(1, timeout=0.05) == []
    assert await bus.queue_depth() == 0


async def test_in_progress_keeps_a_long_experiment_from_being_redelivered() -> None:
    bus = MemoryBus()
    await bus.submit(_request(), "a")
    async with bus.work_queue(ack_wait=0.2) as q:
        (d,) = await q.fetch(1, timeout=0.1)
        for _ in range(4):
            await anyio.sleep(0.1)
            await d.in_progress()
        assert await q.fetch(1, timeout=0.05) == []


async def test_worker_turns_a_broken_design_into_a_failure_result() -> None:
    bus = MemoryBus()
    (base,) = small_experiments(1)
    bad = msgspec.structs.replace(base, design_source=BAD_DESIGN)
    client = Client(bus)
    async with anyio.create_task_group() as tg:
        worker = SimWorker(bus, name="w", concurrency=2)
        await tg.start(worker.run)
        run = await client.submit([bad, base], labels=["bad", "good"])
        failure, result = await client.gather(run, timeout=120)
        worker.drain()
    assert isinstance(failure, ExperimentFailure)
    assert failure.kind == "design"
    assert failure.message.startswith(
        "invalid-decision: router 'OffByOne' routed request 0 to replica 4 at t=0.000s, but the "
        "cluster has replicas 0..3"
    )
    assert failure.design is not None
    assert failure.design.kind == "invalid-decision"
    assert isinstance(result, ExperimentResult)
    assert worker.statistics().failed == 1
    assert worker.statistics().done == 1


async def test_a_local_cluster_needs_no_setup() -> None:
    exps = small_experiments(4)
    async with glia.local_cluster(workers=2) as client:
        results = await client.gather(await client.submit(exps), timeout=120)
    assert all(isinstance(r, ExperimentResult) for r in results)
    assert [r.key for r in results] == [e.key() for e in exps]


def poison_runner(exp: Experiment, limits: Limits | None) -> tuple[Summary, str, str]:
    """Runs experiments like a worker's pool process, but dies on seed 666: a process crash."""
    if exp.seed == 666:
        os._exit(3)
    result = run_experiment(exp, limits)
    return result.summary, result.router, result.requests.to_csv()


async def test_a_poison_experiment_fails_after_bounded_retries_and_the_rest_complete() -> None:
    bus = MemoryBus()
    (base,) = small_experiments(1)
    poison = msgspec.structs.replace(base, seed=666)
    good = small_experiments(3)
    async with anyio.create_task_group() as tg:
        worker = SimWorker(bus, name="w", concurrency=2, runner=poison_runner, ack_wait=5.0)
        await tg.start(worker.run)
        client = Client(bus)
        results = await client.gather(await client.submit([poison, *good]), timeout=180)
        worker.drain()
    failure = results[0]
    assert isinstance(failure, ExperimentFailure)
    assert (failure.kind, failure.attempts) == ("crash", 3)
    assert failure.message.startswith("the simulation process died on each of 3 attempts")
    assert all(isinstance(r, ExperimentResult) for r in results[1:])
    assert len(bus.dead_letters) == 1


async def test_requests_whose_workers_all_died_are_dead_lettered_with_a_failure() -> None:
    bus = MemoryBus()
    (exp,) = small_experiments(1)
    client = Client(bus)
    run = await client.submit([exp])
    async with bus.work_queue(ack_wait=0.05) as q:  # workers that take it and die, each time
        for _ in range(MAX_DELIVER):
            with anyio.fail_after(5):
                while not await q.fetch(1, timeout=0.1):
                    pass
    await anyio.sleep(0.1)
    async with anyio.create_task_group() as tg:
        worker = SimWorker(bus, name="w", concurrency=1)
        await tg.start(worker.run)
        (failure,) = await client.gather(run, timeout=10)
        worker.drain()
    assert isinstance(failure, ExperimentFailure)
    assert failure.kind == "dead-letter"
    assert failure.message.startswith(f"no worker finished it in {MAX_DELIVER} deliveries")
    assert len(bus.dead_letters) == 1
    assert await bus.queue_depth() == 0
