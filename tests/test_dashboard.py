"""``glia.dashboard``: finished runs from disk over real HTTP on 127.0.0.1, token off loopback."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from glia.dashboard import TokenRequired, make_app
from glia.report import Budget, LogEntry, RunRecord, Trial, save_record

pytestmark = pytest.mark.anyio


def _run(tmp_path: Path, run_id: str = "r1") -> Path:
    d = tmp_path / run_id
    d.mkdir()
    record = RunRecord(
        run_id=run_id, task="routing", preset="small", model="offline",
        supervisor_model="offline", contexts=1, sequential=False, budget=Budget(),
        search_seeds=[1], started_at=0.0, status="finished", best_trial=0,
        trials=[
            Trial(index=0, context=0, design_path="d.py", seeds=[1], score=2.5, mean_e2e_s=8.0),
            Trial(index=1, context=0, design_path="e.py", seeds=[1], failure="crash <x>"),
            Trial(index=2, context=0, design_path="../outside.py", seeds=[1], score=1.0),
        ],
        log=[LogEntry(context=0, role="supervisor", text="try <prefix> affinity", at=0.0)],
    )  # fmt: skip
    save_record(record, str(d / "run.json"))
    (d / "d.py").write_text("def route():\n    return 1\n")
    (d / "e.py").write_text("def route():\n    return 2\n")
    (d / "report.html").write_text("<p>the report</p>")
    return tmp_path


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


async def test_finished_run_from_disk_without_a_bus(tmp_path: Path) -> None:
    runner, url = await _serve(make_app(_run(tmp_path)))
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(url + "/") as r:
                assert r.status == 200
                assert "<a href='runs/r1'>r1</a>" in await r.text()
            async with s.get(url + "/runs/r1") as r:
                page = await r.text()
            assert "<td>2.5</td><td>8</td><td></td>" in page  # no summary: no p99
            # trial 0 scores 2.5 (the top: y=0), trial 2 scores 1.0 at the right edge
            assert "<polyline data-context='0' points='0.0,0.0 480.0,96.0'" in page
            assert "crash &lt;x&gt;" in page  # escaped: a design's error text is not markup
            assert "supervisor: try &lt;prefix&gt; affinity" in page
            async with s.get(url + "/runs/r1/trials/1") as r:
                page = await r.text()
            assert "-    return 1\n+    return 2" in page
            assert "--- trial 0 (best before)\n+++ trial 1" in page
            (tmp_path / "outside.py").write_text("NOT IN THE RUN")
            async with s.get(url + "/runs/r1/trials/2") as r:
                assert "NOT IN THE RUN" not in await r.text()  # run.json cannot name outside files
            async with s.get(url + "/runs/r1/trials/7") as r:
                assert (r.status, await r.text()) == (404, "run 'r1' has no trial '7'")
            async with s.get(url + "/runs/r1/report") as r:
                assert await r.text() == "<p>the report</p>"
            for missing in ("/runs/nope", "/runs/r1x"):
                async with s.get(url + missing) as r:
                    assert r.status == 404
    finally:
        await runner.cleanup()


async def test_token_required_off_loopback(tmp_path: Path) -> None:
    with pytest.raises(TokenRequired, match=r"^host '0\.0\.0\.0' is not loopback: pass a token"):
        make_app(tmp_path, host="0.0.0.0")
    runner, url = await _serve(make_app(_run(tmp_path), host="0.0.0.0", token="s3cret"))
    try:
        async with aiohttp.ClientSession() as s:
            for bad in ("", "?token=wrong"):
                async with s.get(url + "/runs/r1" + bad) as r:
                    assert r.status == 401
                    assert await r.text() == "401: missing or wrong token"
            async with s.get(url + "/runs/r1?token=s3cret") as r:
                assert r.status == 200
                cookie = r.headers["Set-Cookie"]
            # links carry no ?token=: the browser sends the cookie it was given instead
            assert cookie.startswith("glia_dashboard_token=s3cret;")
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
            for jar, status in (("s3cret", 200), ("wrong", 401)):
                cookies = {"Cookie": f"glia_dashboard_token={jar}"}
                async with s.get(url + "/runs/r1/trials/1", headers=cookies) as r:
                    assert r.status == status
            headers = {"Authorization": "Bearer s3cret"}
            async with s.get(url + "/", headers=headers) as r:
                assert r.status == 200
    finally:
        await runner.cleanup()


async def test_cli_prints_the_token_once_and_requires_it(tmp_path: Path) -> None:
    import os
    import socket
    import subprocess
    import sys

    import anyio

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    argv = [sys.executable, "-m", "glia", "dashboard", "--runs", str(_run(tmp_path))]
    argv += ["--host", "0.0.0.0", "--port", str(port)]
    secret = "sk-test-DO-NOT-SHOW-0123456789"
    env = {**os.environ, "OPENAI_API_KEY": secret, "ANTHROPIC_API_KEY": secret}
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stderr is not None
        line = await anyio.to_thread.run_sync(proc.stderr.readline)
        assert line.startswith(f"dashboard: http://0.0.0.0:{port}/?token=")
        token = line.strip().rsplit("=", 1)[1]
        url = f"http://127.0.0.1:{port}/runs/r1"
        async with aiohttp.ClientSession() as s:
            for _ in range(100):  # the line is printed just before the port is bound
                try:
                    async with s.get(url) as r:
                        assert r.status == 401
                    break
                except aiohttp.ClientConnectionError:
                    await anyio.sleep(0.05)
            else:
                raise AssertionError("the dashboard never listened")
            async with s.get(f"{url}?token={token}") as r:
                assert r.status == 200
            pages = [f"http://127.0.0.1:{port}{p}?token={token}" for p in ("/", "/runs/r1")]
            pages.append(f"http://127.0.0.1:{port}/runs/r1/trials/1?token={token}")
            for page in pages:
                async with s.get(page) as r:
                    assert r.status == 200
                    assert secret not in await r.text()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        assert proc.stderr is not None
        proc.stderr.close()
