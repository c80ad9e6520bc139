"""The simulation worker: pulls experiments from the bus and runs each in a child process.

Per delivery: decode it (garbage is dropped for good), answer from the result cache if the same
experiment ran before, otherwise run it in a process pool while telling the bus it is still in
progress, then store the per-request table, cache and publish the result, and acknowledge.
A design that fails (syntax, exception, invalid decision) is a *result* — a failure message the
agent can read — not a crash. A child process that dies breaks the pool: every experiment in
flight on it is handed back and retried, each retry in a fresh process of its own so a poison
experiment cannot take innocent ones down with it; after ``max_attempts`` it is dead-lettered
and answered with a ``crash`` failure.

Why one module of this size: a worker's handling of a delivery (cache, run, retry on a
broken pool, publish, ack or hand back) is one state machine; split, its ack rules would scatter.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import structlog
from nats.errors import MaxPayloadError

from glia._batch import run_experiment
from glia._errors import DesignError, GliaError, InputError
from glia._lifeline import adopt, end_pool, lifeline
from glia._logging import get_logger
from glia.bus import (
    Bus,
    Delivery,
    Event,
    ExperimentFailed,
    ExperimentFailure,
    ExperimentFinished,
    ExperimentRequest,
    ExperimentResult,
    ExperimentStarted,
    FailureKind,
    MessageError,
    ResultMessage,
    WorkerHeartbeat,
    WorkQueue,
    answer_from_cache,
    decode_request,
)
from glia.bus._nats import MAX_DELIVER
from glia.experiment import DesignFailed, DesignFailure, Experiment, Limits
from glia.sim import Summary

__all__ = ["SimWorker", "WorkerStatistics"]

log = get_logger("glia.worker")
_MAX_MESSAGE = 4000
"""Characters of a failure's message published (a design's failure is capped by its own)."""
T = TypeVar("T")


def _run_in_child(exp: Experiment, limits: Limits | None) -> tuple[Summary, str, str]:
    """What a pool process runs: the simulation, and its per-request table as CSV text."""
    result = run_experiment(exp, limits)
    return result.summary, result.policy, result.requests.to_csv()


def _kind(e: BaseException) -> FailureKind:
    if isinstance(e, DesignError):
        return "design"
    if isinstance(e, InputError):
        return "input"
    return "simulation"


class _Patient:
    """The bus, with each operation retried with backoff for up to ``retry_for`` seconds, so a
    restarting server (or a moment of lost connectivity) does not lose finished work."""

    def __init__(self, bus: Bus, retry_for: float) -> None:
        self._bus, self._retry_for = bus, retry_for

    async def _call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        delay, deadline = 0.1, anyio.current_time() + self._retry_for
        while True:
            try:
                out: T = await fn(*args)
                return out
            except Exception as e:
                if isinstance(e, MaxPayloadError) or anyio.current_time() + delay > deadline:
                    raise  # too large for the server: no retry can help
                log.warning("bus_retry", operation=fn.__name__, error=str(e) or type(e).__name__)
                await anyio.sleep(delay)
                delay = min(delay * 2, 2.0)

    def work_queue(self, ack_wait: float) -> AbstractAsyncContextManager[WorkQueue]:
        return self._bus.work_queue(ack_wait)

    def exhausted(self) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        return self._bus.exhausted()

    async def cached(self, key: str) -> ExperimentResult | None:
        return await self._call(self._bus.cached, key)

    async def cache(self, result: ExperimentResult) -> None:
        await self._call(self._bus.cache, result)

    async def put_artifact(self, name: str, data: bytes) -> None:
        await self._call(self._bus.put_artifact, name, data)

    async def publish_result(self, result: ResultMessage) -> None:
        await self._call(self._bus.publish_result, result)

    async def publish_event(self, event: Event) -> None:
        await self._call(self._bus.publish_event, event)

    async def dead_letter(self, data: bytes) -> None:
        await self._call(self._bus.dead_letter, data)


@dataclass(frozen=True)
class WorkerStatistics:
    """A snapshot of what a worker has done."""

    name: str
    concurrency: int
    running: int
    done: int
    failed: int
    cached: int


class SimWorker:
    """Runs experiments from ``bus`` with up to ``concurrency`` child processes.

    Start it in a task group with ``await tg.start(worker.run)``; call :meth:`drain` to stop
    taking work and return once the experiments in flight are finished.
    """

    def __init__(
        self,
        bus: Bus,
        *,
        name: str,
        concurrency: int | None = None,
        ack_wait: float = 30.0,
        max_attempts: int = 3,
        heartbeat_s: float = 2.0,
        retry_for: float = 120.0,
        limits: Limits | None = None,
        runner: Callable[[Experiment, Limits | None], tuple[Summary, str, str]] = _run_in_child,
    ) -> None:
        self.bus = _Patient(bus, retry_for=retry_for)
        self.name = name
        self.concurrency = max(1, concurrency or os.cpu_count() or 1)
        self.ack_wait = ack_wait
        self.max_attempts = max_attempts
        self.heartbeat_s = heartbeat_s
        self.limits = limits  # for designs' sandboxes (see glia.sandbox.Limits)
        self._runner = runner  # what a pool process runs (a seam for tests; must pickle)
        self._ctx = multiprocessing.get_context("forkserver")
        # Children fork from a server that has imported glia once: a new process costs
        # milliseconds, not the seconds of importing numpy and numba again.
        self._ctx.set_forkserver_preload(["glia._batch"])
        self._pool: ProcessPoolExecutor | None = None
        self._draining = anyio.Event()
        self._running = self._done = self._failed = self._cached = 0

    def statistics(self) -> WorkerStatistics:
        return WorkerStatistics(
            self.name, self.concurrency, self._running, self._done, self._failed, self._cached
        )

    def drain(self) -> None:
        """Stop taking new experiments; :meth:`run` returns when the running ones finish."""
        self._draining.set()

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve experiments until :meth:`drain` (or cancellation: the experiments running
        are not waited for, their processes are ended, and, unacknowledged, they go back to
        the bus)."""
        self._pool = self._new_pool(self.concurrency)
        slots = anyio.Semaphore(self.concurrency)
        drained = False
        try:
            async with self.bus.work_queue(self.ack_wait) as queue, anyio.create_task_group() as tg:
                tg.start_soon(self._heartbeats)
                tg.start_soon(self._dead_letters)
                log.info("worker_started", worker=self.name, concurrency=self.concurrency)
                task_status.started()
                async with anyio.create_task_group() as jobs:
                    while not self._draining.is_set():
                        await slots.acquire()
                        if self._draining.is_set():
                            slots.release()
                            break
                        try:
                            got = await queue.fetch(1, timeout=0.5)
                        except Exception as e:  # the server is away: wait for the reconnect
                            log.warning("fetch_failed", worker=self.name, error=str(e))
                            slots.release()
                            await anyio.sleep(0.5)
                            continue
                        if not got:
                            slots.release()
                            continue
                        jobs.start_soon(self._handle, got[0], slots)
                tg.cancel_scope.cancel()  # the heartbeats
            drained = True
        finally:
            with anyio.CancelScope(shield=True):
                pool, self._pool = self._pool, None
                if drained:  # nothing is running any more
                    await anyio.to_thread.run_sync(lambda: pool.shutdown(wait=True))
                else:
                    # Cancelled or failed: the experiments running were not acknowledged, so
                    # the bus hands them out again; waiting for them could take minutes.
                    await anyio.to_thread.run_sync(end_pool, pool)
            log.info("worker_stopped", **vars(self.statistics()))

    def _new_pool(self, processes: int) -> ProcessPoolExecutor:
        """A pool whose processes (and the fork server's) end when this process ends, even
        when it is killed outright: each watches this process's lifeline."""
        line = lifeline(self._ctx.get_start_method())
        return ProcessPoolExecutor(
            processes, mp_context=self._ctx, initializer=adopt, initargs=(line,)
        )

    async def _heartbeats(self) -> None:
        while True:
            s = self.statistics()
            await self.bus.publish_event(
                WorkerHeartbeat(
                    worker=s.name,
                    concurrency=s.concurrency,
                    running=s.running,
                    done=s.done,
                    failed=s.failed,
                    at=time.time(),
                )
            )
            await anyio.sleep(self.heartbeat_s)

    async def _dead_letters(self) -> None:
        """Answer the requests that JetStream gave up on (every worker holding them died)."""
        async with self.bus.exhausted() as requests:
            async for data in requests:
                try:
                    req = decode_request(data)
                except MessageError:
                    continue
                key = req.experiment.key()
                await self.bus.dead_letter(data)
                await self._fail(
                    req, key, "dead-letter",
                    f"no worker finished it in {MAX_DELIVER} deliveries (each worker died or "
                    "lost its connection while running it): the experiment was dead-lettered",
                    MAX_DELIVER,
                )  # fmt: skip
                log.warning("experiment_dead_lettered", worker=self.name, experiment=key[:12])

    async def _handle(self, delivery: Delivery, slots: anyio.Semaphore) -> None:
        self._running += 1
        try:
            await self._process(delivery)
        except Exception as e:
            # The bus stayed unreachable past the retries: leave the request unacknowledged,
            # so it is redelivered (here or elsewhere) once the bus is back.
            log.error("experiment_abandoned", worker=self.name, error=str(e))
        finally:
            self._running -= 1
            slots.release()

    async def _process(self, d: Delivery) -> None:
        try:
            req = decode_request(d.data)
        except MessageError as e:
            log.warning("garbage_request_dropped", worker=self.name, error=str(e))
            await d.term()
            return
        key = req.experiment.key()
        run, label = req.run_id, req.label
        logger = log.bind(worker=self.name, run_id=run, experiment=key[:12], label=label)

        hit = await answer_from_cache(self.bus, key, run_id=run, label=label, by=self.name)
        if hit is not None:
            self._cached += 1
            self._done += 1
            await d.ack()
            logger.info("experiment_cached", mean_e2e_s=hit.summary.mean_e2e_s)
            return

        await self.bus.publish_event(
            ExperimentStarted(
                run_id=run, key=key, label=label, worker=self.name, attempt=d.attempt,
                at=time.time(),
            )
        )  # fmt: skip
        t0 = time.perf_counter()
        try:
            summary, router, table = await self._execute(req, d)
        except BrokenProcessPool:
            await self._crashed(req, key, d, logger)
            return
        except GliaError as e:
            detail = e.failure if isinstance(e, DesignFailed) else None
            await self._fail(req, key, _kind(e), str(e), d.attempt, detail)
            await d.ack()
            logger.info("experiment_failed", kind=_kind(e), error=str(e))
            return
        except Exception as e:  # a bug surfacing in the simulation: deterministic, report it
            await self._fail(req, key, "simulation", f"{type(e).__name__}: {e}", d.attempt)
            await d.ack()
            logger.exception("experiment_error")
            return
        wall = time.perf_counter() - t0
        # A name of its own per run of an experiment: the same experiment can run twice at
        # once (two runs submit it before either result is cached), and an object store put
        # under a taken name deletes the old copy's chunks, under a reader holding its result.
        artifact = f"{key}-{secrets.token_hex(4)}.csv"
        result = ExperimentResult(
            run_id=run, key=key, label=label, router=router, summary=summary,
            worker=self.name, artifact=artifact,
        )  # fmt: skip
        async with anyio.create_task_group() as tg:  # independent: store both at once
            tg.start_soon(self.bus.put_artifact, artifact, table.encode())
            tg.start_soon(self.bus.cache, result)
        await self.bus.publish_result(result)
        await self._finished(result, wall)
        await d.ack()
        self._done += 1
        logger.info("experiment_finished", mean_e2e_s=summary.mean_e2e_s, wall_s=round(wall, 3))

    async def _execute(self, req: ExperimentRequest, d: Delivery) -> tuple[Summary, str, str]:
        """Run in the shared pool on a first attempt, in a fresh process on a retry."""
        shared = self._pool
        assert shared is not None
        own = self._new_pool(1) if d.attempt > 1 else None
        pool: Executor = own or shared
        finished = False
        try:
            future = asyncio.wrap_future(pool.submit(self._runner, req.experiment, self.limits))
            error: Exception | None = None
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._keep_alive, d)
                try:
                    outcome = await future
                except Exception as e:  # raised below, outside the task group (not grouped)
                    error = e
                finally:
                    tg.cancel_scope.cancel()
            finished = True
            if isinstance(error, BrokenProcessPool) and own is None and self._pool is shared:
                # The first to notice replaces the pool for everyone.
                self._pool = self._new_pool(self.concurrency)
                shared.shutdown(wait=False, cancel_futures=True)
            if error is not None:
                raise error
            return outcome
        finally:
            if own is not None:
                if finished:
                    own.shutdown(wait=False)
                else:  # cancelled: the process would run on, unwatched, to the end
                    with anyio.CancelScope(shield=True):
                        await anyio.to_thread.run_sync(end_pool, own)

    async def _keep_alive(self, d: Delivery) -> None:
        """Tell the bus the experiment is still running, well within its ack wait."""
        while True:
            await anyio.sleep(self.ack_wait / 3)
            await d.in_progress()

    async def _crashed(
        self,
        req: ExperimentRequest,
        key: str,
        d: Delivery,
        logger: structlog.typing.FilteringBoundLogger,
    ) -> None:
        if d.attempt >= self.max_attempts:
            message = (
                f"the simulation process died on each of {d.attempt} attempts (killed, out of "
                "memory, or a crash in native code): the experiment was dead-lettered"
            )
            await self.bus.dead_letter(d.data)
            await self._fail(req, key, "crash", message, d.attempt)
            await d.term()
            logger.warning("experiment_dead_lettered", attempts=d.attempt)
        else:
            await d.nak(delay=0.5 * d.attempt)
            logger.warning("experiment_process_died", attempt=d.attempt)

    async def _fail(
        self,
        req: ExperimentRequest,
        key: str,
        kind: FailureKind,
        message: str,
        attempts: int,
        design: DesignFailure | None = None,
    ) -> None:
        self._failed += 1
        if len(message) > _MAX_MESSAGE:  # small on the bus, whatever produced it
            message = message[:_MAX_MESSAGE] + f"\n[... {len(message) - _MAX_MESSAGE} more cut]"
        await self.bus.publish_result(
            ExperimentFailure(
                run_id=req.run_id, key=key, label=req.label, kind=kind, message=message,
                worker=self.name, attempts=attempts,
                design=design.capped() if design is not None else None,
            )
        )  # fmt: skip
        await self.bus.publish_event(
            ExperimentFailed(
                run_id=req.run_id, key=key, label=req.label, worker=self.name, kind=kind,
                message=message, at=time.time(),
            )
        )  # fmt: skip

    async def _finished(self, result: ExperimentResult, wall: float) -> None:
        await self.bus.publish_event(
            ExperimentFinished(
                run_id=result.run_id, key=result.key, label=result.label, worker=self.name,
                mean_e2e_s=result.summary.mean_e2e_s, wall_s=wall, cached=result.cached,
                at=time.time(),
            )
        )  # fmt: skip
