"""Engine metrics as a real router sees them: scraped from an engine's Prometheus ``/metrics``.

A routing proxy cannot read an engine's queue, running set or KV memory directly; it sees them
as of the last scrape of the engine's ``/metrics``. This module reads that text for the three
engines the project targets and says how old each reading is, the groundwork of ``glia serve``'s
views (issue 16). The names each field maps to:

* ``num_running``: vLLM ``vllm:num_requests_running``, SGLang ``sglang:num_running_reqs``,
  llama.cpp ``llamacpp:requests_processing``;
* ``num_waiting``: vLLM ``vllm:num_requests_waiting``, SGLang ``sglang:num_queue_reqs``,
  llama.cpp ``llamacpp:requests_deferred``;
* ``kv_usage``: vLLM ``vllm:kv_cache_usage_perc`` (``vllm:gpu_cache_usage_perc`` before 0.10),
  SGLang ``sglang:token_usage``, llama.cpp ``llamacpp:kv_cache_usage_ratio``.

All three report KV usage as a fraction in [0, 1] (vLLM's ``_perc`` name notwithstanding).
Labelled samples of one name (one per model or engine index) are summed: a router sees the
engine as a whole. vLLM also says its KV capacity, as the labels ``num_gpu_blocks`` and
``block_size`` of ``vllm:cache_config_info``; where an engine does, they are read too.
"""

from __future__ import annotations

import time

import aiohttp
import msgspec

from glia._errors import GliaError

__all__ = ["EngineMetrics", "MetricsError", "parse_metrics", "scrape"]

# The names each field may carry, in order of preference (first found wins).
_NAMES: dict[str, tuple[str, ...]] = {
    "num_running": (
        "vllm:num_requests_running",
        "sglang:num_running_reqs",
        "llamacpp:requests_processing",
    ),
    "num_waiting": (
        "vllm:num_requests_waiting",
        "sglang:num_queue_reqs",
        "llamacpp:requests_deferred",
    ),
    "kv_usage": (
        "vllm:kv_cache_usage_perc",
        "vllm:gpu_cache_usage_perc",  # vLLM before 0.10
        "sglang:token_usage",
        "llamacpp:kv_cache_usage_ratio",
    ),
}


class MetricsError(GliaError):
    """An engine's ``/metrics`` could not be read or lacks the fields a router needs."""


class EngineMetrics(msgspec.Struct, frozen=True, kw_only=True):
    """One scrape of an engine: its queue, running set and KV usage, and when it was read.

    ``scraped_at`` is a ``time.monotonic()`` reading; :meth:`age` is how stale the values are.
    """

    num_running: int
    num_waiting: int
    kv_usage: float
    scraped_at: float
    num_blocks: int | None = None
    """KV capacity in blocks, where the engine says it (vLLM's ``vllm:cache_config_info``)."""
    block_size: int | None = None
    """Tokens per KV block, where the engine says it."""

    def age(self, now: float | None = None) -> float:
        """Seconds since this scrape (``now`` defaults to ``time.monotonic()``)."""
        return (time.monotonic() if now is None else now) - self.scraped_at


def _samples(text: str) -> dict[str, float]:
    """Sum of the samples of each metric name in Prometheus text exposition format."""
    sums: dict[str, float] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        # The name ends at a label set or at whitespace; the value is the next field (a
        # timestamp may follow it).
        brace = line.find("{")
        if brace != -1:
            name = line[:brace]
            rest = line[line.rfind("}") + 1 :]
        else:
            name, _, rest = line.partition(" ")
        fields = rest.split()
        if not fields:
            continue
        try:
            value = float(fields[0])
        except ValueError:
            continue
        sums[name] = sums.get(name, 0.0) + value
    return sums


_CACHE_INFO = "vllm:cache_config_info{"


def _cache_config(text: str) -> tuple[int | None, int | None]:
    """``num_gpu_blocks`` and ``block_size`` from vLLM's ``vllm:cache_config_info`` labels."""
    start = text.find(_CACHE_INFO)
    if start == -1:
        return None, None
    end = text.find("}", start)
    labels: dict[str, str] = {}
    for part in text[start + len(_CACHE_INFO) : end].split(","):
        key, _, value = part.partition("=")
        labels[key.strip()] = value.strip().strip('"')

    def number(key: str) -> int | None:
        try:
            value = int(labels[key])
        except (KeyError, ValueError):
            return None
        return value if value > 0 else None

    return number("num_gpu_blocks"), number("block_size")


def parse_metrics(text: str, scraped_at: float) -> EngineMetrics:
    """Read vLLM's, SGLang's or llama.cpp's metric names from Prometheus text."""
    sums = _samples(text)
    found: dict[str, float] = {}
    for field, names in _NAMES.items():
        for name in names:
            if name in sums:
                found[field] = sums[name]
                break
        else:
            raise MetricsError(
                f"the engine's /metrics has none of {', '.join(names)} (for {field}): serve a "
                "vLLM, SGLang or llama.cpp server with metrics on (llama.cpp: --metrics)"
            )
    num_blocks, block_size = _cache_config(text)
    return EngineMetrics(
        num_running=round(found["num_running"]),
        num_waiting=round(found["num_waiting"]),
        kv_usage=found["kv_usage"],
        scraped_at=scraped_at,
        num_blocks=num_blocks,
        block_size=block_size,
    )


async def scrape(session: aiohttp.ClientSession, url: str, timeout_s: float = 2.0) -> EngineMetrics:
    """Fetch and read ``url``'s ``/metrics`` (``url`` is the engine's base URL)."""
    target = url.rstrip("/") + "/metrics"
    try:
        async with session.get(target, timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            if resp.status != 200:
                raise MetricsError(f"{target} answered HTTP {resp.status}: is it an engine?")
            text = await resp.text()
    except (aiohttp.ClientError, TimeoutError) as e:
        raise MetricsError(
            f"cannot scrape {target} ({type(e).__name__}): is the engine up?"
        ) from None
    return parse_metrics(text, time.monotonic())
