"""``glia dashboard --nats``: a live offline design run on a real nats-server, read over SSE by
several HTTP clients (tabs) through ONE subscription of the dashboard on the bus."""

from __future__ import annotations

import json
import re
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from aiohttp import web

from glia._client import Client
from glia._design import design_async
from glia.bus import ExperimentStarted, NatsBus, RunStatus, WorkerHeartbeat, nats_server
from glia.bus._subjects import EVENTS_STREAM
from glia.dashboard import Live, make_app, nats_probe
from glia.runtime import SimWorker, supervise

pytestmark = pytest.mark.anyio

BUDGET = 3


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def _tab(url: str, trials: int) -> list[dict[str, Any]]:
    """One browser tab's SSE stream, read until ``trials`` trials and the run's end arrived."""
    seen: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "text/event-stream"
        async for line in r.content:
            if not line.startswith(b"data: "):
                continue
            seen.append(json.loads(line[len(b"data: ") :]))
            done = sum(1 for e in seen if e["type"] == "trial.v1") >= trials
            if done and any(e["type"] == "run.v1" and e["status"] == "finished" for e in seen):
                return seen
    raise AssertionError("the stream ended before the run did")


async def _consumers(bus: NatsBus) -> int:
    return int((await bus.js.stream_info(EVENTS_STREAM)).state.consumer_count)


async def test_a_live_run_reaches_every_tab_over_one_bus_subscription(tmp_path: Path) -> None:
    live = Live()
    tabs: list[list[dict[str, Any]]] = []
    async with (
        nats_server(store_dir=tmp_path / "js") as server,
        NatsBus.connect(server.url, name="test-run") as bus,
        NatsBus.connect(server.url, name="glia-dashboard") as dash_bus,
        anyio.create_task_group() as tg,
    ):
        worker = SimWorker(bus, name="w", concurrency=1)
        await tg.start(lambda task_status: supervise([worker], task_status=task_status,
                                                     handle_signals=False))  # fmt: skip
        before = await _consumers(dash_bus)
        await tg.start(live.follow, dash_bus)
        runner, url = await _serve(
            make_app(tmp_path / "runs", live=live, probe=nats_probe(dash_bus))
        )
        try:

            async def run() -> None:
                await design_async(
                    out=tmp_path / "runs", search_seeds=(0,), holdout_seeds=(100,),
                    settings={"duration_s": 60.0}, client=Client(bus), budget=BUDGET,
                )  # fmt: skip

            async with anyio.create_task_group() as run_tg:
                run_tg.start_soon(run)
                with anyio.fail_after(20):
                    while not live.runs:
                        await anyio.sleep(0.05)
                (run_id,) = live.runs
                async with anyio.create_task_group() as readers:
                    for _ in range(3):

                        async def read() -> None:
                            tabs.append(await _tab(f"{url}/runs/{run_id}/events", BUDGET))

                        readers.start_soon(read)
                    with anyio.fail_after(20):
                        while sum(len(t) for t in live._tabs.values()) < 3:
                            await anyio.sleep(0.02)
                    # three tabs open, and the bus still carries the dashboard's one consumer
                    assert await _consumers(dash_bus) == before + 1
            assert live.subscriptions == 1
            # a tab opened after the run ended gets the whole run replayed from memory
            late = await _tab(f"{url}/runs/{run_id}/events", BUDGET)
            async with aiohttp.ClientSession() as s:
                async with s.get(f"{url}/runs/{run_id}") as r:
                    page = await r.text()
                async with s.get(f"{url}/static/live.js") as r:
                    script = await r.text()
                async with s.get(f"{url}/") as r:
                    runs = await r.text()
                await bus.dead_letter(b"an experiment no worker could finish")
                async with s.get(f"{url}/cluster") as r:
                    cluster = await r.text()
        finally:
            await runner.cleanup()
            worker.drain()
            tg.cancel_scope.cancel()
    assert len(tabs) == 3
    for seen in [*tabs, late]:
        trials = [e for e in seen if e["type"] == "trial.v1"]
        assert [t["index"] for t in trials] == [1, 2, 3]
        assert all(t["run_id"] == run_id and t["mean_e2e_s"] is not None for t in trials)
    assert tabs[0] == tabs[1] == tabs[2]
    assert f"<div data-live='/runs/{run_id}/events'>" in page
    assert "<script src='/static/live.js'></script>" in page
    assert "new EventSource(url)" in script
    assert f"<a href='runs/{run_id}'>{run_id}</a></td><td></td><td>finished</td><td>3</td>" in runs
    # the run is over: nothing queued or running, the queue empty, the one dead letter counted
    assert "<tr><td>0</td><td>0</td><td>0</td><td>0</td><td>1</td></tr>" in cluster
    # its slots; its counts are the last heartbeat's (taken at any moment, so not asserted);
    # no current experiment, from the events
    assert re.search(r"<tr data-worker='w'><td>w</td><td>1</td>(<td>\d+</td>){3}"
                     r"<td>\d+ s ago</td><td></td></tr>", cluster)  # fmt: skip


async def test_the_cluster_page_shows_what_each_worker_runs(tmp_path: Path) -> None:
    live = Live()
    live.apply(WorkerHeartbeat(worker="gpu<1>", concurrency=4, running=1, done=7, failed=2,
                               at=time.time()))  # fmt: skip
    live.apply(ExperimentStarted(run_id="r9", key="k", label="design <a>", worker="gpu<1>",
                                 attempt=1, at=0.0))  # fmt: skip
    runner, url = await _serve(make_app(tmp_path, live=live))
    try:
        async with aiohttp.ClientSession() as s, s.get(url + "/cluster") as r:
            page = await r.text()
    finally:
        await runner.cleanup()
    assert "<tr><td>0</td><td>1</td><td>0</td><td></td><td></td></tr>" in page  # no probe
    assert (
        "<tr data-worker='gpu&lt;1&gt;'><td>gpu&lt;1&gt;</td><td>4</td><td>1</td><td>7</td>"
        "<td>2</td><td>0 s ago</td><td>r9: design &lt;a&gt;</td></tr>"
    ) in page
    assert "<meta http-equiv=refresh content=2>" in page


async def test_without_a_bus_the_cluster_page_says_how_to_get_one(tmp_path: Path) -> None:
    runner, url = await _serve(make_app(tmp_path))
    try:
        async with aiohttp.ClientSession() as s, s.get(url + "/cluster") as r:
            assert r.status == 200
            assert "start the dashboard with --nats URL to see the cluster" in await r.text()
    finally:
        await runner.cleanup()


async def test_an_unknown_run_has_no_event_stream(tmp_path: Path) -> None:
    runner, url = await _serve(make_app(tmp_path, live=Live()))
    try:
        async with aiohttp.ClientSession() as s, s.get(url + "/runs/nope/events") as r:
            assert r.status == 404
            assert await r.text() == "run 'nope' is not live (start with --nats URL)"
    finally:
        await runner.cleanup()


async def test_the_command_follows_the_bus_and_serves_pages(tmp_path: Path) -> None:
    """``glia dashboard --nats URL`` as a real subprocess against a real nats-server."""
    with socket.socket() as probe:  # a free port for the dashboard
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with nats_server(store_dir=tmp_path / "js") as server:
        cmd = [sys.executable, "-m", "glia", "dashboard", "--nats", server.url,
               "--runs", str(tmp_path), "--port", str(port)]  # fmt: skip
        async with await anyio.open_process(cmd) as proc:
            assert proc.stderr is not None
            try:
                with anyio.fail_after(20):
                    line = (await proc.stderr.receive()).decode()
                assert line.strip() == f"dashboard: http://127.0.0.1:{port}/"
                async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/") as r:
                    assert r.status == 200
                    assert "<h1>Glia runs</h1>" in await r.text()
            finally:
                proc.send_signal(signal.SIGINT)
                with anyio.fail_after(10):
                    assert await proc.wait() == 0


async def test_off_loopback_the_event_stream_needs_the_token_but_the_script_does_not(
    tmp_path: Path,
) -> None:
    live = Live()
    live.apply(RunStatus(run_id="r1", status="searching", message="", cost_usd=0.0, tokens=0,
                         at=0.0))  # fmt: skip
    runner, url = await _serve(make_app(tmp_path, host="0.0.0.0", token="s3cret", live=live))
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(url + "/runs/r1/events") as r:
                assert r.status == 401
                assert await r.text() == "401: missing or wrong token"
            async with s.get(url + "/cluster?token=wrong") as r:
                assert r.status == 401
            async with s.get(url + "/static/live.js") as r:
                assert r.status == 200
                assert r.headers["Content-Type"].startswith("text/javascript")
            async with s.get(url + "/runs/r1/events?token=s3cret") as r:
                assert r.status == 200
                first = await r.content.readline()
                assert json.loads(first.removeprefix(b"data: "))["status"] == "searching"
    finally:
        await runner.cleanup()
