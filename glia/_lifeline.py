"""Lifelines: the processes Glia starts through :mod:`multiprocessing` die with it.

The root Glia process (the one that was run) holds, for its whole life, the write end of a
pipe it never writes to. Every child it starts through multiprocessing — a worker's pool
processes (forked by the fork server, so not even its children), sandbox processes — gets the
read end in a :class:`Lifeline` and calls :func:`adopt` first: a daemon thread blocks reading
the pipe and, at end of file, ends the process. The kernel closes the write end when the root
dies, however it dies (SIGKILL, the out-of-memory killer, a crash), so nothing is left running
(the fork server exits once its children have). There is no race at start: a child started
after the root died reads end of file at once. A child whose parent is the process that started
it (a forked sandbox) also gets a parent-death signal, so it dies with an intermediate parent.

Multiprocessing's temporary folder of the root (``pymp-*``: the fork server's socket) is locked
as a :mod:`glia._tempstore` store and handed to a :mod:`glia._reaper` (without a command), which
removes it when the root is gone; the next Glia reclaims one whose reaper was killed too.

Forked copies of the root close their copy of the write end (an at-fork handler), so the root
alone holds it; programs it runs (``exec``) never inherit it. Processes that are not Python
children (the nats-server) are tied to Glia by :mod:`glia._reaper` instead.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection

from glia import _reaper
from glia._tempstore import lock_dir, reclaim

__all__ = ["ORPHANED", "Lifeline", "adopt", "end_pool", "lifeline", "watchers"]

ORPHANED = 70
"""Exit status of a child that ended because the root Glia process died."""
_END_GRACE_S = 2.0
"""How long :func:`end_pool` gives a pool's processes after SIGTERM before SIGKILL."""
_STACK = 256 * 1024
"""Stack of the watcher thread (it only blocks in one read): small, inside memory limits."""


@dataclass(frozen=True)
class Lifeline:
    """What a child needs to die with the root; it crosses multiprocessing's pickling (the
    connection's descriptor is passed along by the fork server)."""

    conn: Connection
    parent: int
    """The process starting the child, if from its main thread (else 0): a parent-death signal
    fires when the parent *thread* ends, so a child forked from a passing thread (a worker
    thread of an event loop) must rely on the pipe alone."""


_guard = threading.Lock()
_read: Connection | None = None
_write: int | None = None
_mp_claimed = False
_mp_keeper: subprocess.Popen[bytes] | None = None
_watchers = 0


def _forget_write_end() -> None:
    global _write
    if _write is not None:
        with contextlib.suppress(OSError):
            os.close(_write)
        _write = None


def lifeline(start_method: str) -> Lifeline:
    """The lifeline to give a child that this thread starts with ``start_method`` now.

    In the root the pipe is made on first use; for a method that starts a fork server or a
    fresh interpreter, multiprocessing's temporary folder is locked then too.
    """
    global _read, _write
    with _guard:
        if _read is None:
            r, w = os.pipe()  # neither end is inherited by programs started with exec
            _read, _write = Connection(r, writable=False), w
            os.register_at_fork(after_in_child=_forget_write_end)
        if start_method != "fork" and _write is not None:
            _claim_multiprocessing_dir()
        main = threading.current_thread() is threading.main_thread()
        return Lifeline(_read, os.getpid() if main else 0)


def _claim_multiprocessing_dir() -> None:
    global _mp_claimed, _mp_keeper
    if _mp_claimed:
        return
    _mp_claimed = True
    from multiprocessing import util

    reclaim()  # left by Glia processes killed together with their reapers
    path = util.get_temp_dir()
    try:
        lock = lock_dir(path)  # held until this process ends, and by the reaper
        _mp_keeper = subprocess.Popen(
            [sys.executable, "-I", "-S", _reaper.__file__, "--remove", path, "--"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, pass_fds=(lock,),
        )  # fmt: skip
    except OSError:
        return  # multiprocessing removes it at a normal exit; nobody after a hard kill
    # At a normal exit, after multiprocessing removed the folder (its finalizer: priority -100).
    util.Finalize(None, _release_keeper, exitpriority=-200)


def _release_keeper() -> None:
    """At a normal exit: the folder is gone; let the reaper go too."""
    if _mp_keeper is not None and _mp_keeper.stdin is not None:
        with contextlib.suppress(OSError):
            _mp_keeper.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            _mp_keeper.wait(5)


def adopt(line: Lifeline) -> None:
    """In a child, first thing: die with the root (and with a parent that started it directly).

    Used as a process pool's ``initializer`` and at the start of sandbox processes.
    """
    global _read, _watchers
    if line.parent and os.getppid() == line.parent:
        _reaper.set_parent_death_signal(signal.SIGKILL)
        if os.getppid() != line.parent:  # the parent died before the signal was armed
            os._exit(ORPHANED)
    _read = line.conn
    size = threading.stack_size(_STACK)
    try:
        threading.Thread(
            target=_watch, args=(line.conn.fileno(),), name="glia-lifeline", daemon=True
        ).start()
    finally:
        threading.stack_size(size)
    _watchers = 1


def watchers() -> int:
    """How many threads :func:`adopt` started in this process (0 or 1): they hold no locks,
    so forking with them running is safe."""
    return _watchers


def _watch(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.read(fd, 1)  # returns only at end of file: nothing is ever written to the pipe
    os._exit(ORPHANED)


def end_pool(pool: ProcessPoolExecutor) -> None:
    """Shut ``pool`` down now (blocking, for at most a few seconds): work not started is
    cancelled and the processes are ended (SIGTERM, then SIGKILL) instead of being waited for.

    For a pool whose results nobody will read any more (its user was cancelled or failed):
    ``shutdown(wait=True)`` would wait for every running task to finish, however long it
    takes (a design can run for minutes). What a process started dies with it (a sandbox's
    boundary dies with its parent).
    """
    # Private, but the only handle on the processes before Python 3.14's kill_workers(); taken
    # before shutdown(), which forgets them.
    processes = list((getattr(pool, "_processes", None) or {}).values())
    manager: threading.Thread | None = getattr(pool, "_executor_manager_thread", None)
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        with contextlib.suppress(Exception):  # already gone
            proc.terminate()
    deadline = time.monotonic() + _END_GRACE_S
    for proc in processes:
        with contextlib.suppress(Exception):
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join(1.0)
    if manager is not None:  # it notices the processes gone, fails their futures and ends
        manager.join(_END_GRACE_S)
