"""``glia steer``: a steering message reaches the run's subject on a real nats-server, with the
user and host as its origin; bad input is one line and exit status 2."""

from __future__ import annotations

import getpass
import socket
import subprocess
import sys
from functools import partial
from pathlib import Path

import anyio
import pytest

from glia.bus import NatsBus, SteerGate, SteerMessage, SteerNote, SteerPause, nats_server

pytestmark = pytest.mark.anyio


def _glia(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "glia", *args], capture_output=True, text=True,
                          timeout=20, check=False)  # fmt: skip


async def test_glia_steer_sends_notes_pauses_and_picks(tmp_path: Path) -> None:
    got: list[SteerMessage] = []
    async with (
        nats_server(store_dir=tmp_path / "js") as server,
        NatsBus.connect(server.url, name="test") as bus,
    ):
        run = partial(anyio.to_thread.run_sync, _glia)
        note = await run("steer", "r1", "note", "look at p99", "--nats", server.url)
        assert note.returncode == 0, note.stderr
        assert note.stdout == "sent note to run r1\n"
        pause = await run("steer", "r1", "pause", "--context", "1", "--nats", server.url)
        pick = await run("steer", "r1", "pick", "4", "--nats", server.url)
        assert pause.returncode == pick.returncode == 0
        bad = await run("steer", "r1", "pick", "four", "--nats", server.url)
        assert (bad.returncode, bad.stderr) == (
            2, "error: pick needs a trial number, not 'four': e.g. pick 4\n"
        )  # fmt: skip
        with anyio.fail_after(10):
            async with bus.steering("r1") as messages:
                async for m in messages:
                    got.append(m)
                    if len(got) == 3:
                        break
    assert [type(m) for m in got] == [SteerNote, SteerPause, SteerGate]
    assert isinstance(got[0], SteerNote) and got[0].text == "look at p99"
    assert got[1].context == 1 and isinstance(got[2], SteerGate) and got[2].trial == 4
    assert {m.origin for m in got} == {f"cli {getpass.getuser()}@{socket.gethostname()}"}
