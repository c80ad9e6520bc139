"""The routing overhead ``glia serve`` adds per request, at a fixed request rate.

Usage: python benchmarks/serve.py [--qps 200] [--duration 10] [--router llq | --design FILE]
       [--trust-design]

Starts a minimal OpenAI-compatible engine (answers at once, non-streaming) in a process of its
own and ``glia serve`` in front of it in another, then sends requests open-loop at ``--qps``
for ``--duration`` seconds from this process: first straight to the engine, then through the
proxy. With ``--design`` the router is a design file run in its sandbox (each decision a round
trip to the design's process). Prints, in Markdown, the client-side median and p90 latency of
both and their difference, and the proxy's own median time from a request's arrival to its
upstream send (``glia_serve_routing_median_seconds``: parsing, the router's decision,
bookkeeping). Prompts are token ids, so no ``/tokenize`` call enters. Wall-clock timings: they
depend on the machine and its load; say which when you paste them into benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import socket
import statistics
import subprocess
import sys
import time

import aiohttp
import anyio


def _engine(port: int) -> None:
    from aiohttp import web

    answer = {"id": "x", "object": "text_completion", "model": "fake",
              "choices": [{"index": 0, "text": "x", "finish_reason": "length"}],
              "usage": {"prompt_tokens": 8, "completion_tokens": 1}}  # fmt: skip
    body = json.dumps(answer).encode()
    metrics = (
        "vllm:num_requests_running 0\nvllm:num_requests_waiting 0\nvllm:kv_cache_usage_perc 0\n"
    )

    async def completions(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=body, content_type="application/json")

    async def show(request: web.Request) -> web.Response:
        return web.Response(text=metrics)

    app = web.Application()
    app.router.add_post("/v1/completions", completions)
    app.router.add_get("/metrics", show)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _load(url: str, qps: float, duration: float) -> list[float]:
    body = json.dumps({"model": "fake", "prompt": list(range(1, 9)), "max_tokens": 1}).encode()
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> None:
            t = time.perf_counter()
            async with session.post(url + "/v1/completions", data=body,
                                    headers={"Content-Type": "application/json"}) as r:  # fmt: skip
                await r.read()
                if r.status != 200:
                    raise RuntimeError(f"{url} answered {r.status}")
            latencies.append(time.perf_counter() - t)

        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for i in range(int(qps * duration)):
                await anyio.sleep(max(0.0, start + i / qps - time.perf_counter()))
                tg.start_soon(one)
    return latencies


async def _wait_up(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                async with session.get(url + "/metrics") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await anyio.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


async def _routing_median(url: str) -> float:
    async with aiohttp.ClientSession() as session, session.get(url + "/metrics") as r:
        for line in (await r.text()).splitlines():
            if line.startswith("glia_serve_routing_median_seconds "):
                return float(line.split()[1])
    raise RuntimeError("no glia_serve_routing_median_seconds in the proxy's /metrics")


def _ms(xs: list[float], q: float) -> float:
    return (
        statistics.quantiles(xs, n=100)[int(q) - 1] * 1e3
        if q != 50
        else statistics.median(xs) * 1e3
    )


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--qps", type=float, default=200.0)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--router", default="llq")
    ap.add_argument("--design", default=None)
    ap.add_argument("--trust-design", action="store_true")
    args = ap.parse_args()
    policy = ["--design", args.design] if args.design else ["--router", args.router]
    policy += ["--trust-design"] if args.trust_design else []
    port = _free_port()
    engine = multiprocessing.get_context("spawn").Process(target=_engine, args=(port,), daemon=True)
    engine.start()
    engine_url = f"http://127.0.0.1:{port}"
    proxy = subprocess.Popen(
        [sys.executable, "-m", "glia", "serve", "--engine", engine_url, *policy, "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        await _wait_up(engine_url)
        assert proxy.stdout is not None
        proxy_url = proxy.stdout.readline().strip()
        await _load(engine_url, args.qps, 1.0)  # warm up both
        await _load(proxy_url, args.qps, 1.0)
        direct = await _load(engine_url, args.qps, args.duration)
        through = await _load(proxy_url, args.qps, args.duration)
        inside = await _routing_median(proxy_url)
    finally:
        proxy.terminate()
        proxy.wait(10)
        engine.terminate()
    n = len(direct)
    print(f"{n} requests each way at {args.qps:g} req/s, {' '.join(policy)}\n")
    print("| path | median (ms) | p90 (ms) |")
    print("|---|---|---|")
    print(f"| direct to the engine | {_ms(direct, 50):.3f} | {_ms(direct, 90):.3f} |")
    print(f"| through glia serve | {_ms(through, 50):.3f} | {_ms(through, 90):.3f} |")
    print(f"| difference | {_ms(through, 50) - _ms(direct, 50):.3f} | "
          f"{_ms(through, 90) - _ms(direct, 90):.3f} |")  # fmt: skip
    print(f"\nInside the proxy, arrival to upstream send (median): {inside * 1e3:.3f} ms")


if __name__ == "__main__":
    anyio.run(main)
