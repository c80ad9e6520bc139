"""The sandbox process: seal itself, load the design, answer the simulator's calls.

Started as ``python -I -S -B -c`` inside the boundary (see :mod:`glia.sandbox._boundary`)
with one inherited descriptor, its channel to the trusted simulator. Before any design code
runs it lowers its resource limits, installs its seccomp filter (when asked to) and empties
its environment; then it loads the design under the friendly rules (:mod:`.rules`, an import
allow-list, an audit hook that names refused operations) and serves calls until told to finish
or its channel closes.

Failures the design causes are reported as :class:`~.protocol.Failed` with a kind and a
message written for the design's author; the trusted side caps and checks them again.
"""

from __future__ import annotations

import ast
import builtins
import io
import json
import linecache
import operator
import os
import resource
import select
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import ModuleType
from typing import Any, NoReturn

import msgspec

from . import protocol as p
from .policies import Autoscaler, Policy, ReplicaScheduler, Router
from .rules import violations
from .views import ClusterView, LoadView, ReplicaView, Request, RunningRequest

__all__ = ["ALLOWED_IMPORTS", "main"]

DESIGN_FILE = "design.py"
ALLOWED_IMPORTS = frozenset(
    {
        "math", "cmath", "random", "statistics", "itertools", "functools", "operator",
        "collections", "heapq", "bisect", "dataclasses", "enum", "typing", "abc", "numbers",
        "decimal", "fractions", "copy", "string", "re", "time", "numpy", "glia", "__future__",
    }
)  # fmt: skip
"""Top-level modules a design may import."""
DESIGN_SIDE = ("glia", "glia.policies", "glia.views")
"""The Glia modules a design can import: it runs apart from the simulator."""
BASES: dict[str, type[Policy]] = {
    "routing": Router, "scheduling": ReplicaScheduler, "autoscaling": Autoscaler,
}  # fmt: skip
ROLES = {"routing": "router", "scheduling": "scheduler", "autoscaling": "autoscaler"}
_INT_CAP = 1 << 31  # replica counts beyond this are clamped (the simulator clamps to its pool)


class Forbidden(Exception):
    """The design attempted an operation the sandbox refuses."""


class ForbiddenImport(Forbidden):
    """The design imported a module outside the allow-list."""


class CpuExceeded(BaseException):
    """Raised at the soft CPU limit (SIGXCPU), so the design's line can be reported."""


class _Invalid(Exception):
    """A decision of the wrong shape (the trusted side checks the values again)."""


def _refuse_import(name: str) -> ForbiddenImport:
    allowed = ", ".join(sorted(m for m in ALLOWED_IMPORTS if m not in ("__future__", "glia")))
    if name.partition(".")[0] == "glia":
        return ForbiddenImport(
            f"import of {name!r} is not allowed: a design runs apart from the simulator and "
            "may import glia.policies (Router, ReplicaScheduler, Autoscaler) and glia.views"
        )
    return ForbiddenImport(f"import of {name!r} is not allowed: a design may import {allowed}")


def _design_builtins() -> dict[str, Any]:
    real: Callable[..., Any] = builtins.__import__

    def guarded_import(
        name: str,
        globals: Mapping[str, object] | None = None,
        locals: Mapping[str, object] | None = None,
        fromlist: Sequence[str] = (),
        level: int = 0,
    ) -> Any:
        # numpy's own lazy imports of its private modules come through here too (they run
        # with the calling design's builtins): only the top-level module is checked.
        top = name.partition(".")[0]
        if level != 0 or top not in ALLOWED_IMPORTS:
            raise _refuse_import(name if level == 0 else "." * level + name)
        if top == "glia" and name not in DESIGN_SIDE:
            raise _refuse_import(name)
        if top == "glia":
            for sub in fromlist:
                if f"glia.{sub}" not in DESIGN_SIDE and name == "glia":
                    raise _refuse_import(f"glia.{sub}")
        return real(name, globals, locals, fromlist, level)

    table = dict(vars(builtins))
    table["__import__"] = guarded_import
    return table


_PROCESS = (
    "os.system", "os.fork", "os.forkpty", "os.posix_spawn", "os.exec", "os.spawn",
    "subprocess.Popen", "pty.spawn", "os.kill", "os.killpg", "signal.pthread_kill",
)  # fmt: skip
_WRITES = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
_READABLE = tuple(os.path.normpath(p) + "/" for p in {sys.prefix, sys.base_prefix, sys.path[0]})
"""Where imports read (the Python installation, the design-side libraries)."""


def _audit(event: str, args: tuple[object, ...]) -> None:
    """Name the operations the boundary refuses anyway, so the design's author reads why."""
    if event.startswith(_PROCESS):
        raise Forbidden(f"{event} is not allowed: a design may not start or signal processes")
    if event.startswith("socket."):
        raise Forbidden(f"{event} is not allowed: a design has no network access")
    if event.startswith("ctypes."):
        raise Forbidden(f"{event} is not allowed: a design may not load native code")
    if event == "open":
        path, mode, flags = args
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and bool(flags & _WRITES)
        )
        inside = isinstance(path, str) and os.path.normpath(path).startswith(_READABLE)
        if writing or not inside:
            raise Forbidden(f"open({path!r}) is not allowed: a design has no file access")


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


class _Channel:
    """Frames on the inherited descriptor."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        # Non-blocking, so that a wait can spin briefly before it sleeps (see _wait).
        os.set_blocking(fd, False)
        self.readable, self.writable = select.poll(), select.poll()
        self.readable.register(fd, select.POLLIN)
        self.writable.register(fd, select.POLLOUT)
        self.decoder = msgspec.msgpack.Decoder(p.ToSandbox)
        self.encoder = msgspec.msgpack.Encoder()
        self.out = bytearray()  # frames not written yet: written together before a wait
        self.buf = bytearray()  # bytes read, from ``pos`` on not used yet
        self.pos = 0

    def _read(self, n: int) -> memoryview:
        while len(self.buf) - self.pos < n:
            self.flush()  # about to wait: the simulator may be waiting for these first
            if self.pos:
                del self.buf[: self.pos]
                self.pos = 0
            chunk = self._wait(max(n - len(self.buf), 1 << 16))
            if not chunk:
                os._exit(0)  # the simulator is gone: nothing left to do
            self.buf += chunk
        start = self.pos
        self.pos += n
        return memoryview(self.buf)[start : self.pos]

    def _wait(self, size: int) -> bytes:
        """Up to ``size`` bytes, once some arrive. The simulator's next call usually comes
        within microseconds, so this spins for up to :data:`p.SPIN_S` before it sleeps:
        a sleeping reader costs both processes a wake-up per round trip."""
        fd, spin_until = self.fd, time.perf_counter() + p.SPIN_S
        while True:
            try:
                return os.read(fd, size)
            except BlockingIOError:
                if time.perf_counter() > spin_until:
                    self.readable.poll()
                    spin_until = 0.0
                else:
                    os.sched_yield()  # the simulator may be waiting for this core

    def recv(self) -> p.ToSandbox:
        with self._read(4) as head:
            size = int.from_bytes(head, "big")
        with self._read(size) as body:
            return self.decoder.decode(body)

    def send(self, msg: p.FromSandbox) -> None:
        body = self.encoder.encode(msg)
        self.out += len(body).to_bytes(4, "big")
        self.out += body

    def flush(self) -> None:
        view = memoryview(self.out)
        while view:
            try:
                view = view[os.write(self.fd, view) :]
            except BlockingIOError:  # the simulator has not read what it was sent yet
                self.writable.poll()
        view.release()
        self.out.clear()


def _trimmed_traceback(e: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == DESIGN_FILE]
    if not frames:
        return ""
    lines = [f"  {DESIGN_FILE}:{f.lineno} in {f.name}: {(f.line or '').strip()}" for f in frames]
    return "\n".join(["Traceback (the design's lines):", *lines, f"{type(e).__name__}: {e}"])


def _failed(e: BaseException, who: str, when: str = "") -> p.Failed:
    """What the design raised, as a failure: ``who`` raised it (e.g. "router 'X'"), ``when``
    says in which call (e.g. " at t=1.000s")."""
    tb = _trimmed_traceback(e)
    if isinstance(e, ForbiddenImport):
        return p.Failed(kind="import", message=str(e), traceback=tb)
    if isinstance(e, Forbidden):
        return p.Failed(kind="forbidden", message=str(e), traceback=tb)
    if isinstance(e, OSError) and e.errno in (1, 13, 30, 38):  # EPERM EACCES EROFS ENOSYS
        return p.Failed(
            kind="forbidden",
            message=f"{who} tried an operation the sandbox refuses{when} ({type(e).__name__}: "
            f"{e}): a design has no files, network, processes or signals",
            traceback=tb,
        )
    if isinstance(e, MemoryError):
        return p.Failed(kind="memory", message=f"{who} ran out of memory{when} (limit reached)",
                        traceback=tb)  # fmt: skip
    if isinstance(e, CpuExceeded):
        return p.Failed(kind="cpu", message=f"{who} used up its CPU time{when}: look for an "
                        "endless loop, or make each call cheaper", traceback=tb)  # fmt: skip
    return p.Failed(kind="exception", message=f"{who} raised {type(e).__name__}{when}: {e}",
                    traceback=tb)  # fmt: skip


def _load(source: str, base: type[Policy]) -> type[Policy] | p.Failed:
    """Compile and execute a design's source under the rules; its one subclass of ``base``."""
    try:
        tree = ast.parse(source, DESIGN_FILE)
    except SyntaxError as e:
        return p.Failed(
            kind="syntax", message=f"{DESIGN_FILE}:{e.lineno}: {e.msg}",
            traceback=f"  {DESIGN_FILE}:{e.lineno}: {(e.text or '').rstrip()}",
        )  # fmt: skip
    except (ValueError, RecursionError, MemoryError) as e:
        return p.Failed(kind="syntax", message=f"{DESIGN_FILE} cannot be parsed: {e}")
    broken = violations(tree)
    if broken:
        return p.Failed(kind="forbidden", message="; ".join(broken))
    linecache.cache[DESIGN_FILE] = (len(source), None, source.splitlines(True), DESIGN_FILE)
    module = ModuleType("design")
    module.__dict__.update(__file__=DESIGN_FILE, __builtins__=_design_builtins())
    sys.modules["design"] = module
    try:
        exec(compile(tree, DESIGN_FILE, "exec"), module.__dict__)
    except BaseException as e:
        return _failed(e, "the design", " while loading")
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
        return p.Failed(
            kind="exception",
            message=f"a design must define exactly one subclass of glia.policies."
            f"{base.__name__} (found {names}){hint}",
        )
    return found[0]


class _LazyRng:
    """The policy's seeded generator, made (importing numpy) on first use."""

    def __init__(self, state: str) -> None:
        self._state = state
        self._rng: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._rng is None:
            import numpy as np

            state = json.loads(self._state)
            bits = getattr(np.random, state["bit_generator"])()
            bits.state = state
            self._rng = np.random.Generator(bits)
        return getattr(self._rng, name)


def _index(x: object) -> int:
    if isinstance(x, bool | float):
        raise TypeError
    return operator.index(x)  # type: ignore[arg-type]


class _Server:
    """Holds the design and the views it sees; turns calls into decisions."""

    def __init__(self, channel: _Channel, design: Policy, role: str) -> None:
        self.ch = channel
        self.design = design
        self.role = role
        named = design.name
        self.name = named if isinstance(named, str) and named else type(design).__name__
        self.queue: dict[int, Request] = {}
        self.known: dict[int, Request] = {}  # every request seen, by id
        self.replicas: dict[int, ReplicaView] = {}
        self.now = 0.0

    def _fetch_running(self, rid: int) -> Callable[[], tuple[RunningRequest, ...]]:
        def fetch() -> tuple[RunningRequest, ...]:
            self.ch.send(p.Fetch(what="running", replica=rid))
            answer = self.ch.recv()
            assert isinstance(answer, p.Answer)
            return tuple(
                RunningRequest(
                    request=r.request,
                    num_processed_tokens=r.num_processed_tokens,
                    num_generated_tokens=r.num_generated_tokens,
                    num_allocated_blocks=r.num_allocated_blocks,
                    in_prefill=r.in_prefill,
                    num_restarts=r.num_restarts,
                )
                for r in answer.running
            )

        return fetch

    def _fetch_cached(self, rid: int) -> Callable[[Request], int]:
        def fetch(request: Request) -> int:
            if not isinstance(request, Request) or request.prefix_id < 0:
                return 0
            self.ch.send(p.Fetch(what="cached", replica=rid, request=request.id))
            answer = self.ch.recv()
            assert isinstance(answer, p.Answer)
            return answer.cached

        return fetch

    def _fetch_blocks(self, rid: int) -> Callable[[], tuple[int, int]]:
        def fetch() -> tuple[int, int]:
            self.ch.send(p.Fetch(what="blocks", replica=rid))
            answer = self.ch.recv()
            assert isinstance(answer, p.Answer)
            return answer.blocks

        return fetch

    def introduce(self, infos: list[p.ReplicaInfo]) -> None:
        for info in infos:
            self.replicas[info.id] = ReplicaView(
                info.id, info.gpu, info.model, info.num_blocks, info.block_size,
                info.watermark_blocks, self._fetch_running(info.id), self._fetch_cached(info.id),
                self._fetch_blocks(info.id),
            )  # fmt: skip

    def setup(self, msg: p.Setup) -> p.Ready:
        self.introduce(msg.replicas)
        view = ClusterView(0.0, "scale" if self.role == "autoscaler" else "arrival", (),
                           tuple(self.replicas.values()))  # fmt: skip
        self.design.setup(view, _LazyRng(msg.rng))
        d = self.design
        ready = p.Ready(admitted=type(d).admitted is not ReplicaScheduler.admitted
                        if isinstance(d, ReplicaScheduler) else False)  # fmt: skip
        if isinstance(d, ReplicaScheduler):
            budget = d.token_budget
            if budget is not None and (type(budget) is not int or not 1 <= budget < _INT_CAP):
                raise _Invalid(
                    f"scheduler {self.name!r} has token_budget = {budget!r}: give a positive "
                    "int (tokens per iteration) or None (the replica's chunk size)"
                )
            ready = msgspec.structs.replace(ready, token_budget=budget,
                                            skip_blocked=bool(d.skip_blocked))  # fmt: skip
        return ready

    def interval(self) -> float:
        """An autoscaler's ``interval_s``, checked."""
        interval = getattr(self.design, "interval_s", 15.0)
        if (
            not isinstance(interval, int | float)
            or isinstance(interval, bool)
            or not (1.0 <= interval < float("inf"))
        ):
            raise _Invalid(
                f"autoscaler {self.name!r} has interval_s = {interval!r}: give the seconds "
                "between its calls, at least 1.0"
            )
        return float(interval)

    def _views(self, msg: p.Call) -> tuple[ReplicaView, ...]:
        self.introduce(msg.introduced)
        if msg.full:
            self.queue = {r.id: r for r in msg.arrived}
        else:
            for r in msg.arrived:
                self.queue[r.id] = r
        for r in msg.arrived:
            self.known[r.id] = r
        for r in msg.known:
            self.known[r.id] = r
        out = []
        for s in msg.replicas:
            v = self.replicas[s.id]
            v.num_running = s.num_running
            v._update(s.num_allocated_blocks, s.prefix_cache_blocks)
            v.metrics_age_s, v._outstanding = s.metrics_age_s, s.num_outstanding
            if s.queue is not None:
                v.queue = tuple(self.known[i] for i in s.queue)
            out.append(v)
        return tuple(out)

    def call(self, msg: p.Call) -> p.FromSandbox:
        self.now = msg.now
        views = self._views(msg)
        at = f"at t={msg.now:.3f}s"
        for notice in msg.admitted:
            assert isinstance(self.design, ReplicaScheduler)
            self.design.admitted(self.replicas[notice[0]], [self.known[i] for i in notice[1:]])
        cluster = ClusterView(msg.now, msg.trigger, tuple(self.queue.values()), views)  # type: ignore[arg-type]
        if msg.method == "schedule":
            assert isinstance(self.design, Router)
            return self._routed(self.design.schedule(cluster), at)
        if msg.method == "scale":
            assert isinstance(self.design, Autoscaler) and msg.load is not None
            lv = LoadView(cluster, **msgspec.structs.asdict(msg.load))
            want = self.design.scale(lv)
            try:
                count = _index(want)
            except TypeError:
                raise _Invalid(
                    f"autoscaler {self.name!r} returned {want!r} {at}: scale() must return the "
                    "number of replicas wanted, an int"
                ) from None
            return p.Scaled(count=max(-_INT_CAP, min(count, _INT_CAP)))
        assert isinstance(self.design, ReplicaScheduler)
        replica = self.replicas[msg.replica]
        if msg.method == "order":
            chosen = self.design.order(replica, msg.now)
            ids = []
            for q in chosen if chosen is not None else ():
                if not isinstance(q, Request):
                    raise _Invalid(
                        f"scheduler {self.name!r} returned {q!r} from order() on replica "
                        f"{msg.replica} {at}: return requests of replica.queue, each once"
                    )
                ids.append(q.id)
            return p.Ordered(ids=ids)
        victim = self.design.victim(replica, msg.now)
        if not isinstance(victim, Request):
            raise _Invalid(
                f"scheduler {self.name!r} chose {victim!r} to preempt on replica {msg.replica} "
                f"{at}: choose one of the replica's running requests"
            )
        return p.Victim(id=victim.id)

    def _routed(self, decisions: Iterable[object] | None, at: str) -> p.Routed:
        pairs = []
        for pair in list(decisions) if decisions is not None else []:
            rid: object
            req: object
            try:
                rid, req = pair  # type: ignore[misc]
            except (TypeError, ValueError):
                raise _Invalid(
                    f"router {self.name!r} returned {pair!r} {at}: schedule() must return "
                    "(replica index, request) pairs"
                ) from None
            if not isinstance(req, Request):
                raise _Invalid(
                    f"router {self.name!r} returned {req!r} as a request {at}: route the "
                    "Request objects from cluster.queue"
                )
            try:
                index = _index(rid)
            except TypeError:
                raise _Invalid(
                    f"router {self.name!r} routed request {req.id} to {rid!r} {at}: a replica "
                    "is an int index"
                ) from None
            pairs.append((max(-_INT_CAP, min(index, _INT_CAP)), req.id))
        for _, i in pairs:
            self.queue.pop(i, None)
        return p.Routed(pairs=pairs)


def _limit(kind: int, value: int, grace: int = 0) -> None:
    hard = resource.getrlimit(kind)[1]
    top = value + grace if hard == resource.RLIM_INFINITY else min(value + grace, hard)
    resource.setrlimit(kind, (min(value, top), top))


def _seal(bpf: bytes) -> None:
    """Install the seccomp filter the trusted side compiled (see
    :func:`glia.sandbox._boundary.seccomp_filter`): from here on this process and its threads
    cannot start processes or programs, trace, open sockets or send signals."""
    import ctypes

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    code = ctypes.create_string_buffer(bpf, len(bpf))
    prog = Program(len(bpf) // 8, ctypes.cast(code, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(38, 1, 0, 0, 0) != 0 or libc.prctl(22, 2, ctypes.byref(prog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "the seccomp filter could not be installed")


def _on_xcpu(signum: int, frame: object) -> NoReturn:
    raise CpuExceeded("the CPU time limit was reached")


def main(fd: int, config: str) -> NoReturn:
    """Serve one design on channel ``fd``; ``config`` is JSON: ``cpu_s``, ``memory_mb`` and
    ``seccomp`` (the filter's BPF program in hex, or empty: none)."""
    cfg = json.loads(config)
    os.environ.clear()
    devnull = os.open(os.devnull, os.O_RDWR)
    for std in (0, 1, 2):  # native code's output goes nowhere; Python's is captured
        os.dup2(devnull, std)
    os.close(devnull)
    signal.signal(signal.SIGXCPU, _on_xcpu)
    # SIGXCPU at the soft limit, a second of grace before the hard limit's SIGKILL.
    _limit(resource.RLIMIT_CPU, max(1, int(cfg["cpu_s"])), grace=1)
    _limit(resource.RLIMIT_AS, int(cfg["memory_mb"]) << 20)
    _limit(resource.RLIMIT_FSIZE, 0)
    _limit(resource.RLIMIT_CORE, 0)
    _limit(resource.RLIMIT_NOFILE, 64)
    if cfg["seccomp"]:
        _seal(bytes.fromhex(cfg["seccomp"]))
    _limit(resource.RLIMIT_NPROC, 0)  # no new process or thread either
    ch = _Channel(fd)
    start = ch.recv()
    assert isinstance(start, p.Start)
    out = _Capture(min(start.output_kb, 8) * 1024)
    sys.stdout = sys.stderr = out
    sys.addaudithook(_audit)
    role = ROLES[start.task]
    loaded = _load(start.source, BASES[start.task])
    if isinstance(loaded, p.Failed):
        _finish(ch, msgspec.structs.replace(loaded, output=out.text()))
    what = f"the {role}"
    server: _Server | None = None
    try:
        server = _Server(ch, loaded(), role)
        what = f"{role} {server.name!r}"
        ch.send(p.Loaded(name=server.name, interval_s=server.interval()))
        if start.check_only:
            _finish(ch, None)
        msg = ch.recv()
        assert isinstance(msg, p.Setup)
        ch.send(server.setup(msg))
        while True:
            msg = ch.recv()
            if isinstance(msg, p.Finish):
                _finish(ch, None)
            assert isinstance(msg, p.Call)
            try:
                reply = server.call(msg)
            except _Invalid:
                raise
            except BaseException as e:
                where = f" in {msg.method}() on replica {msg.replica}" if msg.replica >= 0 else ""
                failure = _failed(e, what, f"{where} at t={msg.now:.3f}s")
                _finish(ch, msgspec.structs.replace(failure, output=out.text()))
            ch.send(reply)
    except _Invalid as e:
        _finish(ch, p.Failed(kind="invalid-decision", message=str(e), output=out.text()))
    except BaseException as e:  # in __init__() or setup()
        failure = _failed(e, what, " in setup()" if server is not None else " in __init__()")
        _finish(ch, msgspec.structs.replace(failure, output=out.text()))


def _finish(ch: _Channel, failure: p.Failed | None) -> NoReturn:
    if failure is not None:  # cut to a few KB (the trusted side cuts again)
        ch.send(msgspec.structs.replace(
            failure, message=failure.message[:4000], traceback=failure.traceback[:8000],
            output=failure.output[:9000],
        ))  # fmt: skip
    ch.flush()
    os._exit(0)  # no teardown: nothing the design registered runs
