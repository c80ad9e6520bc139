"""Steering from the dashboard: POST /runs/<id>/steer, token-protected off loopback and refused
from other sites' pages (CSRF), with the origin of each action recorded."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from glia.bus import RunStatus, SteerMessage, SteerNote, SteerStop
from glia.dashboard import Live, make_app

pytestmark = pytest.mark.anyio


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


def _live() -> Live:
    live = Live()
    live.apply(RunStatus(run_id="r1", status="searching", message="", cost_usd=0.0, tokens=0,
                         at=0.0))  # fmt: skip
    return live


async def test_a_note_and_a_stop_posted_from_the_page_are_sent_with_their_origin(
    tmp_path: Path,
) -> None:
    sent: list[SteerMessage] = []

    async def steer(msg: SteerMessage) -> None:
        sent.append(msg)

    runner, url = await _serve(make_app(tmp_path, live=_live(), steer=steer))
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{url}/runs/r1") as r:
                page = await r.text()
            same = {"Origin": url}
            note = {"action": "note", "text": "look at p99", "context": "0"}
            async with s.post(f"{url}/runs/r1/steer", data=note, headers=same) as r:
                assert r.status == 200
                assert (await r.json())["sent"] == "note"
            async with s.post(f"{url}/runs/r1/steer", data={"action": "stop"},
                              headers={"Referer": f"{url}/runs/r1"}) as r:  # fmt: skip
                assert r.status == 200
            async with s.post(f"{url}/runs/r1/steer", data={"action": "jump"}, headers=same) as r:
                assert r.status == 400
                assert await r.text() == (
                    "400: unknown steering action 'jump': give one of note, pause, resume, "
                    "stop, approve, pick"
                )
            bad = {"action": "pick", "trial": "x"}
            async with s.post(f"{url}/runs/r1/steer", data=bad, headers=same) as r:
                assert (
                    await r.text() == "400: trial 'x' is not a number: give a whole number from 0"
                )
            async with s.post(f"{url}/runs/r9/steer", data=note, headers=same) as r:
                assert r.status == 404
                assert await r.text() == "run 'r9' is not live: it cannot be steered"
    finally:
        await runner.cleanup()
    assert "<form class=steer data-steer='/runs/r1/steer'>" in page
    assert "<button name=action value=stop>stop</button>" in page
    assert [type(m) for m in sent] == [SteerNote, SteerStop]
    assert isinstance(sent[0], SteerNote) and sent[0].text == "look at p99"
    assert sent[0].context == 0 and sent[1].context is None
    assert {m.origin for m in sent} == {"dashboard 127.0.0.1"}
    assert {m.run_id for m in sent} == {"r1"}


async def test_steering_from_another_sites_page_or_without_the_token_is_refused(
    tmp_path: Path,
) -> None:
    sent: list[SteerMessage] = []

    async def steer(msg: SteerMessage) -> None:
        sent.append(msg)

    app = make_app(tmp_path, host="0.0.0.0", token="s3cret", live=_live(), steer=steer)
    runner, url = await _serve(app)
    note = {"action": "note", "text": "look at p99"}
    try:
        async with aiohttp.ClientSession() as s:
            async with s.post(f"{url}/runs/r1/steer", data=note, headers={"Origin": url}) as r:
                assert r.status == 401
            steer_url = f"{url}/runs/r1/steer?token=s3cret"
            for headers in (
                {},  # no Origin nor Referer: not from a page of ours
                {"Origin": "http://evil.example"},
                {"Referer": "http://evil.example/page"},
                {"Origin": url, "Sec-Fetch-Site": "cross-site"},
            ):
                async with s.post(steer_url, data=note, headers=headers) as r:
                    assert r.status == 403, headers
                    assert await r.text() == (
                        "403: steering is only accepted from the dashboard's pages"
                    )
            headers = {"Origin": url, "Sec-Fetch-Site": "same-origin"}
            async with s.post(steer_url, data=note, headers=headers) as r:
                assert r.status == 200
    finally:
        await runner.cleanup()
    assert len(sent) == 1


async def test_without_the_bus_a_run_page_has_no_steering(tmp_path: Path) -> None:
    runner, url = await _serve(make_app(tmp_path, live=_live()))
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{url}/runs/r1") as r:
                assert "form class=steer" not in await r.text()
            async with s.post(f"{url}/runs/r1/steer", data={"action": "stop"},
                              headers={"Origin": url}) as r:  # fmt: skip
                assert r.status == 404
                assert await r.text() == "steering needs the bus: start with --nats URL"
    finally:
        await runner.cleanup()
