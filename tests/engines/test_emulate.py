"""``glia emulate``: replicas served over HTTP, timed by the replica model in scaled time."""

from __future__ import annotations

import json
import urllib.request

import anyio
import msgspec
import pytest

import glia
from glia.engines import bench, emulate
from glia.sim import ClusterConfig, EngineModel, WorkloadConfig, build_trace

CLUSTER = ClusterConfig(num_replicas=2, gpu="A10", model="llama-3-8b", num_blocks=400)


def test_the_engine_model_produces_tokens_as_the_replica_does() -> None:
    m = EngineModel(CLUSTER)
    m.add(0, 100, 3, 0.0)
    lm = CLUSTER.resolve().latency
    dt = m.start(0.0)
    assert dt == lm.iteration_time(100, 0, 100 * 101 // 2, 0, 0, 1)
    assert [(p.id, p.tokens, p.done) for p in m.finish(dt)] == [(0, 1, False)]
    t = dt
    for tokens in (2, 3):
        d = m.start(t)
        t += d
        progress = m.finish(t)
        assert [(p.tokens, p.done) for p in progress] == [(tokens, tokens == 3)]
    assert m.start(t) == 0.0  # idle
    assert (m.num_running, m.num_waiting, m.kv_usage) == (0, 0, 0.0)


def test_the_engine_model_refuses_what_cannot_fit() -> None:
    m = EngineModel(CLUSTER)
    with pytest.raises(glia.InputError) as err:
        m.add(0, 6000, 1000, 0.0)
    assert str(err.value) == (
        "a request of 6000 prompt and 1000 output tokens cannot run on this engine (context "
        "8192, 396 usable KV blocks)"
    )
    m.add(1, 10, 1, 0.0)
    with pytest.raises(glia.InputError, match="request id 1 is already in the engine"):
        m.add(1, 10, 1, 0.0)


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as r:
        return str(r.read().decode())


@pytest.mark.anyio
async def test_bench_against_emulated_engines_matches_the_simulator() -> None:
    speed = 2.0
    workload = WorkloadConfig(concurrency=4, isl=200, osl=20, max_requests=24)
    trace = build_trace(workload, 0)
    one = msgspec.structs.replace(CLUSTER, num_replicas=1)
    async with emulate(CLUSTER, speed=speed, port=0) as running:
        assert len(running.urls) == 2
        assert await anyio.to_thread.run_sync(_get, running.urls[1] + "/health") == "ok"
        out = await bench(running.urls[0], trace, speed=speed)
        metrics = await anyio.to_thread.run_sync(_get, running.urls[0] + "/metrics")
    assert out.model == "llama-3-8b" and not out.failures
    assert out.requests.request_num_decode_tokens.tolist() == [20] * 24
    assert 'vllm:num_requests_running{model_name="llama-3-8b"} 0' in metrics
    assert "vllm:kv_cache_usage_perc" in metrics and "vllm:num_requests_waiting" in metrics
    sim = glia.simulate("llq", cluster=one, workload=workload).summary
    # Real time adds HTTP and event-loop delays (x speed, in simulated seconds): within 25%.
    assert out.summary.mean_e2e_s == pytest.approx(sim.mean_e2e_s, rel=0.25)
    assert out.summary.mean_tpot_s == pytest.approx(sim.mean_tpot_s, rel=0.25)


@pytest.mark.anyio
async def test_chat_non_streaming_and_bad_requests() -> None:
    async with emulate(CLUSTER, speed=50.0, port=0) as running:
        url = running.urls[0]

        def post(path: str, body: object) -> tuple[int, dict[str, object]]:
            req = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})  # fmt: skip
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    return r.status, json.loads(r.read())
            except urllib.error.HTTPError as e:
                return e.code, json.loads(e.read())

        status, body = await anyio.to_thread.run_sync(
            post, "/v1/chat/completions",
            {"model": "llama-3-8b", "messages": [{"role": "user", "content": "hi " * 40}],
             "max_tokens": 3},
        )  # fmt: skip
        assert status == 200
        assert body["usage"] == {"prompt_tokens": 30, "completion_tokens": 3, "total_tokens": 33}
        status, body = await anyio.to_thread.run_sync(post, "/v1/completions", {"prompt": []})
        assert status == 400
        assert body["error"] == {"message": "'prompt' must be a non-empty string or list of "
                                 "token ids", "type": "invalid_request_error", "param": None,
                                 "code": None}  # fmt: skip
        status, body = await anyio.to_thread.run_sync(
            post, "/v1/completions", {"prompt": [1] * 9000, "max_tokens": 10}
        )
        assert status == 400 and "cannot run on this engine" in str(body["error"])
