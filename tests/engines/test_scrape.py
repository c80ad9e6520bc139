"""Engine metrics scraped from Prometheus ``/metrics``: vLLM, SGLang and llama.cpp names."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from glia.engines import EngineMetrics, MetricsError, emulate, parse_metrics, scrape
from glia.sim import ClusterConfig

CLUSTER = ClusterConfig(num_replicas=2, gpu="A10", model="llama-3-8b", num_blocks=400)

VLLM = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 3.0
vllm:num_requests_running{engine="1",model_name="m"} 2.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="m"} 7.0 1733380000000
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.25
"""

SGLANG = """\
sglang:num_running_reqs{model_name="m"} 4
sglang:num_queue_reqs{model_name="m"} 1
sglang:token_usage{model_name="m"} 0.5
"""

LLAMACPP = """\
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 1
llamacpp:requests_deferred 0
llamacpp:kv_cache_usage_ratio 0.125
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [(VLLM, (5, 7, 0.25)), (SGLANG, (4, 1, 0.5)), (LLAMACPP, (1, 0, 0.125))],
)
def test_each_engine_s_names_are_read(text: str, expected: tuple[int, int, float]) -> None:
    m = parse_metrics(text, scraped_at=10.0)
    assert (m.num_running, m.num_waiting, m.kv_usage) == expected
    assert m.age(now=12.5) == 2.5


def test_metrics_without_a_router_s_fields_fail_clearly() -> None:
    with pytest.raises(MetricsError) as err:
        parse_metrics("vllm:num_requests_running 1\nvllm:num_requests_waiting 0\n", 0.0)
    assert str(err.value) == (
        "the engine's /metrics has none of vllm:kv_cache_usage_perc, vllm:gpu_cache_usage_perc, "
        "sglang:token_usage, llamacpp:kv_cache_usage_ratio (for kv_usage): serve a vLLM, SGLang "
        "or llama.cpp server with metrics on (llama.cpp: --metrics)"
    )


@given(
    st.lists(st.integers(0, 10_000), min_size=1, max_size=5),
    st.integers(0, 10_000),
    st.floats(0.0, 1.0),
)
def test_labelled_samples_sum_and_garbage_lines_are_skipped(
    running: list[int], waiting: int, kv: float
) -> None:
    lines = [f'vllm:num_requests_running{{engine="{i}"}} {r}' for i, r in enumerate(running)]
    lines += [
        "garbage line {",
        "vllm:num_requests_waiting NaNx",
        f"vllm:num_requests_waiting {waiting}",
    ]
    lines += [f"vllm:kv_cache_usage_perc {kv!r}"]
    m = parse_metrics("\n".join(lines), 0.0)
    assert m == EngineMetrics(
        num_running=sum(running), num_waiting=waiting, kv_usage=kv, scraped_at=0.0
    )


@pytest.mark.anyio
async def test_scrape_reads_an_emulated_engine() -> None:
    async with emulate(CLUSTER, speed=50.0, port=0) as running, aiohttp.ClientSession() as s:
        m = await scrape(s, running.urls[1])
    assert (m.num_running, m.num_waiting, m.kv_usage) == (0, 0, 0.0)
    assert m.age() >= 0.0
    assert (m.num_blocks, m.block_size) == (400, 16)  # vllm:cache_config_info, as vLLM says it


def test_kv_capacity_is_read_from_vllm_s_cache_config_info_where_present() -> None:
    info = 'vllm:cache_config_info{block_size="32",cache_dtype="auto",num_gpu_blocks="2048"} 1.0\n'
    m = parse_metrics(VLLM + info, 0.0)
    assert (m.num_blocks, m.block_size) == (2048, 32)
    assert (parse_metrics(SGLANG, 0.0).num_blocks, parse_metrics(SGLANG, 0.0).block_size) == (
        None,
        None,
    )
    broken = 'vllm:cache_config_info{block_size="x",num_gpu_blocks="0"} 1.0\n'
    assert parse_metrics(VLLM + broken, 0.0).num_blocks is None


@pytest.mark.anyio
async def test_scrape_of_a_down_or_wrong_endpoint_fails_clearly() -> None:
    async def not_found(_: web.Request) -> web.Response:
        return web.Response(status=404)

    app = web.Application()
    app.router.add_get("/metrics", not_found)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as s:
            with pytest.raises(MetricsError) as err:
                await scrape(s, url)
            assert str(err.value) == f"{url}/metrics answered HTTP 404: is it an engine?"
    finally:
        await runner.cleanup()
    async with aiohttp.ClientSession() as s:
        with pytest.raises(MetricsError) as err:
            await scrape(s, url)
    assert str(err.value) == (
        f"cannot scrape {url}/metrics (ClientConnectorError): is the engine up?"
    )
