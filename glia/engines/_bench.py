"""Replay a workload against a real OpenAI-compatible endpoint and time every request.

The requests of a :class:`~glia.sim.Trace` are sent to ``POST /v1/completions`` as streams:
open-loop at their arrival times (divided by ``speed``), or closed-loop by ``trace.concurrency``
clients, each sending its next request when its last one has finished. A prompt of N tokens is
sent as N token ids (drawn from the seed, below ``vocab``) and generation is pinned to the
request's output length (``max_tokens``, and vLLM's ``min_tokens``/``ignore_eos`` where the
engine honours them), so an engine does the work the simulator modelled. Times come from the
stream as the client sees it: TTFT at the first token, TPOT over the rest, E2E at the end;
multiplied by ``speed`` they are in the simulated seconds of an emulated engine.

The outcome is the simulator's :class:`~glia.sim.RequestTable` and
:class:`~glia.sim.Summary` (the same CSV and JSON columns as ``glia simulate``), so a measured
run and a simulated one compare column for column. A request that fails is left out of the
table and reported with its error; the slowdown column, which needs the request's time alone on
an idle engine, is NaN.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import anyio
import numpy as np
from openai import APIError, AsyncOpenAI, OpenAIError

from glia._errors import InputError, SimulationError
from glia.sim import RequestTable, Summary, Trace, summarize

__all__ = ["BenchFailure", "BenchOutcome", "bench"]

MAX_ERROR_CHARS = 300
"""An engine's error message is cut to this length (it may echo a whole prompt)."""


@dataclass(frozen=True)
class BenchFailure:
    """A request the endpoint did not complete: its trace index and what went wrong."""

    request: int
    error: str


@dataclass(frozen=True)
class BenchOutcome:
    """What a bench run measured: the completed requests, their summary, and the failures."""

    requests: RequestTable
    summary: Summary
    failures: list[BenchFailure] = field(default_factory=list)
    model: str = ""


@dataclass
class _Timing:
    sent: float = math.nan
    first: float = math.nan
    done: float = math.nan
    prompt_tokens: int = 0
    output_tokens: int = 0


async def bench(
    endpoint: str,
    trace: Trace,
    *,
    model: str | None = None,
    speed: float = 1.0,
    seed: int = 0,
    vocab: int = 1000,
    api_key: str = "EMPTY",
    timeout_s: float = 600.0,
    text_prompts: bool = False,
) -> BenchOutcome:
    """Send ``trace``'s requests to the OpenAI-compatible server at ``endpoint``; time them.

    ``endpoint`` is the server's base URL (``http://host:8000``, with or without ``/v1``);
    ``model`` defaults to the first one it lists. ``text_prompts`` sends each prompt as text,
    one word ``w<id>`` per token id, for servers that take no token-id prompts (llama.cpp's
    Python server); its prompt length is then the engine's count when it reports usage.
    """
    if not (math.isfinite(speed) and speed > 0):
        raise InputError(f"speed is {speed}: give a positive factor (10: ten simulated s per s)")
    if vocab < 2:
        raise InputError(f"vocab is {vocab}: prompts need token ids from at least 2")
    base = endpoint.rstrip("/")
    base = base if base.endswith("/v1") else f"{base}/v1"
    async with AsyncOpenAI(base_url=base, api_key=api_key, max_retries=0, timeout=timeout_s) as c:
        name = model or await _first_model(c, base)
        rng = np.random.default_rng(seed)
        timings = [_Timing() for _ in range(len(trace))]
        failures: list[BenchFailure] = []
        start = time.monotonic()

        async def one(i: int) -> None:
            prompt = rng.integers(1, vocab, int(trace.num_prefill_tokens[i])).tolist()
            try:
                text = " ".join(f"w{t}" for t in prompt) if text_prompts else None
                await _send(c, name, prompt, int(trace.num_decode_tokens[i]), timings[i], text)
            except (OpenAIError, ValueError) as e:  # ValueError: a malformed stream
                failures.append(BenchFailure(i, _short(e)))

        async with anyio.create_task_group() as tg:
            if trace.concurrency is not None:
                queue = iter(range(len(trace)))

                async def client() -> None:
                    for i in queue:  # shared: each client takes the next request when free
                        await one(i)
                        if trace.think_s:
                            await anyio.sleep(trace.think_s / speed)

                for _ in range(min(trace.concurrency, len(trace))):
                    tg.start_soon(client)
            else:
                for i, at in enumerate(trace.arrived_at.tolist()):
                    await anyio.sleep(max(0.0, start + at / speed - time.monotonic()))
                    tg.start_soon(one, i)
    failed = {f.request for f in failures}
    ok = [i for i in range(len(trace)) if i not in failed]
    if not ok:
        first = min(failures, key=lambda f: f.request)
        raise SimulationError(
            f"every request to {base} failed (request {first.request}: {first.error}): check "
            "that the URL serves the OpenAI API and the model name"
        )
    table = _table([timings[i] for i in ok], ok, start, speed)
    return BenchOutcome(
        requests=table,
        summary=summarize(table, time.monotonic() - start),
        failures=sorted(failures, key=lambda f: f.request),
        model=name,
    )


async def _first_model(client: AsyncOpenAI, base: str) -> str:
    try:
        models = await client.models.list()
    except OpenAIError as e:
        raise InputError(
            f"cannot list the models of {base} ({_short(e)}): check the URL, or give --model"
        ) from None
    if not models.data:
        raise InputError(f"{base}/models lists no model: give --model")
    return models.data[0].id


async def _send(
    client: AsyncOpenAI,
    model: str,
    prompt: list[int],
    output: int,
    t: _Timing,
    text: str | None = None,
) -> None:
    t.sent = time.monotonic()
    stream = await client.completions.create(
        model=model,
        prompt=prompt if text is None else text,
        max_tokens=output,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"min_tokens": output, "ignore_eos": True},
    )
    async with stream:
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].text:
                if math.isnan(t.first):
                    t.first = time.monotonic()
                t.output_tokens += 1
            if chunk.usage is not None:
                t.prompt_tokens = chunk.usage.prompt_tokens
                t.output_tokens = chunk.usage.completion_tokens
    t.done = time.monotonic()
    if math.isnan(t.first):
        raise ValueError("the stream ended without a token")
    t.prompt_tokens = t.prompt_tokens or len(prompt)


def _short(e: Exception) -> str:
    text = e.message if isinstance(e, APIError) else str(e)
    text = " ".join(text.split()) or type(e).__name__
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def _table(timings: list[_Timing], ids: list[int], start: float, speed: float) -> RequestTable:
    def col(name: str) -> np.ndarray:
        return (np.array([getattr(t, name) for t in timings]) - start) * speed

    sent, first, done = col("sent"), col("first"), col("done")
    prompt = np.array([t.prompt_tokens for t in timings], dtype=np.int64)
    output = np.array([t.output_tokens for t in timings], dtype=np.int64)
    e2e = done - sent
    tpot = np.where(output > 1, (done - first) / np.maximum(output - 1, 1), 0.0)
    return RequestTable(
        request_id=np.array(ids, dtype=np.int64),
        arrived_at=sent,
        scheduled_at=sent,  # a client cannot see when the engine admits it
        prefill_completed_at=first,
        completed_at=done,
        request_e2e_time=e2e,
        prefill_e2e_time=first - sent,
        decode_time_per_token=tpot,
        request_scheduling_delay=np.zeros(len(ids)),
        request_slowdown=np.full(len(ids), math.nan),
        request_num_restarts=np.zeros(len(ids), dtype=np.int64),
        replica_id=np.full(len(ids), -1, dtype=np.int64),
        request_num_prefill_tokens=prompt,
        request_num_decode_tokens=output,
        request_num_tokens=prompt + output,
    )
