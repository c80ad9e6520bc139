"""The trusted side: run the simulator here, and ask a design's sandbox for each decision.

The simulator, the trace and every object with hidden fields stay in this process. The design
runs in its own process behind the OS boundary (:mod:`._boundary`), holding only the design
and the design-side package; at each policy call it receives a plain-data snapshot of the
public view fields (:mod:`._side.protocol`) and answers with plain-data decisions, which the
simulator checks and applies like any policy's. Nothing the design's process sends is
unpickled or trusted beyond its schema and size; anything else ends the run as a ``protocol``
failure. The metrics are this process's: the design cannot report its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from typing import NoReturn, TypeVar

import msgspec
import numpy as np

from glia._errors import DesignError, SimulationError
from glia.experiment import DesignFailure, FailureKind, Limits
from glia.policies import resolve_autoscaler, resolve_router, resolve_scheduler
from glia.sim import (
    ClusterConfig,
    ClusterView,
    LoadView,
    ReplicaView,
    Request,
    SimResult,
    Trace,
    WorkloadConfig,
    run_simulation,
    simulate,
)
from glia.tasks import DEFAULT_TASK, TASKS

from . import _boundary
from ._side import protocol as p
from ._side.views import Request as WireRequest

__all__ = ["SandboxedRouter", "check_design", "run_sandboxed"]

SLOTS = {t.name: t.slot for t in TASKS.values()}
"""Where a task's policy goes, by task: the :func:`~glia.sim.run_simulation` argument (and
:class:`~glia.Experiment` field) it fills."""

_EXIT_WAIT_S = 2.0
"""How long a finished design's process may take to exit before it is killed."""
_MAX_PENDING = 256
"""Most routing calls sent without waiting for their answers (calls that cannot route)."""
M = TypeVar("M", bound=p.FromSandbox)
T = TypeVar("T")


class _Stopped(DesignError):
    """The design's run ended with ``failure`` (raised through the simulator)."""

    def __init__(self, failure: DesignFailure) -> None:
        super().__init__(failure.message)
        self.failure = failure


class _Sandbox:
    """One design's process and the channel to it."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.started = time.monotonic()
        self.deadline = self.started + limits.wall_s
        self.decoder = msgspec.msgpack.Decoder(p.FromSandbox)
        self.encoder = msgspec.msgpack.Encoder()
        self._out = bytearray()  # frames not sent yet
        self._in = bytearray()  # bytes received, from ``_pos`` on not read yet
        self._pos = 0
        ours, theirs = socket.socketpair()
        self.sock = ours
        # Non-blocking: a wait spins briefly, then sleeps in poll() until the deadline.
        ours.setblocking(False)
        self._readable, self._writable = select.poll(), select.poll()
        self._readable.register(ours, select.POLLIN)
        self._writable.register(ours, select.POLLOUT)
        # Only a trusted design's process needs a folder here (inside the boundary its working
        # directory is the sandbox's own, empty /work).
        self._workdir = (
            tempfile.TemporaryDirectory(prefix="glia-design-") if limits.trusted else None
        )
        try:
            workdir = self._workdir.name if self._workdir is not None else "/"
            argv = _boundary.command(
                theirs.fileno(), cpu_s=limits.cpu_s, memory_mb=limits.memory_mb,
                trusted=limits.trusted, workdir=workdir,
            )  # fmt: skip
            self.proc = subprocess.Popen(
                argv, pass_fds=(theirs.fileno(),), env={}, cwd=workdir,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                start_new_session=True,
            )  # fmt: skip
        except BaseException:
            ours.close()
            if self._workdir is not None:
                self._workdir.cleanup()
            raise
        finally:
            theirs.close()

    # -- the channel ---------------------------------------------------------------------------
    def send(self, msg: p.ToSandbox) -> None:
        """Queue a frame; frames go out together, in one write, before this side next waits
        for the design (fewer system calls and wake-ups per round trip)."""
        body = self.encoder.encode(msg)
        self._out += len(body).to_bytes(4, "big")
        self._out += body

    def flush(self) -> None:
        if self._out:
            view, self._out = memoryview(self._out), bytearray()
            while view:
                try:
                    view = view[self.sock.send(view) :]
                except BlockingIOError:  # the design has not read what it was sent yet
                    self._poll(self._writable)
                except OSError:
                    self._died()

    def _read(self, n: int) -> memoryview:
        """The next ``n`` bytes, read in large chunks (a frame's head and body, and the frames
        after it, usually arrive in one ``recv``)."""
        while len(self._in) - self._pos < n:
            if self._pos:
                del self._in[: self._pos]
                self._pos = 0
            chunk = self._wait(max(n - len(self._in), 1 << 16))
            if not chunk:
                self._died()
            self._in += chunk
        start = self._pos
        self._pos += n
        return memoryview(self._in)[start : self._pos]

    def _wait(self, size: int) -> bytes:
        """Up to ``size`` bytes, once some arrive (empty: the design's process is gone). Polls
        for up to :data:`p.SPIN_S` before it sleeps until the deadline: a design usually
        answers sooner than a sleeping reader takes to wake."""
        sock, spin_until = self.sock, time.perf_counter() + p.SPIN_S
        while True:
            try:
                return sock.recv(size)
            except BlockingIOError:
                if time.perf_counter() > spin_until:
                    self._poll(self._readable)
                else:
                    os.sched_yield()  # the design may be waiting for this core
            except OSError:
                return b""

    def _poll(self, poller: select.poll) -> None:
        """Sleep until ``poller``'s event or the design's deadline."""
        left = self.deadline - time.monotonic()
        if left <= 0 or not poller.poll(left * 1000):
            self._timed_out()

    def recv(self) -> p.FromSandbox:
        self.flush()
        with self._read(4) as head:
            size = int.from_bytes(head, "big")
        if size > p.MAX_FRAME:
            self._protocol(f"a message of {size} bytes (at most {p.MAX_FRAME} are accepted)")
        try:
            with self._read(size) as body:
                return self.decoder.decode(body)
        except msgspec.DecodeError as e:
            self._protocol(f"a malformed message ({e})")

    def expect(self, kind: type[M], answer: _Answerer | None = None) -> M:
        """The next message, which must be a ``kind`` (``Fetch`` requests are answered on the
        way, by ``answer``); a ``Failed`` report ends the run with its failure."""
        while True:
            msg = self.recv()
            if isinstance(msg, kind):
                return msg
            if isinstance(msg, p.Failed):
                raise _Stopped(DesignFailure(
                    kind=msg.kind, message=msg.message, traceback=msg.traceback,
                    output=msg.output,
                ).capped())  # fmt: skip
            if isinstance(msg, p.Fetch) and answer is not None:
                self.send(answer.fetch(msg))
                continue
            self._protocol(f"a {type(msg).__name__} message where a {kind.__name__} was due")

    # -- how it ends ---------------------------------------------------------------------------
    def _protocol(self, what: str) -> NoReturn:
        self.kill()
        raise _Stopped(DesignFailure(
            kind="protocol",
            message=f"the design's process sent {what}: designs talk to the simulator only "
            "through the policy methods they implement",
        ))  # fmt: skip

    def _timed_out(self) -> NoReturn:
        self.kill()
        raise _Stopped(DesignFailure(
            kind="timeout",
            message=f"the design's simulation did not finish within {self.limits.wall_s:g} s: "
            "look for an endless loop, or make each call cheaper",
        ))  # fmt: skip

    def _died(self) -> NoReturn:
        """The process closed its channel without reporting: say why, from how it ended."""
        code = self.wait(_EXIT_WAIT_S)
        if code in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
            kind: FailureKind = "cpu"
            message = (
                f"the design used more than {self.limits.cpu_s:g} s of CPU time: look for an "
                "endless loop, or make each call cheaper"
            )
        elif code in (-signal.SIGKILL, 137) and self.alive_s() >= self.limits.cpu_s:
            kind = "cpu"  # the hard CPU limit (the soft one's signal could not be handled)
            message = (
                f"the design used more than {self.limits.cpu_s:g} s of CPU time (it was "
                "killed inside a long native call): make each call cheaper"
            )
        elif code in (-signal.SIGKILL, 128 + signal.SIGKILL):
            kind, message = "memory", "the design's process was killed, out of memory"
        elif code is not None and (code < 0 or code > 128):  # a signal (bwrap: 128 + signal)
            number = -code if code < 0 else code - 128
            name = signal.Signals(number).name if number in signal.valid_signals() else number
            kind = "exception"
            message = (
                f"the design's process died of {name}: native code it called crashed (e.g. "
                "numpy reading out of bounds)"
            )
        else:
            kind = "protocol"
            message = (
                f"the design's process ended without reporting (exit code {code}): a design "
                "must not exit or close its process's files"
            )
            detail = self.stderr()
            if detail:
                message += f"; it said: {detail}"
        raise _Stopped(DesignFailure(kind=kind, message=message))

    def alive_s(self) -> float:
        return time.monotonic() - self.started

    def stderr(self) -> str:
        """What the process wrote before it was sealed (bubblewrap's or Python's errors)."""
        assert self.proc.stderr is not None
        with contextlib.suppress(OSError):
            os.set_blocking(self.proc.stderr.fileno(), False)
            return (self.proc.stderr.read(2000) or b"").decode(errors="replace").strip()
        return ""

    def wait(self, timeout: float) -> int | None:
        """Reap the process (killing it after ``timeout``), keeping its resource usage."""
        if self.proc.returncode is not None:
            return self.proc.returncode
        end = time.monotonic() + timeout
        pause = 0.0005  # a finished process exits within a millisecond or two: look often
        while True:
            pid, status = os.waitpid(self.proc.pid, os.WNOHANG)
            if pid:
                self.proc.returncode = os.waitstatus_to_exitcode(status)
                return self.proc.returncode
            if time.monotonic() >= end:
                self.kill()
                end = float("inf")
            time.sleep(pause)
            pause = min(2 * pause, 0.005)

    def kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    def close(self) -> None:
        """Tell the process to finish, and make sure it is gone (killed if it lingers)."""
        if self.proc.returncode is None:
            with contextlib.suppress(OSError):
                body = self.encoder.encode(p.Finish())
                self.sock.sendall(self._out + len(body).to_bytes(4, "big") + body)
        self.wait(0.5)
        self.sock.close()
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        if self._workdir is not None:
            self._workdir.cleanup()


class _Answerer:
    """The trusted side of one design: snapshots out, decisions in, heavy fields on request."""

    def __init__(self, box: _Sandbox, name: str) -> None:
        self.box = box
        self.name = name
        self.requests: dict[int, Request] = {}  # every request the design has been shown
        self.views: dict[int, ReplicaView] = {}
        # replica -> queue last shown (compared as a tuple: the simulator hands out the same
        # Request objects, so an unchanged queue compares by identity, in C)
        self.shown: dict[int, tuple[Request, ...]] = {}
        self.last_arrival = -1  # highest request id shown in the global queue
        self.introduced: list[p.ReplicaInfo] = []  # replicas to show with the next call
        self.blocks = False  # whether the design reads block counts (then sent with each call)

    def _show(self, r: Request, into: list[WireRequest]) -> None:
        if r.id not in self.requests:
            self.requests[r.id] = r
            into.append(WireRequest(r.id, r.arrived_at, r.num_prefill_tokens, r.prefix_id,
                                    r.prefix_len))  # fmt: skip

    def states(self, views: Iterable[ReplicaView], new: list[WireRequest]) -> list[p.ReplicaState]:
        out = []
        known, shown, blocks = self.views, self.shown, self.blocks
        for v in views:
            vid = v.id
            if known.get(vid) is not v:
                if vid not in known:
                    self.introduced.append(_info(v))
                known[vid] = v
            queue = v.queue
            ids: list[int] | None = None
            if shown.get(vid) != queue:
                shown[vid] = queue
                ids = [q.id for q in queue]
                for q in queue:
                    self._show(q, new)
            if v.stale_fields:  # scraped metrics: no prefix cache to show
                allocated = v.num_allocated_blocks if blocks else -1
                out.append(p.ReplicaState(vid, allocated, v.num_running, 0 if blocks else -1,
                                          ids, v.metrics_age_s, v.num_outstanding))  # fmt: skip
            elif blocks:
                out.append(p.ReplicaState(vid, v.num_allocated_blocks, v.num_running,
                                          v.prefix_cache_blocks, ids))  # fmt: skip
            else:
                out.append(p.ReplicaState(vid, -1, v.num_running, -1, ids))
        return out

    def setup(self, cluster: ClusterView, rng: np.random.Generator) -> p.Ready:
        infos = []
        for v in cluster.replicas:
            self.views[v.id] = v
            infos.append(_info(v))
        state = json.dumps(rng.bit_generator.state)
        self.box.send(p.Setup(replicas=infos, rng=state))
        return self.box.expect(p.Ready)

    def _introduced(self) -> list[p.ReplicaInfo]:
        out, self.introduced = self.introduced, []
        return out

    def request(self, i: int) -> Request:
        """The request the design named by id (a stand-in the simulator refuses if unknown)."""
        known = self.requests.get(i)
        return known if known is not None else Request(i, float("nan"), -1)

    def fetch(self, msg: p.Fetch) -> p.Answer:
        view = self.views.get(msg.replica)
        if view is None:
            self.box._protocol(f"a request for replica {msg.replica}, which it was never shown")
        if msg.what == "blocks":
            self.blocks = True
            cache = 0 if view.stale_fields else view.prefix_cache_blocks
            return p.Answer(blocks=(view.num_allocated_blocks, cache))
        if msg.what == "cached":
            req = self.requests.get(msg.request)
            return p.Answer(cached=view.cached_prefix(req) if req is not None else 0)
        running = [
            p.Running(WireRequest(r.request.id, r.request.arrived_at,
                                  r.request.num_prefill_tokens, r.request.prefix_id,
                                  r.request.prefix_len),
                      r.num_processed_tokens, r.num_generated_tokens, r.num_allocated_blocks,
                      r.in_prefill, r.num_restarts)
            for r in view.running
        ]  # fmt: skip
        return p.Answer(running=running)


def _info(v: ReplicaView) -> p.ReplicaInfo:
    return p.ReplicaInfo(v.id, v.gpu, v.model, v.num_blocks, v.block_size, v.watermark_blocks)


class _Router(_Answerer):
    """A router to the simulator; its decisions come from the sandbox.

    A call with an empty global queue can only route nothing, so its answer is not waited
    for: such calls are sent together with the next call that can route something (up to
    :data:`_MAX_PENDING` of them), and their answers, which must be empty, are read then, or
    at the end. The design still sees every call, in order; a field it fetches meanwhile shows
    the simulator's state at that later call's time, which is no more than it learns at that
    call.
    """

    def __init__(self, box: _Sandbox, name: str) -> None:
        super().__init__(box, name)
        self.pending: list[float] = []  # the times of calls whose answers are still to be read

    def settle(self) -> None:
        """Read the answers to the calls not waited for: each must route nothing."""
        pending, self.pending = self.pending, []
        for at in pending:
            routed = self.box.expect(p.Routed, self)
            if routed.pairs:
                i = routed.pairs[0][1]
                raise DesignError(
                    f"router {self.name!r} routed request {i} at t={at:.3f}s, which is not in "
                    "the global queue: route only requests from cluster.queue"
                )

    def schedule(self, cluster: ClusterView) -> list[tuple[int, Request]]:
        queue = cluster.queue
        start = len(queue)
        while start > 0 and queue[start - 1].id > self.last_arrival:
            start -= 1
        arrived: list[WireRequest] = []
        for r in queue[start:]:
            self._show(r, arrived)
        if arrived:
            self.last_arrival = queue[-1].id
        new: list[WireRequest] = []
        states = self.states(cluster.replicas, new)
        self.box.send(p.Call(method="schedule", now=cluster.now, trigger=cluster.trigger,
                             arrived=arrived, known=new, replicas=states,
                             introduced=self._introduced()))  # fmt: skip
        if not queue:
            self.pending.append(cluster.now)
            if len(self.pending) >= _MAX_PENDING:
                self.settle()
            return []
        # The calls not waited for go out in the same write as this one, and their answers
        # come back with its answer: one round trip for all.
        self.settle()
        routed = self.box.expect(p.Routed, self)
        return [(rid, self.request(i)) for rid, i in routed.pairs]


class _Scheduler(_Answerer):
    """A replica scheduler to the simulator; its decisions come from the sandbox."""

    token_budget: int | None = None
    skip_blocked = False

    def __init__(self, box: _Sandbox, name: str) -> None:
        super().__init__(box, name)
        self.notices: list[list[int]] | None = None

    def setup(self, cluster: ClusterView, rng: np.random.Generator) -> p.Ready:
        ready = super().setup(cluster, rng)
        self.token_budget, self.skip_blocked = ready.token_budget, ready.skip_blocked
        self.notices = [] if ready.admitted else None
        return ready

    def _call(self, method: p.Method, replica: ReplicaView, now: float) -> p.Call:
        new: list[WireRequest] = []
        states = self.states([replica], new)
        notices, self.notices = self.notices, [] if self.notices is not None else None
        return p.Call(method=method, now=now, known=new, replicas=states,
                      introduced=self._introduced(), replica=replica.id,
                      admitted=notices or [])  # fmt: skip

    def order(self, replica: ReplicaView, now: float) -> list[Request]:
        self.box.send(self._call("order", replica, now))
        return [self.request(i) for i in self.box.expect(p.Ordered, self).ids]

    def victim(self, replica: ReplicaView, now: float) -> Request:
        self.box.send(self._call("victim", replica, now))
        return self.request(self.box.expect(p.Victim, self).id)

    def admitted(self, replica: ReplicaView, requests: Sequence[Request]) -> None:
        if self.notices is not None and requests:
            self.notices.append([replica.id, *(q.id for q in requests)])


class _Autoscaler(_Answerer):
    """An autoscaler to the simulator; its decisions come from the sandbox."""

    interval_s = 15.0

    def scale(self, load: LoadView) -> int:
        new: list[WireRequest] = []
        states = self.states(load.cluster.replicas, new)
        whole = [self._wire(r) for r in load.cluster.queue]
        info = p.Load(load.window_s, load.arrivals, load.completions, load.min_replicas,
                      load.max_replicas, load.num_active, load.num_starting, load.num_draining,
                      load.num_ongoing)  # fmt: skip
        # The queue is sent whole: a baseline router, not this policy, empties it.
        self.box.send(p.Call(method="scale", now=load.now, trigger="scale", arrived=whole,
                             full=True, known=new, replicas=states, load=info,
                             introduced=self._introduced()))  # fmt: skip
        return self.box.expect(p.Scaled, self).count

    @staticmethod
    def _wire(r: Request) -> WireRequest:
        return WireRequest(r.id, r.arrived_at, r.num_prefill_tokens, r.prefix_id, r.prefix_len)


_PROXIES: dict[str, type[_Answerer]] = {
    "router": _Router, "scheduler": _Scheduler, "autoscaler": _Autoscaler,
}  # fmt: skip


def _start(source: str, task: str, limits: Limits, check_only: bool) -> tuple[_Sandbox, p.Loaded]:
    """A sandbox with the design loaded, and what it said of itself."""
    box = _Sandbox(limits)
    try:
        box.send(p.Start(task=task, source=source, check_only=check_only,  # type: ignore[arg-type]
                         output_kb=limits.output_kb))  # fmt: skip
        loaded = box.expect(p.Loaded)
    except BaseException:
        box.close()
        raise
    if not (loaded.name.isidentifier() and len(loaded.name) <= 64):
        loaded = msgspec.structs.replace(loaded, name="design")
    return box, loaded


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
    trace: Trace | None = None,
) -> SimResult | DesignFailure:
    """Simulate a design given as source code, its decisions made in the sandbox; the result
    (computed here) or why it failed.

    The design is the ``task``'s policy (a Router, ReplicaScheduler or Autoscaler subclass);
    ``router``, ``scheduler`` and ``autoscaler`` name the baselines in the other places (the
    one of the design's task is ignored). ``trace`` replaces the workload's requests for
    ``seed`` (the workload still names the run). Raises
    :class:`~glia.sandbox.SandboxUnavailable` when the OS boundary cannot be set up and
    ``limits.trusted`` is not set.
    """
    slot = _slot(task)
    lim = limits or Limits()
    try:
        box, loaded = _start(design_source, task, lim, check_only=False)
    except _Stopped as e:
        return e.failure
    policies: dict[str, object] = {
        "router": resolve_router(router),
        "scheduler": resolve_scheduler(scheduler) if scheduler is not None else None,
        "autoscaler": resolve_autoscaler(autoscaler) if autoscaler is not None else None,
    }
    policies[slot] = proxy = _PROXIES[slot](box, loaded.name)
    if isinstance(proxy, _Autoscaler):
        proxy.interval_s = loaded.interval_s
    try:
        if trace is None:
            result = simulate(cluster, workload, seed, **policies)  # type: ignore[arg-type]
        else:
            result = run_simulation(
                trace,
                cluster,
                seed=seed,
                workload=workload,
                **policies,  # type: ignore[arg-type]
            )
        if isinstance(proxy, _Router):
            proxy.settle()
        return result
    except _Stopped as e:
        return msgspec.structs.replace(e.failure, partial=e.partial)
    except DesignError as e:
        return DesignFailure(kind="invalid-decision", message=str(e), partial=e.partial).capped()
    except SimulationError as e:  # the only one the engine raises: requests left unserved
        return DesignFailure(kind="invalid-decision", message=str(e)).capped()
    finally:
        box.close()


def check_design(
    design_source: str, limits: Limits | None = None, task: str = DEFAULT_TASK.name
) -> str | DesignFailure:
    """Load a design in the sandbox without simulating: its policy's name, or what is wrong
    (``task`` says which base class it must subclass)."""
    _slot(task)
    try:
        box, loaded = _start(design_source, task, limits or Limits(wall_s=20.0), check_only=True)
    except _Stopped as e:
        return e.failure
    box.close()
    return loaded.name


def _slot(task: str) -> str:
    if task not in SLOTS:
        from glia._errors import InputError

        raise InputError(f"unknown task {task!r}: choose one of {', '.join(SLOTS)}")
    return SLOTS[task]


class SandboxedRouter:
    """A design's router in its sandbox, called with cluster views built outside the simulator.

    ``glia serve`` uses it to run a design in front of real engines: the design runs in its own
    process behind the same boundary and protocol as in a simulation (plain-data snapshots in,
    decisions out), so it behaves identically in both and the caller never executes its code.
    The views may be any :class:`~glia.sim.ReplicaView` subclass (``glia serve`` passes views
    of scraped engine metrics, whose ``stale_fields`` are set). Each call must be answered
    within ``call_timeout_s``; a design that fails, times out or breaks the protocol raises
    :class:`~glia.DesignError` (its message the failure's one line) and the router is closed.
    Use it as a context manager, or call :meth:`close`.
    """

    def __init__(self, source: str, limits: Limits, *, call_timeout_s: float = 1.0) -> None:
        self.call_timeout_s = call_timeout_s
        try:
            self._box, loaded = _start(source, "routing", limits, check_only=False)
        except _Stopped as e:
            raise DesignError(e.failure.one_line()) from None
        self.name = loaded.name
        """The design's name (its ``name``, else its class's)."""
        self._proxy = _Router(self._box, loaded.name)
        self.failure: DesignFailure | None = None
        """Why the design stopped, once it has."""

    def _call(self, fn: Callable[[], T]) -> T:
        if self.failure is not None:
            raise DesignError(self.failure.one_line())
        self._box.deadline = time.monotonic() + self.call_timeout_s
        try:
            return fn()
        except _Stopped as e:
            self.failure = e.failure
            self.close()
            raise DesignError(e.failure.one_line()) from None
        except DesignError as e:
            self.failure = DesignFailure(kind="invalid-decision", message=str(e))
            self.close()
            raise

    def setup(self, cluster: ClusterView, rng: np.random.Generator) -> None:
        """The design's ``setup()``, with the cluster as it is now."""
        self._call(lambda: self._proxy.setup(cluster, rng))

    def schedule(self, cluster: ClusterView) -> list[tuple[int, Request]]:
        """The design's decisions for ``cluster`` (requests named by id are those of the views
        it was shown; an id it was never shown comes back as a stand-in with a NaN arrival)."""
        return self._call(lambda: self._proxy.schedule(cluster))

    def close(self) -> None:
        """End the design's process (idempotent)."""
        if not self._closed:
            self._closed = True
            self._box.close()

    _closed = False

    def __enter__(self) -> SandboxedRouter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
