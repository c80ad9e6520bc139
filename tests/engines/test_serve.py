"""``glia serve``: the routing proxy in front of emulated and fake engines, on loopback.

The end-to-end test runs ``glia emulate``'s engines and the proxy in this process and ``glia
bench`` as a subprocess; the fault tests put the proxy in front of small aiohttp engines whose
behaviour each test scripts (slow, hanging, killed, answering garbage).
"""

from __future__ import annotations

import csv
import json
import signal
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from aiohttp import web

import glia
from glia.engines import emulate, serve
from glia.sandbox import boundary
from glia.sim import COLUMNS, ClusterConfig

pytestmark = pytest.mark.anyio

GLIA = [sys.executable, "-m", "glia"]


# -- a scriptable engine ---------------------------------------------------------------------
class Fake:
    """An engine on loopback: vLLM's metric names, and completions as ``mode`` says.

    ``ok``: streams ``max_tokens`` chunks ``tpot_s`` apart (or answers whole); ``hang``: never
    answers; ``garbage``: a 200 whose body is not OpenAI's. Records the requests it received and
    those whose client (the proxy) hung up.
    """

    def __init__(
        self, mode: str = "ok", tpot_s: float = 0.001, *, metrics: bool = True,
        tokenize: bool = False,
    ) -> None:  # fmt: skip
        self.mode = mode
        self.tpot_s = tpot_s
        self.has_metrics, self.has_tokenize = metrics, tokenize
        self.gate = anyio.Event()  # mode "gate": answers once it is set
        self.received = 0
        self.cancelled = 0
        self.runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.received += 1
        try:
            if self.mode == "hang":
                await anyio.sleep_forever()
            if self.mode == "gate":
                await self.gate.wait()
            if self.mode == "garbage":
                if body.get("stream"):
                    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
                    await resp.prepare(request)
                    await resp.write(b"this is not an event stream\n\n")
                    await resp.write_eof()
                    return resp
                return web.Response(text="<html>oops</html>", content_type="text/html")
            n = int(body.get("max_tokens", 4))
            if not body.get("stream"):
                await anyio.sleep(self.tpot_s * n)
                doc = {"id": "x", "object": "text_completion", "model": "fake",
                       "choices": [{"index": 0, "text": "x " * n, "finish_reason": "length"}],
                       "usage": {"prompt_tokens": 1, "completion_tokens": n}}  # fmt: skip
                return web.json_response(doc)
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            for i in range(n):
                await anyio.sleep(self.tpot_s)
                end = "length" if i == n - 1 else None
                chunk = {"id": "x", "object": "text_completion", "model": "fake",
                         "choices": [{"index": 0, "text": "x ", "finish_reason": end}]}  # fmt: skip
                await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
            return resp
        except BaseException:
            self.cancelled += 1
            raise

    async def tokenize(self, request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"count": len(body["prompt"].split()), "tokens": []})

    async def metrics(self, request: web.Request) -> web.Response:
        if not self.has_metrics:
            raise web.HTTPNotFound()
        text = (
            "vllm:num_requests_running 0\nvllm:num_requests_waiting 0\n"
            "vllm:kv_cache_usage_perc 0.0\n"
        )
        return web.Response(text=text)

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "fake", "object": "model"}]})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_post("/v1/chat/completions", self.completions)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/v1/models", self.models)
        if self.has_tokenize:
            app.router.add_post("/tokenize", self.tokenize)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1, handler_cancellation=True)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port)
        await site.start()
        self.port = self.runner.addresses[0][1]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


@asynccontextmanager
async def fakes(*engines: Fake) -> AsyncIterator[None]:
    for e in engines:
        await e.start()
    try:
        yield
    finally:
        for e in engines:
            await e.stop()


async def post(
    url: str, body: Any, path: str = "/v1/completions"
) -> tuple[int, dict[str, str], bytes]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with (
        aiohttp.ClientSession() as s,
        s.post(url + path, data=data, headers={"Content-Type": "application/json"}) as r,
    ):
        return r.status, dict(r.headers), await r.read()


async def get_text(url: str) -> str:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return await r.text()


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


async def wait_until(cond: Any, what: str, limit_s: float = 10.0) -> None:
    with anyio.move_on_after(limit_s):
        while not cond():
            await anyio.sleep(0.02)
        return
    raise AssertionError(f"timed out waiting for {what}")


# -- end to end ------------------------------------------------------------------------------
@pytest.mark.slow
async def test_emulate_serve_hra_and_bench_complete_every_request_once(tmp_path: Path) -> None:
    # 3000-token prompts on 300-block (4800-token) replicas: HRA projects each to take the whole
    # replica, so a replica takes one at a time, when it is empty, and holds the rest, however
    # stale the scraped KV usage; 8 clients on 4 replicas keep requests held.
    cluster = ClusterConfig(num_replicas=4, num_blocks=300)
    async with (
        emulate(cluster, speed=10.0, port=0) as engines,
        serve(engines.urls, router="hra", port=0, scrape_interval_s=0.05) as proxy,
    ):
        done = await anyio.run_process(
            [*GLIA, "bench", "--endpoint", proxy.url, "--concurrency", "8", "--isl", "3000",
             "--osl", "20", "--num-requests", "40", "--speed", "10", "--out", str(tmp_path),
             "--json"],
            check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr.decode()[-2000:]
        stats = proxy.statistics()
        text = await get_text(proxy.url + "/metrics")
    record = json.loads(done.stdout)
    assert record["num_requests"] == 40 and record["failed"] == 0
    with open(tmp_path / "requests.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == COLUMNS
    assert sorted(int(r["request_id"]) for r in rows) == list(range(40))  # each exactly once
    assert stats.completed == 40 and stats.failed == stats.cancelled == 0
    assert sum(stats.decisions.values()) == 40  # each routed exactly once
    assert stats.queued == stats.in_flight == 0
    assert stats.router == "hra" and stats.holds > 0
    assert metric(text, "glia_serve_holds_total") == stats.holds
    assert metric(text, 'glia_serve_requests_total{outcome="completed"}') == 40
    assert metric(text, "glia_serve_e2e_seconds_count") == 40
    assert metric(text, "glia_serve_queue_length") == 0


async def test_the_cli_serves_until_sigterm_then_drains(tmp_path: Path) -> None:
    engine = Fake(tpot_s=0.05)
    async with (
        fakes(engine),
        await anyio.open_process(
            [*GLIA, "serve", "--engine", engine.url, "--router", "round-robin", "--port", "0"]
        ) as proc,
    ):
        assert proc.stdout is not None
        url = (await proc.stdout.receive()).decode().strip()
        assert url.startswith("http://127.0.0.1:")
        status, _, body = await post(url, {"model": "fake", "prompt": "hi", "max_tokens": 3})
        assert status == 200 and json.loads(body)["choices"][0]["text"] == "x x x "
        async with anyio.create_task_group() as tg:
            result: list[int] = []

            async def slow() -> None:
                s, _, _ = await post(url, {"prompt": "hi", "max_tokens": 20})
                result.append(s)

            tg.start_soon(slow)
            await wait_until(lambda: engine.received == 2, "the second request")
            proc.send_signal(signal.SIGTERM)
        assert result == [200]  # the request in flight finished before the proxy exited
        assert await proc.wait() == 0


# -- a design that fails ---------------------------------------------------------------------
FLAKY = textwrap.dedent("""\
    from glia.policies import Router

    class Flaky(Router):
        name = "flaky"

        def setup(self, cluster, rng):
            super().setup(cluster, rng)
            self.calls = 0

        def schedule(self, cluster):
            self.calls += 1
            if cluster.queue and self.calls > 4:
                raise RuntimeError("boom")
            return [(0, r) for r in cluster.queue]
""")


async def test_a_design_that_raises_falls_back_to_the_baseline_and_says_so() -> None:
    a, b = Fake(), Fake()
    async with (
        fakes(a, b),
        serve([a.url, b.url], design=FLAKY, fallback="round-robin", port=0,
              trust_design=boundary() is not None) as proxy,
    ):  # fmt: skip
        for _ in range(6):
            status, _, _ = await post(proxy.url, {"prompt": "hello", "max_tokens": 2})
            assert status == 200
        health = json.loads(await get_text(proxy.url + "/health"))
        text = await get_text(proxy.url + "/metrics")
        stats = proxy.statistics()
    assert stats.completed == 6 and stats.router == "round-robin"
    assert stats.design_failure == health["design_failure"]
    assert stats.design_failure is not None
    assert stats.design_failure.startswith(
        "design 'flaky' failed: exception: router 'flaky' raised RuntimeError at t="
    )
    assert stats.design_failure.endswith("s: boom (at design.py:13)")
    assert health["status"] == "degraded" and health["router"] == "round-robin"
    assert metric(text, "glia_serve_design_failed") == 1
    assert 'glia_serve_router_info{router="round-robin",fallback="round-robin"} 1' in text
    # The design routed its first requests to engine 0; round-robin then shared the rest.
    assert a.received >= 2 and b.received >= 1


async def test_a_design_that_reads_what_engines_do_not_expose_falls_back() -> None:
    reader = FLAKY.replace('raise RuntimeError("boom")', "cluster.replicas[0].running")
    reader = reader.replace("self.calls > 4", "self.calls > 0")
    engine = Fake()
    async with fakes(engine), serve([engine.url], design=reader, port=0,
                                    trust_design=boundary() is not None) as proxy:  # fmt: skip
        status, _, _ = await post(proxy.url, {"prompt": "hello", "max_tokens": 2})
        stats = proxy.statistics()
    assert status == 200 and stats.router == "llq"
    assert stats.design_failure is not None
    assert "a design read ReplicaView.running, which a router in front of real engines cannot " in (
        stats.design_failure
    )


# -- faults ----------------------------------------------------------------------------------
async def stream(url: str, body: dict[str, Any]) -> list[bytes]:
    """The SSE lines of a streaming request (an empty list if the request failed)."""
    async with (
        aiohttp.ClientSession() as s,
        s.post(url + "/v1/completions", json=body | {"stream": True}) as r,
    ):
        if r.status != 200:
            return []
        return [line async for line in r.content if line.strip()]


async def test_a_killed_engine_fails_its_streams_cleanly_and_rejoins_when_restarted() -> None:
    a, b = Fake(tpot_s=0.02), Fake(tpot_s=0.02)
    async with (
        fakes(a, b),
        serve([a.url, b.url], router="round-robin", port=0, scrape_interval_s=0.05) as proxy,
    ):
        out: dict[int, list[bytes]] = {}

        async def one(i: int) -> None:
            out[i] = await stream(proxy.url, {"prompt": "hi", "max_tokens": 50})

        async with anyio.create_task_group() as tg:
            tg.start_soon(one, 0)  # round-robin: to a
            await wait_until(lambda: a.received == 1, "a's request")
            tg.start_soon(one, 1)  # to b
            await wait_until(lambda: b.received == 1, "b's request")
            await anyio.sleep(0.1)
            await a.stop()  # killed mid-stream
        assert out[1][-1] == b"data: [DONE]\n"
        last = json.loads(out[0][-1].removeprefix(b"data: "))
        assert last["error"]["message"].startswith(f"engine {a.url} failed mid-stream")
        assert len(out[0]) > 1  # some tokens came through before the failure
        await wait_until(lambda: not proxy.statistics().engines_up[a.url], "a to be down")
        # While a is down, every request goes to b.
        for _ in range(3):
            assert (await stream(proxy.url, {"prompt": "hi", "max_tokens": 2}))[-1].startswith(
                b"data: [DONE]"
            )
        assert b.received == 4
        await a.start()  # restarted on the same port: probed back
        await wait_until(lambda: proxy.statistics().engines_up[a.url], "a to rejoin")
        for _ in range(2):
            await stream(proxy.url, {"prompt": "hi", "max_tokens": 2})
        assert a.received == 1 + 1  # the restarted engine took one of the two
        stats = proxy.statistics()
    assert stats.failed == 1 and stats.completed == 6


async def test_a_request_routed_to_a_dead_engine_is_routed_again() -> None:
    a, b = Fake(), Fake()
    async with (
        fakes(a, b),
        serve([a.url, b.url], router="round-robin", port=0, scrape_interval_s=30.0) as proxy,
    ):
        await a.stop()  # the proxy has not noticed (no scrape for 30 s)
        for _ in range(2):
            status, _, _ = await post(proxy.url, {"prompt": "hi", "max_tokens": 2})
            assert status == 200
        stats = proxy.statistics()
    assert stats.completed == 2 and stats.failed == 0 and b.received == 2
    assert stats.engines_up == {a.url: False, b.url: True}


async def test_an_engine_that_stops_answering_times_out_with_a_clear_error() -> None:
    slow, fast = Fake(mode="hang"), Fake()
    async with (
        fakes(slow, fast),
        serve([slow.url, fast.url], router="round-robin", port=0, read_timeout_s=0.3,
              scrape_interval_s=30.0) as proxy,
    ):  # fmt: skip
        status, _, body = await post(proxy.url, {"prompt": "hi", "max_tokens": 2})
        assert status == 504
        assert json.loads(body)["error"]["message"] == (
            f"engine {slow.url} did not answer within 0.3 s"
        )
        assert not proxy.statistics().engines_up[slow.url]  # out of rotation
        for _ in range(3):
            assert (await post(proxy.url, {"prompt": "hi", "max_tokens": 2}))[0] == 200
    assert fast.received == 3


async def test_a_slow_engine_gets_no_more_while_a_fast_one_is_free() -> None:
    slow, fast = Fake(mode="gate"), Fake()
    async with (
        fakes(slow, fast),
        serve([slow.url, fast.url], router="llq", port=0) as proxy,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(post, proxy.url, {"prompt": "hi", "max_tokens": 2})  # llq's tie: slow
        await wait_until(lambda: slow.received == 1, "the slow engine's request")
        for _ in range(4):  # one at a time: the fast engine is always the less loaded
            assert (await post(proxy.url, {"prompt": "hi", "max_tokens": 2}))[0] == 200
        assert (slow.received, fast.received) == (1, 4)
        slow.gate.set()
        await wait_until(lambda: proxy.statistics().completed == 5, "every request")


async def test_an_engine_without_metrics_is_routed_on_the_proxy_s_own_tracking() -> None:
    engine = Fake(metrics=False, tokenize=True)
    async with fakes(engine), serve([engine.url], router="hra", port=0) as proxy:
        status, _, _ = await post(proxy.url, {"prompt": "one two three", "max_tokens": 2})
        health = proxy.health()
    assert status == 200
    assert health["engines"][0]["up"] is True and health["engines"][0]["metrics_age_s"] is None
    assert health["prompt_tokens_from"] == ["tokenize"]  # the engine's /tokenize counted it


async def test_a_client_that_hangs_up_cancels_its_upstream_request() -> None:
    engine = Fake(tpot_s=0.05)
    async with fakes(engine), serve([engine.url], router="llq", port=0) as proxy:
        async with (
            aiohttp.ClientSession() as s,
            s.post(proxy.url + "/v1/completions",
                   json={"prompt": "hi", "max_tokens": 200, "stream": True}) as r,
        ):  # fmt: skip
            await r.content.readline()  # the first token
        await wait_until(lambda: engine.cancelled == 1, "the engine to see the hang-up")
        await wait_until(lambda: proxy.statistics().cancelled == 1, "the proxy to count it")
        assert proxy.statistics().in_flight == 0


async def test_a_full_queue_answers_429_with_retry_after() -> None:
    gone = Fake()
    await gone.start()
    await gone.stop()  # nothing listens there: no engine is up, every request waits
    async with (
        serve([gone.url], port=0, max_queue=1, scrape_interval_s=30.0) as proxy,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(post, proxy.url, {"prompt": "hi"})
        await wait_until(lambda: proxy.statistics().queued == 1, "one queued request")
        status, headers, body = await post(proxy.url, {"prompt": "hi"})
        tg.cancel_scope.cancel()
    assert status == 429 and headers["Retry-After"] == "1"
    assert json.loads(body)["error"]["message"] == (
        "the proxy's queue is full (1 requests wait to be routed): retry later"
    )


@pytest.mark.parametrize(
    ("body", "path", "message"),
    [
        (b"{not json", "/v1/completions",
         "the request body is not valid JSON (Expecting property name enclosed in double "
         "quotes: line 1 column 2 (char 1))"),
        (b"[1, 2]", "/v1/completions", "the request body must be a JSON object"),
        (b'{"prompt": 5}', "/v1/completions",
         "'prompt' must be a non-empty string or list of token ids"),
        (b'{"messages": []}', "/v1/chat/completions", "'messages' must be a non-empty list"),
    ],
)  # fmt: skip
async def test_a_malformed_request_is_a_400_with_a_message(
    body: bytes, path: str, message: str
) -> None:
    engine = Fake()
    async with fakes(engine), serve([engine.url], port=0) as proxy:
        status, _, answer = await post(proxy.url, body, path)
    assert status == 400 and json.loads(answer)["error"]["message"] == message
    assert engine.received == 0


async def test_an_engine_answering_garbage_is_a_502_and_a_stream_error() -> None:
    engine = Fake(mode="garbage")
    async with fakes(engine), serve([engine.url], port=0) as proxy:
        status, _, body = await post(proxy.url, {"prompt": "hi", "max_tokens": 2})
        lines = await stream(proxy.url, {"prompt": "hi", "max_tokens": 2})
        stats = proxy.statistics()
    assert status == 502
    assert json.loads(body)["error"]["message"] == (
        f"engine {engine.url} answered with a malformed completion (not OpenAI JSON)"
    )
    last = json.loads(lines[-1].removeprefix(b"data: "))
    assert last["error"]["message"] == (
        f"engine {engine.url} sent a malformed stream (a line that is not server-sent events: "
        "b'this is not an event stream\\n')"
    )
    assert stats.failed == 2 and stats.engines_up[engine.url]  # garbage is not an outage


async def test_chat_models_and_health_pass_through() -> None:
    engine = Fake()
    async with fakes(engine), serve([engine.url], router="llq", port=0) as proxy:
        status, _, _ = await post(
            proxy.url, {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
            "/v1/chat/completions",
        )  # fmt: skip
        models = json.loads(await get_text(proxy.url + "/v1/models"))
        health = json.loads(await get_text(proxy.url + "/health"))
    assert status == 200 and models["data"][0]["id"] == "fake"
    assert health["status"] == "ok" and health["router"] == "llq"
    assert health["prompt_tokens_from"] == ["estimate"]  # the fake has no /tokenize
    assert health["engines"][0]["up"] is True


async def test_a_design_that_does_not_load_or_an_unknown_router_stops_before_serving() -> None:
    with pytest.raises(glia.DesignError) as err:
        async with serve(["http://127.0.0.1:1"], design="def broken(:\n", port=0,
                         trust_design=True):  # fmt: skip
            pass
    assert str(err.value) == "syntax: design.py:1: invalid syntax (at design.py:1: def broken(:)"
    with pytest.raises(glia.InputError) as bad:
        async with serve(["http://127.0.0.1:1"], router="nope", port=0):
            pass
    assert str(bad.value).startswith("unknown router 'nope': choose one of expert, hra, ")
    with pytest.raises(glia.InputError) as url:
        async with serve(["localhost:8000"], port=0):
            pass
    assert str(url.value) == (
        "engine URL 'localhost:8000' is not http(s): give e.g. http://host:8000"
    )


def test_the_cli_wants_exactly_one_of_design_and_router() -> None:
    from typer.testing import CliRunner

    from glia.cli import app

    result = CliRunner().invoke(app, ["serve", "--engine", "http://127.0.0.1:1"])
    assert result.exit_code == 2
    assert "error: give exactly one of --design FILE and --router NAME" in result.output
