"""Emulated engines: HTTP endpoints that speak vLLM's OpenAI API, timed by the simulator.

Each replica of a cluster becomes one server (replica ``i`` on ``port + i``) whose batching, KV
memory, preemptions and iteration times come from the simulator's replica model
(:class:`~glia.sim.EngineModel`), run in scaled real time: ``speed`` simulated seconds per wall
second. It serves

* ``POST /v1/completions`` and ``POST /v1/chat/completions``, streaming (SSE) or not: a
  request's output is ``max_tokens`` placeholder tokens, produced at the simulated pace (one per
  decode iteration, the first when its prefill ends) and streamed as they are made, the tokens
  of one ``stream_interval_s`` of wall time in one chunk (the first and last token at once);
* ``GET /v1/models``, ``GET /health``;
* ``GET /metrics`` in Prometheus text with vLLM's names (``vllm:num_requests_running``,
  ``vllm:num_requests_waiting``, ``vllm:kv_cache_usage_perc``, ``vllm:num_preemptions_total``,
  and the KV capacity as the labels of ``vllm:cache_config_info``).

Prompt lengths: a completions prompt given as token ids counts one per id; text (and chat
messages) is counted as one token per 4 characters, the usual estimate. Without
``max_tokens`` a request produces 16 tokens (vLLM's default for completions).

Like llm-d's inference-sim, but timed by the calibrated latency model. A client that hangs up
does not cancel its request inside the model: it runs to the end, as its KV memory would.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from aiohttp import web

from glia._errors import InputError
from glia._logging import get_logger
from glia.sim import ClusterConfig, EngineModel

__all__ = ["DEFAULT_MAX_TOKENS", "Emulated", "emulate"]

DEFAULT_MAX_TOKENS = 16
DEFAULT_STREAM_INTERVAL_S = 0.02
"""Wall seconds between a stream's chunks (vLLM's ``--stream-interval``, in time rather than
tokens): the tokens made meanwhile go out together, so that the HTTP work of a client, a proxy
and the engine grows with the number of streams, not with the token rate at a high speed."""
CHARS_PER_TOKEN = 4

log = get_logger("glia.emulate")


def check_speed(speed: float) -> None:
    """Refuse a time scale that is not a positive, finite factor (simulated s per wall s)."""
    if not (math.isfinite(speed) and speed > 0):
        raise InputError(f"speed is {speed}: give a positive factor (10: ten simulated s per s)")


@dataclass
class _Pending:
    tokens: int = 0
    done: bool = False
    changed: anyio.Event = field(default_factory=anyio.Event)
    finished: anyio.Event = field(default_factory=anyio.Event)


class _Engine:
    """One emulated replica: its model, the requests in it, and the stepping loop."""

    def __init__(self, cluster: ClusterConfig, index: int, speed: float, model_name: str,
                 stream_interval_s: float) -> None:  # fmt: skip
        self.model = EngineModel(cluster, index)
        replica = cluster.resolve().replicas[index]
        self.num_blocks, self.block_size = replica.num_blocks, cluster.block_size
        self.speed = speed
        self.stream_interval_s = stream_interval_s
        self.name = model_name
        self.pending: dict[int, _Pending] = {}
        self.wake = anyio.Event()
        self.t0 = time.monotonic()
        self.next_id = 0
        self.late_s = 0.0

    def now(self) -> float:
        """Simulated seconds since the engine started."""
        return (time.monotonic() - self.t0) * self.speed

    def submit(self, prompt: int, output: int) -> tuple[int, _Pending]:
        rid, self.next_id = self.next_id, self.next_id + 1
        self.model.add(rid, prompt, output, self.now())
        self.pending[rid] = p = _Pending()
        self.wake.set()
        return rid, p

    async def run(self) -> None:
        """Step the model in scaled real time until cancelled."""
        clock = self.now()
        while True:
            dt = self.model.start(clock)
            if dt == 0.0:
                self.wake = anyio.Event()
                await self.wake.wait()
                clock = max(clock, self.now())  # idle until now
                continue
            end = clock + dt
            await anyio.sleep(max(0.0, end / self.speed - (time.monotonic() - self.t0)))
            # A busy engine's next iteration starts when this one ends in the model, however
            # late the loop woke: small delays are caught up (the next sleep is shorter) rather
            # than stretching the model's time. What is not caught up is the engine's lag.
            self.late_s = max(self.late_s, self.now() - end)
            for p in self.model.finish(end):
                pending = self.pending.get(p.id)
                if pending is None or (p.tokens == pending.tokens and not p.done):
                    continue
                pending.tokens, pending.done = max(pending.tokens, p.tokens), p.done
                pending.changed.set()
                pending.changed = anyio.Event()
                if p.done:
                    pending.finished.set()
                    del self.pending[p.id]
            clock = end

    def metrics(self) -> str:
        labels = f'{{model_name="{self.name}"}}'
        m = self.model
        return (
            "# TYPE vllm:num_requests_running gauge\n"
            f"vllm:num_requests_running{labels} {m.num_running}\n"
            "# TYPE vllm:num_requests_waiting gauge\n"
            f"vllm:num_requests_waiting{labels} {m.num_waiting}\n"
            "# TYPE vllm:kv_cache_usage_perc gauge\n"
            f"vllm:kv_cache_usage_perc{labels} {m.kv_usage:.6f}\n"
            "# TYPE vllm:num_preemptions_total counter\n"
            f"vllm:num_preemptions_total{labels} {m.preemptions}\n"
            "# TYPE vllm:cache_config_info gauge\n"
            f'vllm:cache_config_info{{block_size="{self.block_size}",'
            f'num_gpu_blocks="{self.num_blocks}"}} 1.0\n'
        )


def _prompt_tokens(body: dict[str, Any], chat: bool) -> int:
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ValueError("'messages' must be a non-empty list")
        chars = sum(len(str(m.get("content", ""))) for m in messages if isinstance(m, dict))
        return max(1, chars // CHARS_PER_TOKEN)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
        return len(prompt)
    if isinstance(prompt, str) and prompt:
        return max(1, len(prompt) // CHARS_PER_TOKEN)
    raise ValueError("'prompt' must be a non-empty string or list of token ids")


def _error(status: int, message: str) -> web.Response:
    kind = "invalid_request_error" if status < 500 else "server_error"
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return web.json_response(body, status=status)


def _app(engine: _Engine) -> web.Application:
    async def generate(request: web.Request) -> web.StreamResponse:
        chat = request.path.endswith("/chat/completions")
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            prompt = _prompt_tokens(body, chat)
            output = int(body.get("max_tokens") or body.get("max_completion_tokens")
                         or DEFAULT_MAX_TOKENS)  # fmt: skip
            if output < 1:
                raise ValueError("max_tokens must be at least 1")
            rid, pending = engine.submit(prompt, output)
        except (ValueError, InputError) as e:  # a malformed body, or a request that cannot fit
            return _error(400, str(e))
        created, kind = int(time.time()), "chat.completion" if chat else "text_completion"
        ident = f"{'chatcmpl' if chat else 'cmpl'}-{rid}"
        usage = {"prompt_tokens": prompt, "completion_tokens": output,
                 "total_tokens": prompt + output}  # fmt: skip
        if not body.get("stream"):
            while not pending.done:
                await pending.changed.wait()
            text = "x " * output
            choice: dict[str, Any] = {"index": 0, "finish_reason": "length"}
            choice |= {"message": {"role": "assistant", "content": text}} if chat else {
                "text": text, "logprobs": None}  # fmt: skip
            whole = {"id": ident, "object": kind, "created": created, "model": engine.name}
            return web.json_response(whole | {"choices": [choice], "usage": usage})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})  # fmt: skip
        await resp.prepare(request)
        kind = f"{kind}.chunk" if chat else kind
        sent = 0
        while sent < output:
            if pending.tokens == sent and not pending.done:
                await pending.changed.wait()
            target = output if pending.done else pending.tokens
            if target > sent:
                # Every token made since the last write goes out in one chunk, as engines that
                # stream at an interval do: under load (or at a high --speed) a client gets
                # fewer, larger chunks rather than a growing backlog, so the times it sees stay
                # the model's. The usage chunk counts every token.
                text, sent = "x " * (target - sent), target
                finish = "length" if sent == output else None
                piece: dict[str, Any] = {"index": 0, "finish_reason": finish, "logprobs": None}
                piece |= {"delta": {"content": text}} if chat else {"text": text}
                await _event(resp, {"id": ident, "object": kind, "created": created,
                                    "model": engine.name, "choices": [piece]})  # fmt: skip
            if not pending.done and engine.stream_interval_s > 0:
                # The next chunk waits out the interval, unless the request ends first: the
                # first and the last token go out when they are made, so TTFT and E2E are
                # exact, and a client reads a bounded number of chunks per second.
                with anyio.move_on_after(engine.stream_interval_s):
                    await pending.finished.wait()
        options = body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage"):
            await _event(resp, {"id": ident, "object": kind, "created": created,
                                "model": engine.name, "choices": [], "usage": usage})  # fmt: skip
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def models(request: web.Request) -> web.Response:
        model = {"id": engine.name, "object": "model", "created": 0, "owned_by": "glia"}
        return web.json_response({"object": "list", "data": [model]})

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(text=engine.metrics(), content_type="text/plain")

    app = web.Application()
    app.router.add_post("/v1/completions", generate)
    app.router.add_post("/v1/chat/completions", generate)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    return app


async def _event(resp: web.StreamResponse, data: dict[str, Any]) -> None:
    await resp.write(f"data: {json.dumps(data)}\n\n".encode())


@dataclass(frozen=True)
class Emulated:
    """Running emulated engines: their base URLs, replica ``i`` at ``urls[i]``."""

    urls: list[str]
    _engines: list[_Engine] = field(default_factory=list, repr=False)

    def lag_s(self) -> float:
        """The most simulated seconds any engine has been behind its model so far: how late an
        iteration ended in real time (near 0 where the process keeps up with ``speed``; then,
        and only then, the times a client sees are the model's)."""
        return max((e.late_s for e in self._engines), default=0.0)


@asynccontextmanager
async def emulate(
    cluster: ClusterConfig,
    *,
    speed: float = 1.0,
    host: str = "127.0.0.1",
    port: int = 8100,
    stream_interval_s: float = DEFAULT_STREAM_INTERVAL_S,
) -> AsyncIterator[Emulated]:
    """Serve every replica of ``cluster`` as an emulated engine while the context is open.

    ``port`` 0 picks free ports; otherwise replica ``i`` listens on ``port + i``. A stream
    sends at most one chunk per ``stream_interval_s`` wall seconds (0: one per iteration),
    besides its first and last token.
    """
    check_speed(speed)
    if not stream_interval_s >= 0:
        raise InputError(
            f"stream_interval_s is {stream_interval_s}: give the wall seconds between a "
            "stream's chunks (0: one chunk per decode iteration)"
        )
    model_name = cluster.resolve().model
    engines = [_Engine(cluster, i, speed, model_name, stream_interval_s)
               for i in range(cluster.num_replicas)]  # fmt: skip
    runners: list[web.AppRunner] = []
    try:
        urls = []
        for i, engine in enumerate(engines):
            runner = web.AppRunner(_app(engine), access_log=None, shutdown_timeout=1.0)
            await runner.setup()
            runners.append(runner)
            site = web.TCPSite(runner, host, port + i if port else 0)
            try:
                await site.start()
            except OSError as e:
                raise InputError(
                    f"cannot listen on {host}:{port + i if port else 0} ({e.strerror}): choose "
                    "another --port"
                ) from None
            bound = runner.addresses[0][1]
            urls.append(f"http://{host}:{bound}")
        async with anyio.create_task_group() as tg:
            for engine in engines:
                tg.start_soon(engine.run)
            log.info("emulate_ready", urls=urls, speed=speed, model=model_name)
            try:
                yield Emulated(urls, engines)
            finally:
                tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            for runner in runners:
                await runner.cleanup()
