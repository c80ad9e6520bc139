"""The parent side: run a design in a fresh, limited process and trust only the replay.

The sandbox process reports its design's decisions; :func:`run_sandboxed` replays them through
the simulator in this process, so the summary and per-request table come from code the design
never touched. A replay that disagrees with what the sandbox reported means the design changed
the simulation, and the run fails as ``forbidden``.
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
from collections.abc import Iterable, Sequence
from multiprocessing.connection import Connection
from multiprocessing.context import ForkContext, ForkServerContext

import msgspec
import numpy as np

from glia._errors import DesignError
from glia._lifeline import Lifeline, adopt, lifeline, watchers
from glia.experiment import DesignFailure, Limits
from glia.sim import (
    ClusterConfig,
    ClusterView,
    LoadView,
    ReplicaView,
    Request,
    SimResult,
    WorkloadConfig,
    simulate,
)
from glia.tasks import DEFAULT_TASK

from ._child import BASES, SLOTS, Decisions, SandboxOutput, SandboxRequest, _policies, child_main

__all__ = ["check_design", "run_sandboxed"]

_warmed = False


def _context() -> ForkContext | ForkServerContext:
    """How to start a sandbox process: fork this one when it is single-threaded (after warming
    the simulator here once, so every child starts warm), else via a fork server. (The lifeline
    watcher of a pool process holds no locks: forking beside it is safe.)"""
    global _warmed
    if threading.active_count() <= 1 + watchers():
        if not _warmed:
            import glia.sandbox._warm  # noqa: F401  (runs the warm-up once per process)

            _warmed = True
        return multiprocessing.get_context("fork")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["glia.sandbox._warm"])
    return ctx


class _Replay:
    """Routes exactly as the sandboxed design did, call by call."""

    def __init__(self, name: str, d: Decisions) -> None:
        self.name = name
        self._calls: dict[int, tuple[float, list[tuple[int, int]]]] = {}
        at = 0
        for call, when, count in zip(d.calls, d.times, d.counts, strict=True):
            pairs = list(zip(d.replicas[at : at + count], d.requests[at : at + count], strict=True))
            self._calls[call] = (when, pairs)
            at += count
        self._call = 0

    def setup(self, cluster: ClusterView, rng: np.random.Generator) -> None:
        pass

    def schedule(self, cluster: ClusterView) -> Iterable[tuple[int, Request]]:
        self._call += 1
        logged = self._calls.get(self._call)
        if logged is None:
            return []
        when, pairs = logged
        queue = {r.id: r for r in cluster.queue}
        if when != cluster.now or any(q not in queue for _, q in pairs):
            raise DesignError("the replay diverged from the sandbox's run")
        return [(r, queue[q]) for r, q in pairs]


class _ScheduleReplay:
    """Admits and preempts exactly as the sandboxed scheduler did, call by call."""

    def __init__(self, name: str, d: Decisions) -> None:
        self.name = name
        self.token_budget = d.token_budget
        self.skip_blocked = d.skip_blocked
        self._counts = iter(d.order_counts)
        self._ordered = iter(d.ordered)
        self._victims = iter(d.victims)

    def setup(self, cluster: ClusterView, rng: np.random.Generator) -> None:
        pass

    def order(self, replica: ReplicaView, now: float) -> list[Request]:
        queue = {r.id: r for r in replica.queue}
        ids = [next(self._ordered, -1) for _ in range(next(self._counts, 0))]
        if any(i not in queue for i in ids):
            raise DesignError("the replay diverged from the sandbox's run")
        return [queue[i] for i in ids]

    def admitted(self, replica: ReplicaView, requests: Sequence[Request]) -> None:
        pass

    def victim(self, replica: ReplicaView, now: float) -> Request:
        chosen = next(self._victims, -1)
        for r in replica.running:
            if r.request.id == chosen:
                return r.request
        raise DesignError("the replay diverged from the sandbox's run")


class _ScaleReplay:
    """Asks for exactly the replica counts the sandboxed autoscaler did."""

    def __init__(self, name: str, d: Decisions) -> None:
        self.name = name
        self.interval_s = d.interval_s
        self._scales = iter(d.scales)

    def setup(self, cluster: ClusterView, rng: np.random.Generator) -> None:
        pass

    def scale(self, load: LoadView) -> int:
        want = next(self._scales, None)
        if want is None:
            raise DesignError("the replay diverged from the sandbox's run")
        return want


_REPLAYS = {"router": _Replay, "scheduler": _ScheduleReplay, "autoscaler": _ScaleReplay}
"""The replay of a design's decisions, by the place it takes (its task's slot)."""


def _sandbox_main(line: Lifeline, conn: Connection, payload: bytes) -> None:
    """The sandbox process: first tied to this process and the root Glia process (it dies with
    either, however they die), then :func:`child_main`."""
    adopt(line)
    child_main(conn, payload)


def _spawn(req: SandboxRequest) -> SandboxOutput | DesignFailure:
    ctx = _context()
    line = lifeline(ctx.get_start_method())
    receiver, sender = ctx.Pipe(duplex=False)
    payload = msgspec.msgpack.encode(req)
    proc = ctx.Process(target=_sandbox_main, args=(line, sender, payload), daemon=True)
    proc.start()
    sender.close()
    data: bytes | None = None
    try:
        timed_out = not receiver.poll(req.limits.wall_s)
        if not timed_out:
            try:
                data = receiver.recv_bytes()
            except EOFError:  # the process died without reporting
                data = None
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join()
        receiver.close()
    if data is not None:
        return msgspec.msgpack.decode(data, type=SandboxOutput)
    code = proc.exitcode
    if timed_out or code == -signal.SIGXCPU:
        limit = f"{req.limits.wall_s:g} s" if timed_out else f"{req.limits.cpu_s:g} s of CPU"
        return DesignFailure(
            kind="timeout",
            message=f"the design's simulation did not finish within {limit}: look for an "
            "endless loop, or make schedule() cheaper",
        )
    if code == -signal.SIGKILL:  # not ours: the kernel's out-of-memory killer
        return DesignFailure(kind="memory", message="the design's process was killed for memory")
    if code == -signal.SIGXFSZ:
        return DesignFailure(kind="forbidden", message="the design tried to write a file")
    return DesignFailure(
        kind="exception", message=f"the design's process died with exit code {code}"
    )


def run_sandboxed(
    design_source: str,
    cluster: ClusterConfig,
    workload: WorkloadConfig,
    seed: int = 0,
    limits: Limits | None = None,
    *,
    task: str = DEFAULT_TASK.name,
    router: str = "llq",
    scheduler: str | None = None,
    autoscaler: str | None = None,
) -> SimResult | DesignFailure:
    """Simulate a design given as source code, isolated; its trusted result or why it failed.

    The design is the ``task``'s policy (a Router, ReplicaScheduler or Autoscaler subclass);
    ``router``, ``scheduler`` and ``autoscaler`` name the baselines in the other places (the
    one of the design's task is ignored).
    """
    if task not in BASES:
        raise ValueError(f"unknown task {task!r}")
    lim = limits or Limits()
    req = SandboxRequest(
        design_source=design_source, cluster=cluster, workload=workload, seed=seed, limits=lim,
        task=task, router=router, scheduler=scheduler, autoscaler=autoscaler,
    )  # fmt: skip
    out = _spawn(req)
    if isinstance(out, DesignFailure):
        return out
    if out.failure is not None:
        return msgspec.structs.replace(out.failure, output=out.output)
    assert out.summary is not None and out.decisions is not None
    name = out.router if out.router.isidentifier() and len(out.router) <= 64 else "design"
    try:
        replay = simulate(
            cluster, workload, seed,
            **_policies(req, _REPLAYS[SLOTS[task]](name, out.decisions)),  # type: ignore[arg-type]
        )  # fmt: skip
    except DesignError:
        replay = None
    reported = msgspec.structs.replace(out.summary, wall_s=0.0)
    if replay is None or msgspec.structs.replace(replay.summary, wall_s=0.0) != reported:
        return DesignFailure(
            kind="forbidden",
            message="the design changed the simulation: its reported results differ from a "
            "replay of its own decisions",
            output=out.output,
        )
    return replay


def check_design(
    design_source: str, limits: Limits | None = None, task: str = DEFAULT_TASK.name
) -> str | DesignFailure:
    """Load a design in the sandbox without simulating: its policy class's name, or what is
    wrong (``task`` says which base class it must subclass)."""
    if task not in BASES:
        raise ValueError(f"unknown task {task!r}")
    req = SandboxRequest(
        design_source=design_source, cluster=ClusterConfig(), workload=WorkloadConfig(),
        seed=0, limits=limits or Limits(wall_s=20.0), check_only=True, task=task,
    )  # fmt: skip
    out = _spawn(req)
    if isinstance(out, DesignFailure):
        return out
    if out.failure is not None:
        return msgspec.structs.replace(out.failure, output=out.output)
    return out.router
