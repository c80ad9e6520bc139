"""A tiny launcher that ties one child process to the life of the Glia process that started it.

Run as a script (standard library only, so ``python -I -S`` starts it in milliseconds)::

    python -I -S _reaper.py [--remove DIR] [--pid-file FILE] -- [COMMAND [ARG ...]]

Glia starts it with a pipe as its stdin and keeps the pipe's write end. The reaper starts
COMMAND with a parent-death signal (SIGKILL, set in the child before it runs COMMAND and checked
against the reaper's pid afterwards, so no window is left in which the reaper could die
unnoticed), writes the child's pid to FILE, and waits. When its stdin closes — Glia stopping it,
or Glia dying however it dies: SIGKILL, the out-of-memory killer, a crash — or when it gets
SIGTERM, it stops the child (SIGTERM, then SIGKILL after a grace period), removes DIR and exits
with the child's exit status. If the child exits first, the reaper exits with its status at once
and leaves DIR alone (Glia, still running, reads the log in it and removes it).

Without COMMAND it only removes DIR when its stdin closes (for folders that Glia's own
children cannot remove). SIGINT is ignored here (a Ctrl-C in a terminal reaches the child and
Glia directly; Glia then closes the pipe). Any descriptor handed to it (a lock on DIR) is held
until it exits.

The parent-death signal is Linux's ``PR_SET_PDEATHSIG``; elsewhere the child outlives a reaper
that is itself killed with SIGKILL (a reaper whose stdin closes still stops it), and what it
leaves in DIR is reclaimed by the next Glia that starts (see :mod:`glia._tempstore`).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence

__all__ = ["GRACE_S", "main", "set_parent_death_signal"]

GRACE_S = 10.0
"""How long the child has to stop after SIGTERM before it is killed."""
_PR_SET_PDEATHSIG = 1


def set_parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    """Have the kernel send ``sig`` to this process when its parent *thread* exits.

    Linux only (``prctl(PR_SET_PDEATHSIG)``); returns False where it is unavailable. The caller
    must compare ``os.getppid()`` with the parent it expects afterwards: a parent that died just
    before the call leaves the process orphaned, with no signal to come.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)  # this process's own symbols: libc's included
        return int(libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _status(returncode: int) -> int:
    """An exit status for this process that tells what the child's return code told."""
    return 128 - returncode if returncode < 0 else returncode


def _parse(argv: Sequence[str]) -> tuple[str | None, str | None, list[str]]:
    remove = pid_file = None
    args = list(argv)
    while args and args[0] != "--":
        if len(args) < 2 or args[0] not in ("--remove", "--pid-file"):
            raise SystemExit(f"_reaper.py: unexpected arguments {args!r}")
        if args[0] == "--remove":
            remove = args[1]
        else:
            pid_file = args[1]
        del args[:2]
    if not args:
        raise SystemExit("_reaper.py: end the options with --")
    return remove, pid_file, args[1:]


def main(argv: Sequence[str]) -> int:
    remove, pid_file, command = _parse(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)  # every signal below wakes the select() further down
    stop: list[int] = []
    signal.signal(signal.SIGTERM, lambda sig, frame: stop.append(sig))
    signal.signal(signal.SIGCHLD, lambda sig, frame: None)
    reaper = os.getpid()

    def prepare() -> None:  # in the child, between fork and exec (this process has one thread)
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # an ignored signal would stay ignored
        set_parent_death_signal(signal.SIGKILL)
        if os.getppid() != reaper:  # the reaper died before the signal was armed
            os._exit(1)

    child: subprocess.Popen[bytes] | None = None
    if command:
        try:
            child = subprocess.Popen(command, stdin=subprocess.DEVNULL, preexec_fn=prepare)
        except OSError as e:
            print(f"_reaper.py: cannot start {command[0]}: {e}", file=sys.stderr)
            return 127
        if pid_file is not None:
            with open(pid_file + ".tmp", "w") as f:
                f.write(f"{child.pid}\n")
            os.replace(pid_file + ".tmp", pid_file)
    while not stop:
        if child is not None and child.poll() is not None:
            return _status(child.returncode)  # DIR stays: its owner reads the log in it
        readable, _, _ = select.select([0, wake_r], [], [])
        if wake_r in readable:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_r, 4096)  # one byte a signal; any left make select() return again
        if 0 in readable and not os.read(0, 512):
            break  # stdin closed: Glia is done, or gone
    if child is not None:
        child.terminate()
        try:
            child.wait(GRACE_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    if remove is not None:
        shutil.rmtree(remove, ignore_errors=True)
    return 0 if child is None else _status(child.returncode)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
