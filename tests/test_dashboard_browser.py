"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven by Playwright) while
an offline design run is live on a real nats-server: the run appears, trials arrive in the
chart and table without a reload, a design's diff shows, a note typed into the page reaches the
supervisor's next turn and changes what the offline researcher tries, and the stop button ends
the run with a report.

Screenshots of the run page and the cluster page go to ``tmp_path`` (and to the folder named by
``GLIA_DASHBOARD_SCREENSHOTS``, e.g. ``docs``, which is how the README's were made).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import anyio
import pytest

from glia._client import Client
from glia._design import design_async
from glia.actors._offline import RELAYED
from glia.bus import NatsBus, nats_server
from glia.dashboard import Live, make_app, nats_probe
from glia.report import load_record
from glia.runtime import SimWorker, supervise

from .test_dashboard_live import _serve

CHROMIUM = "/usr/bin/chromium"
NOTE = "the long prompts starve; look at p99"

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.slow,
    pytest.mark.timeout(240),
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason=f"no Chromium at {CHROMIUM}: apt-get install chromium (as .ci/run does)",
    ),
]
_TRIAL_AFTER_RELAY = """relay => {
  const rows = document.querySelectorAll("table.trials tr[data-trial]").length;
  if (window.rowsAtRelay === undefined) {
    const items = Array.from(document.querySelectorAll("ul.log li"));
    if (!items.some(li => li.textContent.includes(relay))) return false;
    window.rowsAtRelay = rows;
  }
  return rows > window.rowsAtRelay;
}"""
"""Polled in the page: true once a trial row arrived after the log showed ``relay``."""
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


async def test_watch_and_steer_a_live_run_in_chromium(tmp_path: Path) -> None:
    pw = pytest.importorskip("playwright.async_api", reason="pip install playwright (test extra)")
    runs = tmp_path / "runs"
    shots = [tmp_path]
    if os.environ.get("GLIA_DASHBOARD_SCREENSHOTS"):
        shots.append(Path(os.environ["GLIA_DASHBOARD_SCREENSHOTS"]))
    live = Live()
    done: list[str] = []
    async with (
        nats_server(store_dir=tmp_path / "js") as server,
        NatsBus.connect(server.url, name="test-run") as bus,
        NatsBus.connect(server.url, name="glia-dashboard") as dash_bus,
        anyio.create_task_group() as tg,
    ):
        worker = SimWorker(bus, name="worker-1", concurrency=2)
        await tg.start(lambda task_status: supervise([worker], task_status=task_status,
                                                     handle_signals=False))  # fmt: skip
        await tg.start(live.follow, dash_bus)
        app = make_app(runs, live=live, probe=nats_probe(dash_bus), steer=dash_bus.publish_steer)
        runner, url = await _serve(app)

        async def run() -> None:
            rec = await design_async(
                out=runs, search_seeds=(0,), holdout_seeds=(100,),
                settings={"duration_s": 60.0}, client=Client(bus), budget=30,
            )  # fmt: skip
            done.append(rec.run_id)

        try:
            tg.start_soon(run)
            async with pw.async_playwright() as p:
                browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                page = await browser.new_page(viewport={"width": 1000, "height": 900})
                # the run appears on the runs page
                with anyio.fail_after(60):
                    while True:
                        await page.goto(url + "/")
                        link = page.locator("a[href^='runs/']")
                        if await link.count():
                            break
                        await anyio.sleep(0.2)
                run_id = (await link.first.text_content() or "").strip()
                await link.first.click()
                await page.wait_for_url(f"{url}/runs/{run_id}")
                # trials arrive in the table and the chart without a reload
                rows = page.locator("table.trials tr[data-trial]")
                await rows.nth(0).wait_for(timeout=60_000)
                await page.locator("svg.scores polyline").first.wait_for(state="attached")
                # pause at once: no new turn starts, so the offline search (a few fast trials)
                # cannot end before the note reaches it
                await page.click("form.steer button[value=pause]")
                await page.locator("ul.log li.human", has_text="pause from").first.wait_for()
                # a note typed into the page: recorded with its origin, passed on by the
                # supervisor at its next turn once the run resumes
                await page.fill("form.steer textarea", NOTE)
                await page.click("form.steer button[value=note]")
                await page.locator("output.steered", has_text="sent note").wait_for()
                human = page.locator("ul.log li.human", has_text="note from dashboard 127.0.0.1")
                await human.wait_for(timeout=60_000)
                await page.click("form.steer button[value=resume]")
                await page.locator("ul.log li.human", has_text="resume from").wait_for()
                # a trial row added after the supervisor's relay of the note (counted in the
                # page when the relay shows, so a fast trial cannot slip past the count)
                await page.wait_for_function(_TRIAL_AFTER_RELAY, arg=f"{RELAYED} {NOTE}",
                                             timeout=120_000)  # fmt: skip
                seen = await rows.count() - 1
                # pause again: the run cannot end by itself before the stop button
                await page.click("form.steer button[value=pause]")
                await page.locator("ul.log li.human", has_text="pause from").nth(1).wait_for()
                for d in shots:
                    await page.screenshot(path=str(d / "dashboard-run.png"), full_page=True)
                # a design's diff, from the table's link
                trial = page.locator(f"table.trials tr[data-trial='{seen + 1}'] a")
                diff_page = await browser.new_page()
                with anyio.fail_after(30):
                    while True:  # run.json is written just after the trial's event
                        r = await diff_page.goto(url + (await trial.get_attribute("href") or ""))
                        if r is not None and r.ok:
                            break
                        await anyio.sleep(0.2)
                diff = await diff_page.locator("pre.diff").text_content() or ""
                # the cluster page, while the run is live
                cluster = await browser.new_page(viewport={"width": 1000, "height": 600})
                await cluster.goto(url + "/cluster")
                assert "worker-1" in (await cluster.content())
                for d in shots:
                    await cluster.screenshot(path=str(d / "dashboard-cluster.png"), full_page=True)
                # the stop button ends the search; the best so far is validated and reported
                await page.click("form.steer button[value=stop]")
                await page.locator(".status a.report").wait_for(timeout=120_000)
                status = await page.locator(".status").text_content() or ""
                report = await browser.new_page()
                r = await report.goto(url + f"/runs/{run_id}/report")
                assert r is not None and r.ok
                report_text = await report.content()
                await browser.close()
            with anyio.fail_after(30):
                while not done:
                    await anyio.sleep(0.1)
        finally:
            await runner.cleanup()
            worker.drain()
            tg.cancel_scope.cancel()
    assert done == [run_id]
    assert status.startswith("status stopped stopped by a person (dashboard 127.0.0.1)")
    assert f"<h1>Report: design run {run_id}" in report_text or run_id in report_text
    assert diff.startswith("--- trial") and "\n+" in diff
    rec = load_record((runs / run_id / "run.json").read_bytes())
    assert (rec.status, rec.stop_kind) == ("stopped", "human")
    assert rec.validation and len(rec.trials) < 30
    human_log = [e for e in rec.log if e.role == "human"]
    assert [e.text for e in human_log] == [
        "pause from dashboard 127.0.0.1", f"note from dashboard 127.0.0.1: {NOTE}",
        "resume from dashboard 127.0.0.1", "pause from dashboard 127.0.0.1",
        "stop from dashboard 127.0.0.1",
    ]  # fmt: skip
    # the researcher's first trial after the supervisor passed the note on follows it
    relayed = next(e for e in rec.log if e.role == "supervisor" and RELAYED in e.text)
    after = [t for t in rec.trials if t.at > relayed.at]
    assert after and "starve_s=120" in after[0].note
    assert not any("starve_s" in t.note for t in rec.trials if t.at < human_log[1].at)
    assert shutil.which(CHROMIUM) == CHROMIUM


async def test_the_gate_is_approved_from_the_page(tmp_path: Path) -> None:
    """``glia design --gate``: the page shows the gate's controls when the run waits there;
    a trial picked from the page is the one validated."""
    pw = pytest.importorskip("playwright.async_api", reason="pip install playwright (test extra)")
    runs = tmp_path / "runs"
    live = Live()
    done: list[str] = []
    async with (
        nats_server(store_dir=tmp_path / "js") as server,
        NatsBus.connect(server.url, name="test-run") as bus,
        NatsBus.connect(server.url, name="glia-dashboard") as dash_bus,
        anyio.create_task_group() as tg,
    ):
        worker = SimWorker(bus, name="worker-1", concurrency=2)
        await tg.start(lambda task_status: supervise([worker], task_status=task_status,
                                                     handle_signals=False))  # fmt: skip
        await tg.start(live.follow, dash_bus)
        app = make_app(runs, live=live, probe=nats_probe(dash_bus), steer=dash_bus.publish_steer)
        runner, url = await _serve(app)

        async def run() -> None:
            rec = await design_async(
                out=runs, search_seeds=(0,), holdout_seeds=(100,), gate=True,
                settings={"duration_s": 60.0}, client=Client(bus), budget=3,
            )  # fmt: skip
            done.append(rec.run_id)

        try:
            tg.start_soon(run)
            with anyio.fail_after(60):
                while not live.runs:
                    await anyio.sleep(0.05)
            (run_id,) = live.runs
            async with pw.async_playwright() as p:
                browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                page = await browser.new_page()
                await page.goto(f"{url}/runs/{run_id}")
                gate = page.locator("form.steer .gate")
                await gate.wait_for(state="visible", timeout=120_000)
                await page.fill("form.steer input[name=trial]", "1")
                await page.click("form.steer button[value=pick]")
                await page.locator("ul.log li.human", has_text="pick from dashboard").wait_for()
                await page.locator(".status a.report").wait_for(timeout=120_000)
                assert await gate.is_hidden()
                await browser.close()
            with anyio.fail_after(30):
                while not done:
                    await anyio.sleep(0.1)
        finally:
            await runner.cleanup()
            worker.drain()
            tg.cancel_scope.cancel()
    rec = load_record((runs / run_id / "run.json").read_bytes())
    assert rec.status == "finished" and rec.best_trial == 1 and rec.validation
    assert [e.text for e in rec.log if e.role == "human"] == [
        "pick from dashboard 127.0.0.1: trial 1"
    ]
