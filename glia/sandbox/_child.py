"""The sandbox process: load the design under guard, simulate, and report its decisions.

Runs in a fresh process forked for one experiment. Everything the simulation needs (the
trace, the cluster's latency model) is prepared before the guard is armed; then the design's
source is executed and simulated. The process reports the summary it saw and every decision of
the design (routing assignments, a scheduler's admission orders and preemption victims, an
autoscaler's replica counts), which the parent replays through its own simulator: the metrics
that count are the parent's.

Why one module of this size: everything that runs inside a design's process (loading, static
rules, limits, capture, recorders) in one place; the sandbox rebuild replaces it whole.
"""

from __future__ import annotations

import ast
import io
import linecache
import os
import resource
import sys
import traceback
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from types import ModuleType

import msgspec
import numpy as np

from glia._errors import DesignError
from glia.experiment import DesignFailure, FailureKind, Limits
from glia.policies import (
    Autoscaler,
    Policy,
    ReplicaScheduler,
    Router,
    resolve_autoscaler,
    resolve_router,
    resolve_scheduler,
)
from glia.sim import (
    ClusterConfig,
    ClusterView,
    LoadView,
    ReplicaView,
    Request,
    Summary,
    WorkloadConfig,
    build_trace,
    run_simulation,
)
from glia.tasks import DEFAULT_TASK, TASKS

from ._guard import Forbidden, ForbiddenImport, arm, design_builtins
from ._policy import violations

__all__ = [
    "BASES",
    "SLOTS",
    "Decisions",
    "SandboxOutput",
    "SandboxRequest",
    "child_main",
    "load_checked",
    "warm_up",
]

DESIGN_FILE = "design.py"

BASES: dict[str, type[Policy]] = {t.name: t.base for t in TASKS.values()}
"""The policy base class a design subclasses, by task."""

SLOTS = {t.name: t.slot for t in TASKS.values()}
"""Where a task's policy goes, by task: the :func:`~glia.sim.run_simulation` argument (and
:class:`~glia.Experiment` field) it fills."""


class SandboxRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One design to run; the policies of the other tasks are baselines by name."""

    design_source: str
    cluster: ClusterConfig
    workload: WorkloadConfig
    seed: int
    limits: Limits
    check_only: bool = False
    task: str = DEFAULT_TASK.name
    router: str = "llq"
    scheduler: str | None = None
    autoscaler: str | None = None


class Decisions(msgspec.Struct, frozen=True, kw_only=True):
    """What the design decided, by task.

    Routing: every non-empty routing call, its index among all calls, its time and the pairs.
    Scheduling: the ids of the requests admitted after every ``order()`` call
    (``order_counts`` per call, in engine order), every victim's id, and the scheduler's
    settings. Autoscaling: every count
    ``scale()`` returned, and the interval.
    """

    calls: list[int] = []
    times: list[float] = []
    counts: list[int] = []
    replicas: list[int] = []
    requests: list[int] = []
    order_counts: list[int] = []
    ordered: list[int] = []
    victims: list[int] = []
    token_budget: int | None = None
    skip_blocked: bool = False
    scales: list[int] = []
    interval_s: float = 0.0


class SandboxOutput(msgspec.Struct, frozen=True, kw_only=True):
    router: str
    summary: Summary | None = None
    decisions: Decisions | None = None
    failure: DesignFailure | None = None
    output: str = ""


class _Capture(io.TextIOBase):
    """stdout/stderr of the design: kept up to a limit, the rest counted."""

    def __init__(self, limit: int) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.dropped = 0
        self.limit = limit

    def write(self, s: str) -> int:
        room = self.limit - self.size
        if room > 0:
            self.parts.append(s[:room])
            self.size += min(len(s), room)
        self.dropped += max(0, len(s) - max(room, 0))
        return len(s)

    def text(self) -> str:
        extra = f"\n[... {self.dropped} more characters not kept]" if self.dropped else ""
        return "".join(self.parts) + extra


class _Recorder:
    """Wraps the design: logs each routing call's decisions before the engine checks them."""

    def __init__(self, inner: Router) -> None:
        self.inner = inner
        self.name = inner.name
        self.call = 0
        self.calls: list[int] = []
        self.times: list[float] = []
        self.counts: list[int] = []
        self.replicas: list[int] = []
        self.requests: list[int] = []

    def setup(self, cluster: ClusterView, rng: np.random.Generator) -> None:
        self.inner.setup(cluster, rng)

    def schedule(self, cluster: ClusterView) -> list[tuple[int, Request]]:
        self.call += 1
        pairs = list(self.inner.schedule(cluster) or [])
        good = [
            (int(p[0]), p[1].id)
            for p in pairs
            if isinstance(p, tuple) and len(p) == 2 and isinstance(p[1], Request)
            and isinstance(p[0], int | np.integer)
        ]  # fmt: skip
        if good:
            self.calls.append(self.call)
            self.times.append(cluster.now)
            self.counts.append(len(good))
            self.replicas.extend(r for r, _ in good)
            self.requests.extend(q for _, q in good)
        return pairs

    def decisions(self) -> Decisions:
        return Decisions(
            calls=self.calls, times=self.times, counts=self.counts,
            replicas=self.replicas, requests=self.requests,
        )  # fmt: skip


class _SchedulerRecorder:
    """Wraps a scheduler design: logs its orders and victims. Its ``token_budget`` and
    ``skip_blocked`` are read once, after ``setup``."""

    def __init__(self, inner: ReplicaScheduler) -> None:
        self.inner = inner
        self.name = inner.name
        self.token_budget: int | None = None
        self.skip_blocked = False
        self.counts: list[int] = []
        self.ids: list[int] = []
        self.victims: list[int] = []

    def setup(self, cluster: ClusterView, rng: np.random.Generator) -> None:
        self.inner.setup(cluster, rng)
        budget = self.inner.token_budget
        if budget is not None and (type(budget) is not int or budget < 1):
            raise DesignError(
                f"scheduler {self.name!r} has token_budget = {budget!r}: give a positive int "
                "(tokens per iteration) or None (the replica's chunk size)"
            )
        self.token_budget, self.skip_blocked = budget, bool(self.inner.skip_blocked)

    def order(self, replica: ReplicaView, now: float) -> list[Request]:
        return list(self.inner.order(replica, now) or [])

    def admitted(self, replica: ReplicaView, requests: Sequence[Request]) -> None:
        # Only what was admitted is kept (the full orders can be huge): replaying exactly
        # these, in order, admits the same requests from the same state.
        self.counts.append(len(requests))
        self.ids.extend(q.id for q in requests)
        self.inner.admitted(replica, requests)

    def victim(self, replica: ReplicaView, now: float) -> Request:
        req = self.inner.victim(replica, now)
        self.victims.append(req.id if isinstance(req, Request) else -1)
        return req

    def decisions(self) -> Decisions:
        return Decisions(
            order_counts=self.counts, ordered=self.ids, victims=self.victims,
            token_budget=self.token_budget, skip_blocked=self.skip_blocked,
        )  # fmt: skip


class _ScalerRecorder:
    """Wraps an autoscaler design: logs every count it asks for."""

    def __init__(self, inner: Autoscaler) -> None:
        self.inner = inner
        self.name = inner.name
        self.interval_s = inner.interval_s
        self.scales: list[int] = []

    def setup(self, cluster: ClusterView, rng: np.random.Generator) -> None:
        self.inner.setup(cluster, rng)
        self.interval_s = self.inner.interval_s

    def scale(self, load: LoadView) -> int:
        want = self.inner.scale(load)
        if type(want) is int or isinstance(want, np.integer):
            self.scales.append(int(want))
        return want

    def decisions(self) -> Decisions:
        return Decisions(scales=self.scales, interval_s=float(self.interval_s))


def _trimmed_traceback(e: BaseException) -> str:
    """The traceback's frames in the design's own file, innermost last."""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == DESIGN_FILE]
    if not frames:
        return ""
    lines = [f"  {DESIGN_FILE}:{f.lineno} in {f.name}: {(f.line or '').strip()}" for f in frames]
    return "\n".join(["Traceback (the design's lines):", *lines, f"{type(e).__name__}: {e}"])


def _failure(kind: FailureKind, message: str, e: BaseException | None = None) -> DesignFailure:
    return DesignFailure(kind=kind, message=message, traceback=_trimmed_traceback(e) if e else "")


def load_checked(source: str, base: type[Policy] = Router) -> type[Policy] | DesignFailure:
    """Compile and execute a design's source under the guard; its one subclass of ``base``."""
    try:
        tree = ast.parse(source, DESIGN_FILE)
    except SyntaxError as e:
        return DesignFailure(
            kind="syntax", message=f"{DESIGN_FILE}:{e.lineno}: {e.msg}",
            traceback=f"  {DESIGN_FILE}:{e.lineno}: {(e.text or '').rstrip()}",
        )  # fmt: skip
    broken = violations(tree)
    if broken:
        return DesignFailure(kind="forbidden", message="; ".join(broken))
    linecache.cache[DESIGN_FILE] = (len(source), None, source.splitlines(True), DESIGN_FILE)
    module = ModuleType("design")
    module.__dict__.update(__file__=DESIGN_FILE, __builtins__=design_builtins())
    try:
        exec(compile(tree, DESIGN_FILE, "exec"), module.__dict__)
    except ForbiddenImport as e:
        return _failure("import", str(e), e)
    except Forbidden as e:
        return _failure("forbidden", str(e), e)
    except MemoryError as e:
        return _failure("memory", "the design ran out of memory while loading", e)
    except BaseException as e:
        return _failure("exception", f"loading the design raised {type(e).__name__}: {e}", e)
    found = [
        v for v in vars(module).values()
        if isinstance(v, type) and issubclass(v, base) and v is not base
        and v.__module__ == "design"
    ]  # fmt: skip
    if len(found) != 1:
        names = ", ".join(c.__name__ for c in found) or "none"
        other = [
            task for task, b in BASES.items() if b is not base and any(
                isinstance(v, type) and issubclass(v, b) and v.__module__ == "design"
                for v in vars(module).values())
        ]  # fmt: skip
        hint = f": it defines a design for the {other[0]} task" if other and not found else ""
        return DesignFailure(
            kind="exception",
            message=f"a design must define exactly one subclass of glia.policies."
            f"{base.__name__} (found {names}){hint}",
        )
    return found[0]


def _limit(kind: int, value: int, grace: int = 0) -> None:
    """Lower a resource limit (soft = value; hard = value + grace, within the current hard)."""
    hard = resource.getrlimit(kind)[1]
    top = value + grace if hard == resource.RLIM_INFINITY else min(value + grace, hard)
    resource.setrlimit(kind, (min(value, top), top))


def child_main(conn: Connection, payload: bytes) -> None:
    """Entry point of the sandbox process; sends one :class:`SandboxOutput` and exits."""
    out = _Capture(1)
    router_name = "design"
    try:
        req = msgspec.msgpack.decode(payload, type=SandboxRequest)
        out = _Capture(req.limits.output_kb * 1024)
        os.environ.clear()  # credentials and keys of the worker stay out of reach
        os.environ["PATH"] = "/nonexistent"
        cluster = req.cluster
        trace = None
        if not req.check_only:
            trace = build_trace(req.workload, req.seed, max_context=cluster.resolve().max_context)
        # SIGXCPU at the soft limit, a second of grace before the hard limit's SIGKILL.
        _limit(resource.RLIMIT_CPU, max(1, int(req.limits.cpu_s)), grace=1)
        _limit(resource.RLIMIT_AS, req.limits.memory_mb << 20)
        _limit(resource.RLIMIT_FSIZE, 0)
        _limit(resource.RLIMIT_CORE, 0)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)  # output from native code goes nowhere; Python's is captured
        os.dup2(devnull, 2)
        sys.stdout = sys.stderr = out
        warm_up()  # every lazy import and kernel dispatch happens now, before the guard
        roots = {sys.prefix, sys.base_prefix, str(Path(__file__).resolve().parents[1])}
        arm(sorted(roots))
        loaded = load_checked(req.design_source, BASES[req.task])
        if isinstance(loaded, DesignFailure):
            result = SandboxOutput(router=router_name, failure=loaded)
        elif req.check_only:
            result = SandboxOutput(router=loaded.__name__)
        else:
            router_name = loaded.name or loaded.__name__
            assert trace is not None
            recorder = _recorder(loaded())
            try:
                sim = run_simulation(
                    trace, cluster, seed=req.seed, workload=req.workload,
                    **_policies(req, recorder),  # type: ignore[arg-type]
                )  # fmt: skip
                result = SandboxOutput(
                    router=router_name, summary=sim.summary, decisions=recorder.decisions()
                )
            except DesignError as e:
                failure = msgspec.structs.replace(_classify(e), partial=e.partial)
                result = SandboxOutput(router=router_name, failure=failure)
    except MemoryError as e:
        result = SandboxOutput(
            router=router_name,
            failure=_failure("memory", "the simulation ran out of memory (limit reached)", e),
        )
    except BaseException as e:  # SystemExit, KeyboardInterrupt, anything the design raised
        result = SandboxOutput(
            router=router_name,
            failure=_failure("exception", f"the design raised {type(e).__name__}: {e}", e),
        )
    result = msgspec.structs.replace(result, output=out.text())
    conn.send_bytes(msgspec.msgpack.encode(result))
    conn.close()
    os._exit(0)  # skip interpreter teardown: nothing the design registered runs


_AnyRecorder = _Recorder | _SchedulerRecorder | _ScalerRecorder


def _recorder(design: Policy) -> _AnyRecorder:
    if isinstance(design, Router):
        return _Recorder(design)
    if isinstance(design, ReplicaScheduler):
        return _SchedulerRecorder(design)
    assert isinstance(design, Autoscaler)
    return _ScalerRecorder(design)


def _policies(req: SandboxRequest, design: object) -> dict[str, object]:
    """The engine's policy arguments: ``design`` in its task's place, baselines elsewhere."""
    policies: dict[str, object] = {
        "router": resolve_router(req.router),
        "scheduler": resolve_scheduler(req.scheduler) if req.scheduler is not None else None,
        "autoscaler": resolve_autoscaler(req.autoscaler) if req.autoscaler is not None else None,
    }
    policies[SLOTS[req.task]] = design
    return policies


def warm_up() -> None:
    """Run a tiny simulation: every lazy import and kernel dispatch of the simulator happens."""
    from glia.sim import Trace

    tiny = Trace(np.array([0.0, 0.0]), np.array([20, 40]), np.array([40, 3]))
    run_simulation(tiny, ClusterConfig(num_replicas=2, num_blocks=64), resolve_router("llq"))


def _classify(e: DesignError) -> DesignFailure:
    """A DesignError from the engine: an invalid decision, or what the design raised."""
    cause = e.__cause__
    if cause is None:
        return DesignFailure(kind="invalid-decision", message=str(e))
    if isinstance(cause, ForbiddenImport):
        return _failure("import", str(cause), cause)
    if isinstance(cause, Forbidden):
        return _failure("forbidden", str(cause), cause)
    if isinstance(cause, MemoryError):
        return _failure("memory", "the design ran out of memory (limit reached)", cause)
    return _failure("exception", str(e), cause)
