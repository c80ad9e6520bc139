"""``glia serve``: a design's router in front of real engines, as an OpenAI-compatible proxy.

The proxy accepts ``POST /v1/completions`` and ``POST /v1/chat/completions`` (streaming SSE or
not, passed through unchanged), keeps a global queue of requests not yet routed, and calls the
router's ``schedule()`` on every arrival and every completion, as the simulator does, so a
router may hold requests (admission control). ``GET /v1/models`` is the first live engine's;
``GET /health`` says which router decides and whether a design has fallen back; ``GET
/metrics`` is the proxy's own (queue length, decisions per engine, holds, TTFT and E2E
histograms).

What a router sees (the views, :class:`EngineView`) is what a real router can know:

* its own exact tracking: the requests it sent to each engine and has not seen complete
  (``num_outstanding``), their prompt tokens, the tokens streamed so far;
* each engine's Prometheus ``/metrics`` (vLLM, SGLang or llama.cpp names, see
  :mod:`glia.engines._scrape`), scraped every ``scrape_interval_s``: ``num_running``,
  ``num_queued`` and ``queue`` (the last ``num_waiting`` requests sent there), and the KV block
  counts, all as of the last scrape, whose age is ``metrics_age_s``. These are
  ``glia.sim.SCRAPED_FIELDS`` and the view's ``stale_fields``, exactly as a
  :class:`~glia.sim.StaleReplicaView` in a simulation with ``metrics_interval_s`` above 0; the
  fields no engine exposes (``running``, ``cached_prefix``, ``prefix_cache_blocks``) raise
  :class:`~glia.sim.UnscrapableFieldError`.

A request's prompt tokens are its token ids where the prompt is given as ids (``ids``), the
engine's ``/tokenize`` count where the engines have that endpoint (``tokenize``, vLLM and
llama.cpp), else one token per 4 characters (``estimate``); which one is in ``/health`` and in
each request's log line. KV capacity comes from vLLM's ``vllm:cache_config_info``, else from
the ``num_blocks`` and ``block_size`` given.

A design runs in its sandbox (:class:`glia.sandbox.SandboxedRouter`): the proxy never executes
its code. A design that raises, times out or makes an invalid decision is replaced by the
``fallback`` baseline, which the proxy reports (a log event, ``glia_serve_design_failed`` in
``/metrics``, ``"status": "degraded"`` in ``/health``); the proxy keeps serving.

Faults: an engine that refuses a connection, drops a stream or stops answering is taken out of
rotation and probed back by the scrape loop (it rejoins at its next good scrape); a request
that had not reached it is routed again, one that was streaming ends with an SSE ``error``
event (before its first byte: a 502 or 504). A client that hangs up cancels its upstream
request. A full global queue answers 429, a draining proxy 503, both with ``Retry-After``; a
malformed body 400 with a message; an engine's malformed answer a 502.

Design calls run on the event loop (each bounded by ``call_timeout_s``); one structlog line per
request (``serve_request``).
"""

from __future__ import annotations

import bisect
import json
import math
import statistics as stats
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
import anyio
import msgspec
import numpy as np
from aiohttp import web

from glia._errors import DesignError, InputError
from glia._logging import get_logger
from glia.experiment import Limits
from glia.policies import Router, resolve_router
from glia.sandbox import SandboxedRouter
from glia.sim import (
    SCRAPED_FIELDS,
    ClusterView,
    ReplicaView,
    Request,
    RunningRequest,
    Trigger,
    UnscrapableFieldError,
)

from ._scrape import EngineMetrics, MetricsError, scrape

__all__ = ["EngineView", "ServeStatistics", "Serving", "serve"]

log = get_logger("glia.serve")

PromptSource = Literal["ids", "tokenize", "estimate"]
CHARS_PER_TOKEN = 4
RETRY_AFTER_S = 1
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class _Flight:
    """One client request through the proxy."""

    __slots__ = ("arrived", "chat", "engine", "error", "first", "id", "path", "prompt_source",
                 "raw", "req", "routed", "sent", "stream", "tokens")  # fmt: skip

    def __init__(self, rid: int, req: Request, raw: bytes, path: str, chat: bool, stream: bool,
                 source: PromptSource, arrived: float) -> None:  # fmt: skip
        self.id = rid
        self.req = req
        self.raw = raw
        self.path = path
        self.chat = chat
        self.stream = stream
        self.prompt_source: PromptSource = source
        self.arrived = arrived
        self.engine: _Engine | None = None
        self.routed = anyio.Event()
        self.sent = math.nan
        self.first = math.nan
        self.tokens = 0
        self.error: str | None = None  # why a stream failed after its headers went out


class _Engine:
    """One engine behind the proxy: its URL, health, last scrape and the requests sent to it."""

    def __init__(self, index: int, url: str, num_blocks: int, block_size: int) -> None:
        self.index = index
        self.url = url.rstrip("/")
        self.up = False
        self.metrics: EngineMetrics | None = None
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.inflight: dict[int, _Flight] = {}  # in the order they were sent
        self.decisions = 0
        self.tokenize = False
        self.view = EngineView(self)


class EngineView(ReplicaView):
    """An engine as a router in front of it sees it (see the module docstring).

    Static facts and the router's own tracking (``num_outstanding``) are exact; the
    :data:`~glia.sim.SCRAPED_FIELDS` are as of the last scrape of the engine's ``/metrics``,
    ``metrics_age_s`` seconds ago; the fields no engine exposes raise
    :class:`~glia.sim.UnscrapableFieldError`, worded as in the simulator.
    """

    __slots__ = ("_e", "_now")

    stale_fields = SCRAPED_FIELDS

    def __init__(self, engine: _Engine) -> None:
        # No simulator replica behind this view: every field is read from the engine's state.
        self._e = engine
        self._now = 0.0
        self.gpu = "unknown"
        self.model = ""

    @property
    def id(self) -> int:
        """The engine's number: its position among the ``--engine`` URLs."""
        return self._e.index

    @property
    def metrics_age_s(self) -> float:
        """Seconds since the engine's metrics were scraped (infinite before the first)."""
        m = self._e.metrics
        return math.inf if m is None else max(0.0, time.monotonic() - m.scraped_at)

    @property
    def num_blocks(self) -> int:
        return self._e.num_blocks

    @property
    def block_size(self) -> int:
        return self._e.block_size

    @property
    def watermark_blocks(self) -> int:
        """Not exposed by engines: 0."""
        return 0

    @property
    def num_allocated_blocks(self) -> int:
        """KV blocks in use as of the last scrape (KV usage times ``num_blocks``)."""
        m = self._e.metrics
        return 0 if m is None else min(self._e.num_blocks, round(m.kv_usage * self._e.num_blocks))

    @property
    def num_free_blocks(self) -> int:
        return self._e.num_blocks - self.num_allocated_blocks

    @property
    def queue(self) -> tuple[Request, ...]:
        """The last ``num_waiting`` (as of the last scrape) requests sent here and not done."""
        m = self._e.metrics
        k = 0 if m is None else min(m.num_waiting, len(self._e.inflight))
        if k == 0:
            return ()
        return tuple(f.req for f in list(self._e.inflight.values())[-k:])

    @property
    def num_queued(self) -> int:
        m = self._e.metrics
        return 0 if m is None else min(m.num_waiting, len(self._e.inflight))

    @property
    def num_running(self) -> int:
        """Requests running on the engine as of the last scrape."""
        m = self._e.metrics
        return 0 if m is None else m.num_running

    @property
    def num_outstanding(self) -> int:
        """Requests the proxy sent here that have not completed (exact)."""
        return len(self._e.inflight)

    def _unscrapable(self, name: str) -> UnscrapableFieldError:
        return UnscrapableFieldError(
            f"a design read ReplicaView.{name}, which a router in front of real engines cannot "
            f"see (metrics_interval_s > 0): use {', '.join(sorted(SCRAPED_FIELDS))} (as of the "
            "last scrape, see metrics_age_s) or num_outstanding (the router's own count)"
        )

    @property
    def running(self) -> tuple[RunningRequest, ...]:
        raise self._unscrapable("running")

    def cached_prefix(self, request: Request) -> int:
        raise self._unscrapable("cached_prefix")

    @property
    def prefix_cache_blocks(self) -> int:
        raise self._unscrapable("prefix_cache_blocks")


class _Histogram:
    __slots__ = ("counts", "n", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(_BUCKETS) + 1)
        self.n = 0
        self.total = 0.0

    def add(self, x: float) -> None:
        self.counts[bisect.bisect_left(_BUCKETS, x)] += 1
        self.n += 1
        self.total += x

    def text(self, name: str) -> str:
        out = [f"# TYPE {name} histogram"]
        acc = 0
        for bound, c in zip((*_BUCKETS, math.inf), self.counts, strict=True):
            acc += c
            le = "+Inf" if bound == math.inf else f"{bound:g}"
            out.append(f'{name}_bucket{{le="{le}"}} {acc}')
        out += [f"{name}_sum {self.total:.6f}", f"{name}_count {self.n}"]
        return "\n".join(out) + "\n"


class ServeStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """The proxy's counters at one moment (see :meth:`Serving.statistics`)."""

    router: str
    """The router deciding now (the fallback's name once a design has failed)."""
    design_failure: str | None
    queued: int
    in_flight: int
    completed: int
    failed: int
    cancelled: int
    rejected: int
    holds: int
    """``schedule()`` calls that left requests in the global queue."""
    decisions: dict[str, int]
    """Requests routed to each engine, by URL."""
    engines_up: dict[str, bool]
    median_routing_s: float
    """Median time from a request's arrival to its upstream send (NaN before the first)."""


class _Baseline:
    """A baseline router run in this process."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.name = router.name

    def setup(self, cluster: ClusterView, rng: np.random.Generator) -> None:
        self.router.setup(cluster, rng)

    def schedule(self, cluster: ClusterView) -> list[tuple[int, Request]]:
        return self.router.schedule(cluster)

    def close(self) -> None:
        pass


_Decider = _Baseline | SandboxedRouter


def _error(status: int, message: str, retry_after: int | None = None) -> web.Response:
    kind = "invalid_request_error" if status < 500 else "server_error"
    body = {"error": {"message": message, "type": kind, "param": None, "code": status}}
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return web.json_response(body, status=status, headers=headers)


def _sse_error(message: str) -> bytes:
    body = {"error": {"message": message, "type": "server_error", "param": None, "code": 502}}
    return f"data: {json.dumps(body)}\n\n".encode()


class _EngineFailed(Exception):
    """The engine failed the request (``down``: it is taken out of rotation)."""

    def __init__(self, message: str, status: int, down: bool, reached: bool) -> None:
        super().__init__(message)
        self.status, self.down, self.reached = status, down, reached


class _Proxy:
    def __init__(self, engines: list[_Engine], decider: _Decider, fallback: str, seed: int, *,
                 max_queue: int, read_timeout_s: float, queue_timeout_s: float,
                 scrape_interval_s: float, design: bool) -> None:  # fmt: skip
        self.engines = engines
        self.decider: _Decider = decider
        self.fallback = fallback
        self.seed = seed
        self.design = design
        self.design_failure: str | None = None
        self.max_queue = max_queue
        self.read_timeout_s = read_timeout_s
        self.queue_timeout_s = queue_timeout_s
        self.scrape_interval_s = scrape_interval_s
        self.t0 = time.monotonic()
        self.next_id = 0
        self.waiting: dict[int, Request] = {}  # the global queue, in arrival order
        self.flights: dict[int, _Flight] = {}
        self.holds = self.completed = self.failed = self.cancelled = self.rejected = 0
        self.ttft, self.e2e = _Histogram(), _Histogram()
        self.routing: deque[float] = deque(maxlen=100_000)
        self.draining = False
        self.idle = anyio.Event()
        self.idle.set()
        self.session: aiohttp.ClientSession | None = None
        self.sources: dict[str, int] = {"ids": 0, "tokenize": 0, "estimate": 0}

    # -- routing ---------------------------------------------------------------------------------
    def now(self) -> float:
        return time.monotonic() - self.t0

    def cluster(self, trigger: Trigger) -> tuple[ClusterView, list[_Engine]]:
        up = [e for e in self.engines if e.up]
        return ClusterView(self.now(), trigger, self.waiting, tuple(e.view for e in up)), up

    def setup(self) -> None:
        cluster = ClusterView(0.0, "arrival", {}, tuple(e.view for e in self.engines))
        self.decider.setup(cluster, np.random.default_rng(self.seed))

    def schedule(self, trigger: Trigger) -> None:
        """Call the router with the cluster now and apply its decisions."""
        cluster, up = self.cluster(trigger)
        if not up:
            if self.waiting:
                self.holds += 1
            return
        try:
            self._apply(self.decider.schedule(cluster), up)
        except (DesignError, UnscrapableFieldError) as e:
            if not self.design or self.design_failure is not None:
                raise
            self._fall_back(str(e))
            cluster, up = self.cluster(trigger)
            self._apply(self.decider.schedule(cluster), up)
        if self.waiting:
            self.holds += 1

    def _fall_back(self, why: str) -> None:
        name = self.decider.name
        self.decider.close()
        self.design_failure = f"design {name!r} failed: {why}"
        self.decider = _Baseline(resolve_router(self.fallback))
        self.setup()
        log.error("serve_design_failed", design=name, fallback=self.fallback, error=why)

    def _apply(self, decisions: list[tuple[int, Request]], up: list[_Engine]) -> None:
        seen: set[int] = set()
        checked: list[tuple[_Engine, _Flight]] = []
        for pos, req in decisions:
            if not (isinstance(pos, int) and 0 <= pos < len(up)):
                raise DesignError(
                    f"router {self.decider.name!r} chose replica {pos!r}, but the cluster has "
                    f"{len(up)}: return a position in cluster.replicas"
                )
            if req.id not in self.waiting or req.id in seen:
                raise DesignError(
                    f"router {self.decider.name!r} routed request {req.id}, which is not in the "
                    "global queue: route only requests from cluster.queue, each once"
                )
            seen.add(req.id)
            checked.append((up[pos], self.flights[req.id]))
        for engine, flight in checked:
            del self.waiting[flight.id]
            flight.engine = engine
            engine.inflight[flight.id] = flight
            engine.decisions += 1
            flight.routed.set()

    # -- requests --------------------------------------------------------------------------------
    async def prompt_tokens(self, body: dict[str, Any], chat: bool) -> tuple[int, PromptSource]:
        if chat:
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                raise ValueError("'messages' must be a non-empty list")
            text = "\n".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))
        else:
            prompt = body.get("prompt")
            if isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
                return len(prompt), "ids"
            if not (isinstance(prompt, str) and prompt):
                raise ValueError("'prompt' must be a non-empty string or list of token ids")
            text = prompt
        engine = next((e for e in self.engines if e.up and e.tokenize), None)
        if engine is not None and self.session is not None:
            count = await _tokenize(self.session, engine.url, text)
            if count is not None:
                return count, "tokenize"
        return max(1, len(text) // CHARS_PER_TOKEN), "estimate"

    async def generate(self, request: web.Request) -> web.StreamResponse:
        received = time.monotonic()
        chat = request.path.endswith("/chat/completions")
        if self.draining:
            self.rejected += 1
            return _error(503, "the proxy is shutting down: retry on another", RETRY_AFTER_S)
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError as e:
            return _error(400, f"the request body is not valid JSON ({e})")
        if not isinstance(body, dict):
            return _error(400, "the request body must be a JSON object")
        try:
            prompt, source = await self.prompt_tokens(body, chat)
        except ValueError as e:
            return _error(400, str(e))
        if len(self.waiting) >= self.max_queue:
            self.rejected += 1
            return _error(
                429, f"the proxy's queue is full ({self.max_queue} requests wait to be routed): "
                "retry later", RETRY_AFTER_S,
            )  # fmt: skip
        rid, self.next_id = self.next_id, self.next_id + 1
        req = Request(rid, received - self.t0, prompt)
        flight = _Flight(rid, req, raw, request.path, chat, bool(body.get("stream")), source,
                         received)  # fmt: skip
        self.sources[source] += 1
        self.flights[rid] = flight
        self.idle = anyio.Event() if self.idle.is_set() else self.idle
        self.waiting[rid] = req
        outcome, status = "cancelled", 499
        try:
            resp, outcome, status = await self._serve(request, flight)
            return resp
        finally:
            self._finish(flight, outcome, status)

    async def _serve(
        self, request: web.Request, flight: _Flight
    ) -> tuple[web.StreamResponse, str, int]:
        self.schedule("arrival")
        while True:
            if flight.engine is None:
                with anyio.move_on_after(self.queue_timeout_s):
                    await flight.routed.wait()
                if flight.engine is None:
                    msg = (f"no engine took the request within {self.queue_timeout_s:g} s: "
                           "the engines are down or full; retry later")  # fmt: skip
                    return _error(503, msg, RETRY_AFTER_S), "timeout", 503
            engine = flight.engine
            try:
                resp = await self._forward(request, flight, engine)
            except ConnectionResetError:
                return web.Response(status=499), "cancelled", 499  # the client hung up
            except _EngineFailed as e:
                if e.down:
                    self._down(engine, str(e))
                if not e.reached and any(x.up for x in self.engines):
                    # Nothing reached the engine: route the request again, elsewhere.
                    engine.inflight.pop(flight.id, None)
                    flight.engine, flight.routed = None, anyio.Event()
                    self.waiting[flight.id] = flight.req
                    self.waiting = dict(sorted(self.waiting.items()))
                    self.schedule("arrival")
                    continue
                return _error(e.status, str(e)), "failed", e.status
            if flight.error is not None:
                return resp, "failed", 502
            return resp, "completed", resp.status

    def _down(self, engine: _Engine, why: str) -> None:
        if engine.up:
            engine.up = False
            log.warning("serve_engine_down", engine=engine.url, error=why)

    async def _forward(
        self, request: web.Request, flight: _Flight, engine: _Engine
    ) -> web.StreamResponse:
        assert self.session is not None
        headers = {"Content-Type": "application/json"}
        if "Authorization" in request.headers:
            headers["Authorization"] = request.headers["Authorization"]
        flight.sent = time.monotonic()
        self.routing.append(flight.sent - flight.arrived)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=5.0,
                                        sock_read=self.read_timeout_s)  # fmt: skip
        url = engine.url + flight.path
        try:
            async with self.session.post(url, data=flight.raw, headers=headers,
                                         timeout=timeout) as up:  # fmt: skip
                try:
                    if up.status != 200:
                        body = await up.read()
                        ctype = up.headers.get("Content-Type", "application/json")
                        return web.Response(body=body, status=up.status,
                                            headers={"Content-Type": ctype})  # fmt: skip
                    if not flight.stream:
                        return await self._whole(flight, engine, up)
                    return await self._stream(request, flight, engine, up)
                except BaseException:
                    up.close()  # the client hung up, or the engine failed: drop the upstream
                    raise
        except (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError) as e:
            # Refused, or closed before answering: nothing came back, route it again.
            raise _EngineFailed(
                f"engine {engine.url} is unreachable ({type(e).__name__})", 502, True,
                reached=False,
            ) from None  # fmt: skip
        except ConnectionResetError:
            raise  # the client's connection (aiohttp's error for it is also a ClientError)
        except TimeoutError:
            raise _EngineFailed(
                f"engine {engine.url} did not answer within {self.read_timeout_s:g} s", 504,
                True, reached=True,
            ) from None  # fmt: skip
        except aiohttp.ClientError as e:
            raise _EngineFailed(
                f"engine {engine.url} failed ({type(e).__name__}: {e})", 502, True, reached=True
            ) from None

    async def _whole(
        self, flight: _Flight, engine: _Engine, up: aiohttp.ClientResponse
    ) -> web.Response:
        body = await up.read()
        try:
            doc = json.loads(body)
            usage = doc.get("usage") if isinstance(doc, dict) else None
            if not (isinstance(doc, dict) and isinstance(doc.get("choices"), list)):
                raise ValueError("no 'choices'")
        except ValueError:
            raise _EngineFailed(
                f"engine {engine.url} answered with a malformed completion (not OpenAI JSON)",
                502, False, reached=True,
            ) from None  # fmt: skip
        flight.first = time.monotonic()
        if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
            flight.tokens = usage["completion_tokens"]
        return web.Response(body=body, status=200, headers={"Content-Type": "application/json"})

    async def _stream(
        self, request: web.Request, flight: _Flight, engine: _Engine, up: aiohttp.ClientResponse
    ) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        done = False
        try:
            async for line in up.content:
                if line.startswith(b"data:"):
                    payload = line[5:].strip()
                    if payload == b"[DONE]":
                        done = True
                    else:
                        chunk = json.loads(payload)
                        if _has_token(chunk):
                            if flight.tokens == 0:
                                flight.first = time.monotonic()
                            flight.tokens += 1
                elif line.strip() and not line.startswith((b":", b"event:", b"id:", b"retry:")):
                    raise ValueError(f"a line that is not server-sent events: {line[:80]!r}")
                await resp.write(line)
            if not done:
                raise aiohttp.ClientPayloadError("the stream ended before [DONE]")
        except ConnectionResetError:
            raise  # the client hung up (aiohttp's error for it is also a ClientError)
        except (ValueError, aiohttp.ClientError, TimeoutError) as e:
            garbage = isinstance(e, ValueError)
            why = (
                f"engine {engine.url} sent a malformed stream ({e})"
                if garbage
                else f"engine {engine.url} failed mid-stream ({type(e).__name__})"
            )
            if not garbage:
                self._down(engine, why)
            with anyio.CancelScope(shield=True):
                try:
                    await resp.write(_sse_error(why))
                    await resp.write_eof()
                except ConnectionError:
                    pass
            flight.error = why
            return resp
        await resp.write_eof()
        return resp

    def _finish(self, flight: _Flight, outcome: str, status: int) -> None:
        self.waiting.pop(flight.id, None)
        self.flights.pop(flight.id, None)
        engine = flight.engine
        routed = engine is not None and engine.inflight.pop(flight.id, None) is not None
        end = time.monotonic()
        if outcome == "completed" and status == 200:
            self.completed += 1
            self.e2e.add(end - flight.arrived)
            if not math.isnan(flight.first):
                self.ttft.add(flight.first - flight.arrived)
        elif outcome == "cancelled":
            self.cancelled += 1
        else:
            self.failed += 1
        log.info(
            "serve_request", id=flight.id, engine=engine.url if engine else None,
            outcome=outcome, status=status, prompt_tokens=flight.req.num_prefill_tokens,
            prompt_tokens_from=flight.prompt_source, tokens=flight.tokens,
            queued_s=round((flight.sent if not math.isnan(flight.sent) else end)
                           - flight.arrived, 6),
            ttft_s=None if math.isnan(flight.first) else round(flight.first - flight.arrived, 6),
            e2e_s=round(end - flight.arrived, 6), error=flight.error,
        )  # fmt: skip
        if not self.flights:
            self.idle.set()
        if routed:
            self.schedule("completion")

    # -- engines ---------------------------------------------------------------------------------
    async def scrape_one(self, engine: _Engine) -> None:
        assert self.session is not None
        try:
            m = await scrape(self.session, engine.url, timeout_s=max(1.0, self.scrape_interval_s))
        except MetricsError as e:
            if engine.up:
                self._down(engine, str(e))
            elif engine.metrics is None:
                log.warning("serve_engine_unavailable", engine=engine.url, error=str(e))
            return
        engine.metrics = m
        if m.num_blocks is not None:
            engine.num_blocks = m.num_blocks
        if m.block_size is not None:
            engine.block_size = m.block_size
        if not engine.up:
            engine.tokenize = await _tokenize(self.session, engine.url, "hello") is not None
            engine.up = True
            log.info("serve_engine_up", engine=engine.url, tokenize=engine.tokenize)
            if self.waiting:
                self.schedule("ready")

    async def scrape_loop(self, engine: _Engine) -> None:
        while True:
            await anyio.sleep(self.scrape_interval_s)
            await self.scrape_one(engine)

    # -- endpoints -------------------------------------------------------------------------------
    async def models(self, request: web.Request) -> web.Response:
        assert self.session is not None
        for engine in self.engines:
            if not engine.up:
                continue
            try:
                async with self.session.get(engine.url + "/v1/models") as up:
                    if up.status == 200:
                        body = await up.read()
                        ctype = {"Content-Type": "application/json"}
                        return web.Response(body=body, status=200, headers=ctype)
            except aiohttp.ClientError:
                continue
        return _error(503, "no engine is up to list its models", RETRY_AFTER_S)

    def health_doc(self) -> dict[str, Any]:
        sources = [s for s, n in self.sources.items() if n]
        return {
            "status": "degraded" if self.design_failure else "ok",
            "router": self.decider.name,
            "fallback": self.fallback,
            "design_failure": self.design_failure,
            "draining": self.draining,
            "prompt_tokens_from": sources
            or (["tokenize"] if any(e.tokenize for e in self.engines) else ["estimate"]),
            "engines": [
                {"url": e.url, "up": e.up, "in_flight": len(e.inflight),
                 "metrics_age_s": None if e.metrics is None else round(e.view.metrics_age_s, 3)}
                for e in self.engines
            ],
        }  # fmt: skip

    async def health(self, request: web.Request) -> web.Response:
        doc = self.health_doc()
        return web.json_response(doc, status=200 if any(e.up for e in self.engines) else 503)

    def metrics_text(self) -> str:
        out = [
            "# TYPE glia_serve_queue_length gauge",
            f"glia_serve_queue_length {len(self.waiting)}",
            "# TYPE glia_serve_in_flight gauge",
            f"glia_serve_in_flight {sum(len(e.inflight) for e in self.engines)}",
            "# TYPE glia_serve_holds_total counter",
            f"glia_serve_holds_total {self.holds}",
            "# TYPE glia_serve_decisions_total counter",
            *(
                f'glia_serve_decisions_total{{engine="{e.url}"}} {e.decisions}'
                for e in self.engines
            ),
            "# TYPE glia_serve_engine_up gauge",
            *(f'glia_serve_engine_up{{engine="{e.url}"}} {int(e.up)}' for e in self.engines),
            "# TYPE glia_serve_requests_total counter",
            f'glia_serve_requests_total{{outcome="completed"}} {self.completed}',
            f'glia_serve_requests_total{{outcome="failed"}} {self.failed}',
            f'glia_serve_requests_total{{outcome="cancelled"}} {self.cancelled}',
            f'glia_serve_requests_total{{outcome="rejected"}} {self.rejected}',
            "# TYPE glia_serve_design_failed gauge",
            f"glia_serve_design_failed {int(self.design_failure is not None)}",
            "# TYPE glia_serve_router_info gauge",
            f'glia_serve_router_info{{router="{self.decider.name}",fallback="{self.fallback}"}} 1',
        ]
        return (
            "\n".join(out)
            + "\n"
            + self.ttft.text("glia_serve_ttft_seconds")
            + (self.e2e.text("glia_serve_e2e_seconds"))
        )

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(text=self.metrics_text(), content_type="text/plain")

    def statistics(self) -> ServeStatistics:
        return ServeStatistics(
            router=self.decider.name, design_failure=self.design_failure,
            queued=len(self.waiting), in_flight=sum(len(e.inflight) for e in self.engines),
            completed=self.completed, failed=self.failed, cancelled=self.cancelled,
            rejected=self.rejected, holds=self.holds,
            decisions={e.url: e.decisions for e in self.engines},
            engines_up={e.url: e.up for e in self.engines},
            median_routing_s=stats.median(self.routing) if self.routing else math.nan,
        )  # fmt: skip


def _has_token(chunk: Any) -> bool:
    if not isinstance(chunk, dict):
        raise ValueError("an event that is not a JSON object")
    if "error" in chunk:
        return False
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        raise ValueError("an event without 'choices'")
    if not choices or not isinstance(choices[0], dict):
        return False
    c = choices[0]
    delta = c.get("delta")
    return bool(c.get("text") or (isinstance(delta, dict) and delta.get("content")))


async def _tokenize(session: aiohttp.ClientSession, url: str, text: str) -> int | None:
    """The engine's token count of ``text`` from its ``/tokenize`` (vLLM: ``prompt``, answers
    ``count``; llama.cpp: ``content``, answers ``tokens``), or ``None`` where it has none."""
    try:
        async with session.post(url + "/tokenize", json={"prompt": text, "content": text},
                                timeout=aiohttp.ClientTimeout(total=2.0)) as resp:  # fmt: skip
            if resp.status != 200:
                return None
            doc = await resp.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None
    if isinstance(doc, dict):
        if isinstance(doc.get("count"), int):
            return int(doc["count"])
        if isinstance(doc.get("tokens"), list):
            return len(doc["tokens"])
    return None


class Serving:
    """A running proxy: its URL, its counters, and a way to drain it."""

    def __init__(self, url: str, proxy: _Proxy) -> None:
        self.url = url
        """The proxy's base URL (``http://host:port``)."""
        self._proxy = proxy

    def statistics(self) -> ServeStatistics:
        """The proxy's counters now."""
        return self._proxy.statistics()

    def health(self) -> dict[str, Any]:
        """What ``GET /health`` answers."""
        return self._proxy.health_doc()

    async def drain(self, timeout_s: float = 30.0) -> bool:
        """Refuse new requests (503) and wait up to ``timeout_s`` for those in the proxy to
        finish; whether they all did."""
        self._proxy.draining = True
        with anyio.move_on_after(timeout_s):
            await self._proxy.idle.wait()
        return not self._proxy.flights


@dataclass(frozen=True)
class _Options:
    max_queue: int
    read_timeout_s: float
    queue_timeout_s: float
    scrape_interval_s: float


@asynccontextmanager
async def serve(
    engines: Sequence[str],
    *,
    router: str = "llq",
    design: str | None = None,
    fallback: str = "llq",
    trust_design: bool = False,
    host: str = "127.0.0.1",
    port: int = 9000,
    max_queue: int = 1024,
    scrape_interval_s: float = 0.5,
    read_timeout_s: float = 60.0,
    queue_timeout_s: float = 300.0,
    call_timeout_s: float = 1.0,
    num_blocks: int = 1000,
    block_size: int = 16,
    seed: int = 0,
) -> AsyncIterator[Serving]:
    """Serve the routing proxy in front of ``engines`` (base URLs) while the context is open.

    ``design`` is a design's source code (run in the sandbox; ``trust_design`` runs it without
    the OS boundary, as ``--trust-design``), else ``router`` names a baseline. ``fallback``
    names the baseline that takes over if the design fails. ``port`` 0 picks a free port.
    ``num_blocks`` and ``block_size`` are the engines' KV capacity where their metrics do not
    say it. Raises :class:`~glia.InputError` for a bad argument and
    :class:`~glia.DesignError` for a design that does not load.
    """
    if not engines:
        raise InputError("no engine given: pass --engine URL once per engine")
    for url in engines:
        if not url.startswith(("http://", "https://")):
            raise InputError(f"engine URL {url!r} is not http(s): give e.g. http://host:8000")
    if max_queue < 1:
        raise InputError(f"max_queue is {max_queue}: it must be at least 1")
    if not scrape_interval_s > 0:
        raise InputError(f"scrape_interval_s is {scrape_interval_s}: give seconds above 0")
    resolve_router(fallback)  # an unknown name fails here, before anything starts
    decider: _Decider
    if design is not None:
        limits = Limits(wall_s=30.0, cpu_s=1e7, trusted=trust_design)
        decider = await anyio.to_thread.run_sync(
            lambda: SandboxedRouter(design, limits, call_timeout_s=call_timeout_s)
        )
    else:
        decider = _Baseline(resolve_router(router))
    states = [_Engine(i, url, num_blocks, block_size) for i, url in enumerate(engines)]
    proxy = _Proxy(states, decider, fallback, seed, max_queue=max_queue,
                   read_timeout_s=read_timeout_s, queue_timeout_s=queue_timeout_s,
                   scrape_interval_s=scrape_interval_s, design=design is not None)  # fmt: skip
    app = web.Application()
    app.router.add_post("/v1/completions", proxy.generate)
    app.router.add_post("/v1/chat/completions", proxy.generate)
    app.router.add_get("/v1/models", proxy.models)
    app.router.add_get("/health", proxy.health)
    app.router.add_get("/metrics", proxy.metrics)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0, handler_cancellation=True)
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    try:
        async with aiohttp.ClientSession(connector=connector) as session:
            proxy.session = session
            async with anyio.create_task_group() as tg:
                for eng in states:
                    tg.start_soon(proxy.scrape_one, eng)
            try:
                proxy.setup()
            except DesignError as e:
                proxy._fall_back(str(e))
            await runner.setup()
            site = web.TCPSite(runner, host, port)
            try:
                await site.start()
            except OSError as e:
                raise InputError(
                    f"cannot listen on {host}:{port} ({e.strerror}): choose another --port"
                ) from None
            url = f"http://{host}:{runner.addresses[0][1]}"
            async with anyio.create_task_group() as tg:
                for eng in states:
                    tg.start_soon(proxy.scrape_loop, eng)
                log.info("serve_ready", url=url, router=proxy.decider.name,
                         engines=[x.url for x in states],
                         up=[x.url for x in states if x.up])  # fmt: skip
                try:
                    yield Serving(url, proxy)
                finally:
                    tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await runner.cleanup()
            proxy.decider.close()
