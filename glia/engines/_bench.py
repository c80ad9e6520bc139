"""Replay a workload against a real OpenAI-compatible endpoint and time every request.

The requests of a :class:`~glia.sim.Trace` are sent to ``POST /v1/completions`` as streams:
open-loop at their arrival times (divided by ``speed``), or closed-loop by ``trace.concurrency``
clients, each sending its next request when its last one has finished. A prompt of N tokens is
sent as N token ids (drawn from the seed, below ``vocab``) and generation is pinned to the
request's output length (``max_tokens``, and vLLM's ``min_tokens``/``ignore_eos`` where the
engine honours them), so an engine does the work the simulator modelled. Times come from the
stream as the client sees it: TTFT at the first token, TPOT over the rest, E2E at the end;
multiplied by ``speed`` they are in the simulated seconds of an emulated engine. The stream is
read with aiohttp and parsed only as far as timing needs (a chunk with text, the usage chunk):
a full OpenAI client costs a fraction of a millisecond per chunk, which at a high speed and
many concurrent streams is more than the measurement can afford.

The outcome is the simulator's :class:`~glia.sim.RequestTable` and
:class:`~glia.sim.Summary` (the same CSV and JSON columns as ``glia simulate``), so a measured
run and a simulated one compare column for column. A request that fails is left out of the
table and reported with its error; the slowdown column, which needs the request's time alone on
an idle engine, is NaN.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field

import aiohttp
import anyio
import numpy as np

from glia._errors import InputError, SimulationError
from glia.sim import RequestTable, Summary, Trace, summarize

from ._emulate import check_speed

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
    check_speed(speed)
    if vocab < 2:
        raise InputError(f"vocab is {vocab}: prompts need token ids from at least 2")
    base = endpoint.rstrip("/")
    base = base if base.endswith("/v1") else f"{base}/v1"
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    connector = aiohttp.TCPConnector(limit=0)  # open-loop: as many requests as arrive
    async with aiohttp.ClientSession(headers=headers, timeout=timeout, connector=connector) as c:
        name = model or await _first_model(c, base)
        rng = np.random.default_rng(seed)
        timings = [_Timing() for _ in range(len(trace))]
        failures: list[BenchFailure] = []
        start = time.monotonic()

        async def one(i: int) -> None:
            prompt = rng.integers(1, vocab, int(trace.num_prefill_tokens[i])).tolist()
            try:
                text = " ".join(f"w{t}" for t in prompt) if text_prompts else None
                await _send(c, base, name, prompt, int(trace.num_decode_tokens[i]), timings[i],
                            text)  # fmt: skip
            except (aiohttp.ClientError, TimeoutError, ValueError) as e:
                failures.append(BenchFailure(i, _short(e)))  # ValueError: a malformed stream

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


class _StatusError(ValueError):
    """An error status from the endpoint, worded as OpenAI's clients word it."""

    def __init__(self, status: int, body: bytes) -> None:
        message = body.decode("utf-8", "replace").strip()
        try:
            doc = json.loads(body)
            error = doc.get("error") if isinstance(doc, dict) else None
            found = error.get("message") if isinstance(error, dict) else None
            message = found if isinstance(found, str) else message
        except ValueError:
            pass
        text = f"Error code: {status}"
        super().__init__(f"{text} - {message}" if message else text)


async def _first_model(client: aiohttp.ClientSession, base: str) -> str:
    try:
        async with client.get(f"{base}/models") as r:
            body = await r.read()
            if r.status != 200:
                raise _StatusError(r.status, body)
            doc = json.loads(body)
        data = doc.get("data") if isinstance(doc, dict) else None
        if not isinstance(data, list):
            raise ValueError("the answer has no 'data' list")
    except (aiohttp.ClientError, TimeoutError, ValueError) as e:
        raise InputError(
            f"cannot list the models of {base} ({_short(e)}): check the URL, or give --model"
        ) from None
    ids: list[str] = [m["id"] for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]
    if not ids:
        raise InputError(f"{base}/models lists no model: give --model")
    return ids[0]


async def _send(
    client: aiohttp.ClientSession,
    base: str,
    model: str,
    prompt: list[int],
    output: int,
    t: _Timing,
    text: str | None = None,
) -> None:
    body = {"model": model, "prompt": prompt if text is None else text, "max_tokens": output,
            "stream": True, "stream_options": {"include_usage": True},
            "min_tokens": output, "ignore_eos": True}  # fmt: skip
    t.sent = time.monotonic()
    async with client.post(f"{base}/completions", data=json.dumps(body)) as r:
        if r.status != 200:
            raise _StatusError(r.status, await r.read())
        async for line in r.content:
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                break
            chunk = json.loads(payload)
            if not isinstance(chunk, dict):
                raise ValueError("an event that is not a JSON object")
            if "error" in chunk:
                error = chunk["error"]
                raise ValueError(error.get("message") if isinstance(error, dict) else str(error))
            choices = chunk.get("choices")
            if choices and isinstance(choices[0], dict) and choices[0].get("text"):
                if math.isnan(t.first):
                    t.first = time.monotonic()
                t.output_tokens += 1  # a chunk per token, unless the usage chunk says otherwise
            usage = chunk.get("usage")
            if isinstance(usage, dict):
                t.prompt_tokens = int(usage.get("prompt_tokens") or 0)
                t.output_tokens = int(usage.get("completion_tokens") or t.output_tokens)
    t.done = time.monotonic()
    if math.isnan(t.first):
        raise ValueError("the stream ended without a token")
    t.prompt_tokens = t.prompt_tokens or len(prompt)


def _short(e: Exception) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
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
