"""Run an agent's analysis script over its workspace, in a fresh, limited process.

A researcher agent may ask to run a short Python script (written by an LLM, so untrusted) that
reads the per-request CSV files in its workspace and prints statistics. :func:`run_analysis`
runs it in a new ``python -I`` process and returns what it printed, or why it failed, as an
:class:`AnalysisResult` the agent can act on. Script problems never raise.

Threat model — what is enforced, and by whom:

* **By the kernel** (where :func:`glia.sandbox.boundary` says it can be set up; holds whatever
  the script does, the audit hook switched off included): bubblewrap starts the process in new
  user (uid 65534, no capabilities), PID, network, IPC, UTS and mount namespaces (it ends when
  its stdin closes, as outside the boundary, emptying its scratch directory); its file system
  is the system's libraries and Python (the virtual environment included) read-only, the
  **workspace read-only** (results are evidence: a script cannot forge them), the private
  scratch directory (``TMPDIR``/``HOME``) writable, and nothing else: no ``/proc`` (so no
  parent's ``environ``), no other workspace, no home. Before the script runs the process
  installs the designs' seccomp filter (no ``execve``/``fork``/new processes, sockets,
  signals, tracing, namespaces or mounts). The deadline is kept by the process itself (a
  ``KeyboardInterrupt`` where the script is, as before), and by the parent killing bwrap a
  grace period later.
* **By the operating system, everywhere** (also without the boundary): the process starts with an
  emptied environment (no API keys or tokens; a minimal ``PATH``, one thread for
  OpenMP/BLAS/numba), in its own session; its wall-clock time is bounded (interrupted at
  ``timeout_s``, the whole process group killed a second later, or at once if the caller is
  cancelled), and so are its CPU time, address space (``RLIMIT_AS`` = ``memory_mb``), the size
  of any file it writes (``RLIMIT_FSIZE``), open descriptors, and core dumps. If the parent
  dies (even killed outright), the child notices its stdin closing, removes its scratch
  directory and exits. Output is read in bounded memory.
* **By a Python audit hook** (the friendly first layer: clear messages for the mistakes and
  naive attempts an LLM makes, *not* a security boundary): refused are sockets and name
  lookups, starting processes (``subprocess``, ``os.system``/``exec*``/``spawn*``/
  ``posix_spawn``/``fork``), signalling other processes, ``ctypes``, creating links, reading
  files outside the workspace, the scratch directory and Python's installation, and changing
  files anywhere but the scratch directory (and the workspace, without the boundary). Code set
  on escaping can disable it (through ``gc`` and the hook's closure, as
  ``tests/sandbox/test_analysis_walls.py`` does); the kernel boundary then still holds.
* **Without the boundary** (not Linux, no user namespaces, no bubblewrap) only the last two
  hold: the process runs as the caller's user, with the caller's network and file system;
  ``os.stat`` works anywhere; ``RLIMIT_AS`` is not honoured on macOS. Run agents' scripts there
  only for agents you trust.

Why one module of this size: the parent and the child of an analysis script share one
protocol, and the child's bootstrap is sent from here as source.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import math
import os
import signal
import sys
import time
from pathlib import Path
from typing import NoReturn

import anyio
import anyio.abc
import msgspec

from glia._errors import InputError
from glia._tempstore import MARKER, temp_store

from . import _boundary

__all__ = ["AnalysisResult", "run_analysis"]

SCRIPT_NAME = "analysis.py"
"""The file name tracebacks show for the script (it is never written to disk)."""
MAX_FILE_MB = 64
"""Largest file an analysis script may write (``RLIMIT_FSIZE``): a filtered CSV or a plot."""
_GRACE_S = 1.0
"""After the deadline the script is interrupted (so it reports where it was and its output is
flushed); this long later its process group is killed."""
_DRAIN_S = 2.0
"""How long the output pipes may stay open after the process ended (only a descendant that
escaped the guard could hold them)."""
_REPORT_LIMIT = 64 * 1024
"""Bytes of the child's report kept (it is a short JSON object)."""
_THREAD_VARS = (
    "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
    "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
)  # fmt: skip
"""One thread each: CPU time then tracks wall time, and BLAS pools do not eat address space."""


class AnalysisResult(msgspec.Struct, frozen=True, kw_only=True):
    """What an analysis script printed, and whether it ran to the end."""

    ok: bool
    """The script finished normally (or called ``sys.exit(0)``)."""
    output: str
    """Its stdout and stderr, interleaved, cut to ``output_kb`` with a note of what was cut."""
    error: str = ""
    """Why it failed, written for the agent; empty when ``ok``."""
    wall_s: float
    """Wall-clock seconds from starting the process to its end."""


class _Report(msgspec.Struct, frozen=True):
    """What the child's bootstrap says on its private channel (see :func:`_child_main`)."""

    status: str
    error: str = ""


class _Sink:
    """Keeps the first ``limit`` bytes of a stream and counts the rest."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.kept = bytearray()
        self.dropped = 0

    async def drain(self, stream: anyio.abc.ByteReceiveStream) -> None:
        """Read ``stream`` to its end (never stop reading: a full pipe would block the child)."""
        try:
            async for chunk in stream:
                room = max(0, self.limit - len(self.kept))
                self.kept += chunk[:room]
                self.dropped += max(0, len(chunk) - room)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass

    def text(self) -> str:
        """The kept bytes as text (invalid UTF-8 replaced), plus a note of what was cut."""
        text = self.kept.decode("utf-8", errors="replace")
        return text + f"\n... [{self.dropped} more bytes cut]" if self.dropped else text


async def run_analysis(
    script: str,
    workdir: Path,
    *,
    timeout_s: float = 30.0,
    memory_mb: int = 1024,
    output_kb: int = 32,
) -> AnalysisResult:
    """Run ``script`` with ``workdir`` as its working directory; what it printed or why it failed.

    The script may read files in ``workdir`` (write them only where the kernel boundary
    cannot be set up; its own files go to ``tempfile``'s directory) and import anything
    installed (numpy, csv, statistics, json, ...); see the module docstring for what it may
    not do. It gets
    ``timeout_s`` seconds of wall-clock time and ``memory_mb`` MB of address space (numpy's
    import alone takes ~150 MB of it). Its output is kept up to ``output_kb`` KB.

    Never raises for anything the script does; raises :class:`~glia._errors.InputError` if
    ``workdir`` is not an existing directory (and ``OSError`` if no process can be started).
    Cancelling the caller kills the process before this returns.
    """
    if not workdir.is_dir():
        raise InputError(
            f"the analysis working directory {str(workdir)!r} does not exist or is not a "
            "directory: create the workspace first"
        )
    root = workdir.resolve()
    payload = script.encode("utf-8", errors="replace")
    output = _Sink(max(0, output_kb) * 1024)
    report = _Sink(_REPORT_LIMIT)
    # A private directory outside the workspace, for TMPDIR/HOME/MPLCONFIGDIR; gone afterwards
    # (the child removes it as it ends, even when this process died first; one left all the
    # same, by a kill at the wrong moment, is reclaimed when Glia next makes a temporary store).
    with temp_store("glia-analysis-") as tmp:
        scratch = os.path.realpath(tmp.path)
        config = {
            "name": SCRIPT_NAME,
            "size": len(payload),
            "scratch": scratch,
            "readable": [str(root)],
            "writable": [str(root), scratch],
            "memory_mb": max(1, memory_mb),
            # A backstop (threads can burn CPU faster than the clock); the wall clock acts first.
            "cpu_s": max(1, math.ceil(timeout_s if timeout_s < 1e6 else 1e6)) + 2,
            "fsize": MAX_FILE_MB << 20,
        }
        boxed = _boundary.boundary() is None
        if boxed:  # the workspace is read-only there: results are evidence, not scratch paper
            config["writable"] = [scratch]
            # A mount point there, so the child cannot remove it: it keeps the store's marker,
            # and the next temporary store reclaims the empty shell if we die first.
            config["keep"] = [MARKER]
            config["seccomp"] = _boundary.seccomp_filter().hex()
            config["deadline_s"] = timeout_s  # bwrap does not pass our SIGINT on: it stops itself
        command = [sys.executable, "-I", "-B", "-c", _bootstrap(), json.dumps(config)]
        env = _environment(scratch)
        if boxed:
            command = _boxed(command, root, scratch, env)
        started = time.monotonic()
        code, timed_out = await _run_child(
            command, cwd=root, env=env, payload=payload, timeout_s=timeout_s,
            output=output, report=report, interrupt=not boxed,
        )  # fmt: skip
        wall = time.monotonic() - started
        if boxed and code is not None and code > 128:
            code = 128 - code  # bwrap reports a signal's death as 128 + signal
    ok, error = _verdict(code, timed_out, _parse(report), output, timeout_s, memory_mb)
    return AnalysisResult(ok=ok, output=output.text(), error=error, wall_s=wall)


def _boxed(command: list[str], root: Path, scratch: str, env: dict[str, str]) -> list[str]:
    """``command`` inside the kernel boundary: bwrap's new user, PID, network, IPC and mount
    namespaces (no ``/proc``, no network, no other process visible), a read-only view of the
    system's libraries and Python (the virtual environment included), the workspace read-only,
    the scratch directory writable, and nothing else of the file system."""
    bwrap = _boundary._bwrap()
    assert bwrap is not None
    _, base = _boundary._python()
    # Not --die-with-parent: its SIGKILL would leave the scratch directory behind; the child's
    # own watchdog (stdin closing) removes it and exits, as outside the boundary.
    spaces = [a for a in _boundary._namespaces() if a != "--die-with-parent"]
    args = [bwrap, *spaces, "--ro-bind", "/usr", "/usr", *_boundary._links()]
    for path in {base, os.path.realpath(sys.prefix)}:
        if not path.startswith("/usr/"):
            args += ["--ro-bind", path, path]
    args += ["--dev", "/dev", "--ro-bind", str(root), str(root), "--bind", scratch, scratch,
             "--remount-ro", "/", "--chdir", str(root)]  # fmt: skip
    for key, value in env.items():
        args += ["--setenv", key, value]
    return [*args, "--", *command]


def _environment(scratch: str) -> dict[str, str]:
    """The child's whole environment: nothing of ours (no keys), just what libraries want."""
    env = {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": scratch,
        "TMPDIR": scratch,
        "MPLCONFIGDIR": scratch,
        "MPLBACKEND": "Agg",
    }
    env.update(dict.fromkeys(_THREAD_VARS, "1"))
    return env


async def _run_child(
    command: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    payload: bytes,
    timeout_s: float,
    output: _Sink,
    report: _Sink,
    interrupt: bool = True,
) -> tuple[int | None, bool]:
    """Run the child to its end; its return code, and whether it ran out of time."""
    proc = await anyio.open_process(
        command, cwd=cwd, env=env, start_new_session=True,  # its own group, to kill it whole
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    timed_out = False
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_feed, proc.stdin, payload)
            tg.start_soon(output.drain, proc.stdout)
            tg.start_soon(report.drain, proc.stderr)
            with anyio.move_on_after(timeout_s) as deadline:
                await proc.wait()
            if deadline.cancelled_caught:
                timed_out = True
                # SIGINT first: the script stops with KeyboardInterrupt, so the agent learns
                # which line it was stuck on and keeps the output printed so far.
                if interrupt:  # (a boxed child interrupts itself: bwrap would just die of it)
                    _signal(proc.pid, signal.SIGINT, group=False)
                with anyio.move_on_after(_GRACE_S):
                    await proc.wait()
                _signal(proc.pid, signal.SIGKILL, group=True)
                await proc.wait()
            # The readers end at EOF; bound the wait in case something else holds the pipes.
            tg.cancel_scope.deadline = anyio.current_time() + _DRAIN_S
    finally:
        # Also on cancellation or error: kill the whole group and reap it before returning.
        with anyio.CancelScope(shield=True):
            _signal(proc.pid, signal.SIGKILL, group=True)
            await proc.wait()
            await proc.aclose()  # closes stdin last: the child's watchdog needs it open
    return proc.returncode, timed_out


async def _feed(stdin: anyio.abc.ByteSendStream, payload: bytes) -> None:
    """Send the script; stdin then stays open (its closing tells the child we are gone)."""
    # If the child died before reading it, its return code tells why.
    with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        await stdin.send(payload)


def _signal(pid: int, sig: signal.Signals, *, group: bool) -> None:
    """Send ``sig`` to the child (or its whole process group); quiet if it is already gone."""
    try:
        if group:
            os.killpg(pid, sig)  # start_new_session made the child its group's leader
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _parse(report: _Sink) -> _Report | None:
    """The child's report, or None if it died before writing one."""
    try:
        return msgspec.json.decode(bytes(report.kept), type=_Report)
    except msgspec.DecodeError:
        return None


def _verdict(
    code: int | None,
    timed_out: bool,
    report: _Report | None,
    output: _Sink,
    timeout_s: float,
    memory_mb: int,
) -> tuple[bool, str]:
    """Whether the script succeeded, and if not a one-paragraph explanation for the agent."""
    advice = "make the script faster or read fewer rows"
    if timed_out:
        where = f" ({report.error})" if report and report.status == "interrupted" else ""
        return False, f"timed out after {timeout_s:g} s{where}: {advice}"
    if report is not None:
        return report.status == "ok", "" if report.status == "ok" else report.error
    if code == -signal.SIGXCPU:
        return False, f"used more CPU time than allowed ({timeout_s:g} s): {advice}"
    if code is not None and code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        return False, (
            f"the analysis process was killed by {name}; native code failing to allocate memory "
            f"under the {memory_mb} MB limit is the usual cause: process the data in chunks"
        )
    # No report and no signal: the bootstrap failed, or the script called os._exit().
    tail = output.text()[-500:].strip()
    return False, (
        f"the analysis process exited with code {code} without finishing the script normally "
        "(os._exit() also loses buffered output: let the script end instead)"
        + (f": {tail}" if tail else "")
    )


@functools.cache
def _bootstrap() -> str:
    """The child's program: :func:`_child_main`'s source, then a call to it."""
    source = inspect.getsource(_child_main)
    return f"from __future__ import annotations\n{source}\n_child_main()\n"


def _child_main() -> NoReturn:  # pragma: no cover  (runs in the analysis process)
    """The analysis process: limit itself, arm the guard, run the script, report, exit.

    Sent to ``python -I -c`` as source, so it uses no module globals. ``argv[1]`` is a JSON
    configuration; the script's ``size`` bytes arrive on stdin. The outcome goes as a JSON
    ``_Report`` to the original stderr; the script's own stderr is merged into stdout.
    """
    import builtins
    import contextlib
    import errno
    import io
    import json
    import linecache
    import os
    import resource
    import signal
    import sys
    import threading
    import traceback
    from collections.abc import Sequence
    from types import TracebackType

    cfg = json.loads(sys.argv[1])
    name: str = cfg["name"]
    report = open(os.dup(2), "w", encoding="utf-8")  # noqa: SIM115  (kept until os._exit)
    os.dup2(1, 2)  # what native code writes to stderr joins the output, in order
    out = open(1, "w", encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
    sys.stdout = sys.stderr = out
    sys.stdin = io.StringIO()  # fd 0 belongs to the watchdog below
    # Our deadline interrupts the script; a SIGINT ignored by the parent would be inherited.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    def leave(code: int) -> NoReturn:
        """Remove the scratch directory (the parent may be gone, or go before it can) and exit.
        Absolute paths, bottom up: the guard checks a path as if relative to the cwd."""
        scratch = os.path.realpath(cfg["scratch"])
        with contextlib.suppress(BaseException):
            for top, dirs, files in os.walk(scratch, topdown=False):
                for entry in files:
                    if top == scratch and entry in cfg.get("keep", ()):
                        continue
                    with contextlib.suppress(OSError):
                        os.remove(os.path.join(top, entry))
                for entry in dirs:
                    path = os.path.join(top, entry)
                    with contextlib.suppress(OSError):
                        if os.path.islink(path):
                            os.remove(path)
                        else:
                            os.rmdir(path)
            os.rmdir(scratch)
        os._exit(code)  # no teardown: nothing the script left runs

    def finish(status: str, error: str = "") -> NoReturn:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a late timeout must not break reporting
        with contextlib.suppress(BaseException):  # the script may have broken its stdout
            out.flush()
        try:
            report.write(json.dumps({"status": status, "error": error[:4000]}))
            report.flush()
        finally:
            leave(0 if status == "ok" else 1)

    size = int(cfg["size"])
    data = bytearray()
    while len(data) < size:
        chunk = os.read(0, size - len(data))
        if not chunk:
            leave(3)  # the parent went away before sending the script
        data += chunk
    source = data.decode("utf-8", errors="replace")

    def watchdog() -> None:
        """Exit when stdin closes: the parent is gone (it closes stdin only after our end)."""
        try:
            os.read(0, 1)
        finally:
            leave(4)

    threading.Thread(target=watchdog, daemon=True).start()

    def limit(kind: int, soft: int, hard: int) -> None:
        top = resource.getrlimit(kind)[1]
        if top != resource.RLIM_INFINITY:
            hard = min(hard, top)
        resource.setrlimit(kind, (min(soft, hard), hard))

    # Imported before the limits, so that even a tiny memory limit fails in the script, where
    # it can be reported. ctypes' own import opens a library (an audited ctypes.dlopen):
    # importing it now lets numpy's optional `import ctypes` succeed later while any use of it
    # stays refused.
    import _posixsubprocess
    import ctypes

    memory_mb, fsize = int(cfg["memory_mb"]), int(cfg["fsize"])
    limit(resource.RLIMIT_AS, memory_mb << 20, memory_mb << 20)
    limit(resource.RLIMIT_CPU, int(cfg["cpu_s"]), int(cfg["cpu_s"]) + 1)  # SIGXCPU, then KILL
    limit(resource.RLIMIT_FSIZE, fsize, fsize)  # writes past it fail with EFBIG (SIGXFSZ ignored)
    limit(resource.RLIMIT_CORE, 0, 0)
    limit(resource.RLIMIT_NOFILE, 256, 256)
    if cfg.get("seccomp"):  # inside the kernel boundary: no processes, sockets or signals
        bpf = bytes.fromhex(cfg["seccomp"])

        class Program(ctypes.Structure):
            _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

        buf = ctypes.create_string_buffer(bpf, len(bpf))
        prog = Program(len(bpf) // 8, ctypes.cast(buf, ctypes.c_void_p))
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(38, 1, 0, 0, 0) != 0 or libc.prctl(22, 2, ctypes.byref(prog), 0, 0) != 0:
            finish("error", "the analysis sandbox could not install its seccomp filter")
        del buf, prog, libc
    if cfg.get("deadline_s"):
        import _thread

        def deadline() -> None:
            _thread.interrupt_main(signal.SIGINT)  # a KeyboardInterrupt where the script is

        timer = threading.Timer(float(cfg["deadline_s"]), deadline)
        timer.daemon = True
        timer.start()

    try:
        code = compile(source, name, "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as e:  # ValueError: NUL bytes in the source (3.11)
        text = "".join(traceback.format_exception_only(type(e), e)).rstrip()
        finish("syntax", f"the script did not run: syntax error\n{text}")
    except MemoryError:
        finish("memory", f"exceeded {memory_mb} MB of memory while compiling the script")
    except BaseException as e:  # RecursionError for absurdly nested code
        finish("syntax", f"the script could not be compiled: {type(e).__name__}: {e}")
    linecache.cache[name] = (len(source), None, source.splitlines(True), name)

    class Forbidden(PermissionError):
        """An operation analysis scripts may not do (a PermissionError, so libraries that
        probe for optional files or caches degrade as they would without permission)."""

    Forbidden.__qualname__ = "Forbidden"  # as tracebacks name it

    def no_fork_exec(*args: object) -> NoReturn:
        refuse("starting processes is not allowed in analysis scripts (fork_exec)")

    # The one way to start a process that raises no audit event: subprocess's own primitive
    # (subprocess.Popen itself is audited). `import subprocess` must keep working: matplotlib
    # and others import it without starting anything.
    _posixsubprocess.fork_exec = no_fork_exec

    writable = (*(os.path.realpath(p) for p in cfg["writable"]), "/dev/null")
    python = (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)
    readable = (*writable, *(os.path.realpath(p) for p in (*cfg["readable"], *python)))
    refused: list[str] = []
    process = ("os.system", "os.exec", "os.spawn", "os.posix_spawn", "os.fork",
               "subprocess.Popen", "pty.spawn")  # fmt: skip
    signals = ("os.kill", "os.killpg", "signal.pthread_kill")
    changes = {"os.remove": 1, "os.rmdir": 1, "os.mkdir": 1, "os.chmod": 1, "os.chown": 1,
               "os.utime": 1, "os.truncate": 1, "os.rename": 2, "os.chflags": 1,
               "os.setxattr": 1, "os.removexattr": 1}  # fmt: skip
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC

    def refuse(message: str) -> NoReturn:
        refused.append(message)
        raise Forbidden(message)

    def check(path: object, roots: Sequence[str], doing: str, fd_ok: bool = True) -> None:
        """Refuse ``doing`` on ``path`` unless it resolves inside one of ``roots``."""
        if isinstance(path, int):  # a descriptor: one we inherited or an audited open made
            if not fd_ok:
                refuse(f"{doing} a file by descriptor is not allowed in analysis scripts")
            return
        if path is None:
            path = "."
        where = os.path.realpath(os.path.join(os.getcwd(), os.fsdecode(path)))  # type: ignore[arg-type]
        if not any(where == r or where.startswith(r.rstrip("/") + "/") for r in roots):
            scope = "write only inside" if roots is writable else "read only files in"
            refuse(
                f"{doing} {where!r} is not allowed: analysis scripts may {scope} their workspace"
            )

    def hook(event: str, args: tuple[object, ...]) -> None:
        if event == "open":
            path, mode, flags = args
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and bool(flags & write_flags)
            )
            check(path, writable if writing else readable, "writing" if writing else "reading")
        elif event.startswith("socket."):
            refuse(f"network access is not allowed in analysis scripts ({event})")
        elif event.startswith(process):
            refuse(f"starting processes is not allowed in analysis scripts ({event})")
        elif event in signals:
            refuse(f"sending signals is not allowed in analysis scripts ({event})")
        elif event.startswith("ctypes."):
            refuse(f"native code (ctypes) is not allowed in analysis scripts ({event})")
        elif event in ("os.link", "os.symlink"):
            refuse(f"creating links is not allowed in analysis scripts ({event})")
        elif event in changes:
            for path in args[: changes[event]]:
                check(path, writable, f"{event}() on", fd_ok=event == "os.truncate")
        elif event in ("os.listdir", "os.scandir"):
            check(args[0], readable, "listing")
        elif event == "os.chdir":
            check(args[0], writable, "changing directory to")

    def lines(tb: TracebackType | None) -> list[str]:
        """The script's own frames in a traceback, innermost last."""
        frames = [f for f in traceback.extract_tb(tb) if f.filename == name]
        return [f"line {f.lineno}, in {f.name}: {(f.line or '').strip()}" for f in frames]

    def at(tb: TracebackType | None) -> str:
        found = lines(tb)
        return f" at {found[-1]}" if found else ""

    namespace = {"__name__": "__main__", "__file__": name, "__builtins__": builtins}
    sys.addaudithook(hook)  # from here on, for the rest of the process's life
    try:
        exec(code, namespace)
    except SystemExit as e:
        if e.code is None or e.code == 0:
            finish("ok")
        finish("exit", f"the script called sys.exit({e.code!r})")
    except KeyboardInterrupt as e:  # our SIGINT at the deadline
        finish("interrupted", f"interrupted{at(e.__traceback__)}")
    except BaseException as e:
        shown = traceback.TracebackException(type(e), e, e.__traceback__)
        # Python would print this, less the frames of this bootstrap and of the audit hook.
        shown.stack = traceback.StackSummary.from_list(
            [f for f in shown.stack if f.filename != "<string>"]
        )
        out.write("".join(shown.format()))
        what = "".join(traceback.format_exception_only(type(e), e)).strip()
        cause: BaseException | None = e
        for _ in range(8):  # a refusal a library wrapped (urllib's URLError) is still one
            if cause is None or isinstance(cause, Forbidden):
                break
            cause = cause.__cause__ or cause.__context__
        if isinstance(cause, Forbidden):
            finish("forbidden", f"forbidden: {cause}{at(e.__traceback__)}")
        if isinstance(e, MemoryError):
            finish("memory", (
                f"exceeded {memory_mb} MB of memory{at(e.__traceback__)} ({what}): process the "
                "data in chunks, read fewer rows or columns, or use smaller dtypes"
            ))  # fmt: skip
        parts = [f"the script raised {what}", *(f"  {s}" for s in lines(e.__traceback__)[-3:])]
        if isinstance(e, OSError) and e.errno == errno.EFBIG:
            parts.append(f"(analysis scripts may write files of at most {fsize >> 20} MB)")
        if refused:  # a refusal the script (or a library) turned into another exception
            parts.append(f"(the sandbox refused: {refused[-1]})")
        finish("exception", "\n".join(parts))
    finish("ok")
