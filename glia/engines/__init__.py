"""Real engines: designs and workloads leave the simulator.

:func:`bench` replays a workload against any OpenAI-compatible endpoint (a vLLM, SGLang or
llama.cpp server) and measures every request from its stream, into the simulator's own table
and summary, so that a measured run and a simulated one compare column for column.
:func:`emulate` serves a cluster's replicas as engines that speak vLLM's API and metrics, timed
by the simulator's replica model in scaled real time. :func:`scrape` reads an engine's
Prometheus ``/metrics`` (vLLM, SGLang or llama.cpp names) as a routing proxy sees it, with its
age. :func:`serve` runs a design's router (or a baseline) in front of real engines, as an
OpenAI-compatible routing proxy. :func:`transfer` runs policies both ways, simulated and served
by emulated engines behind the proxy, and reports whether the simulator ranks them as the served
runs do.
"""

from ._bench import BenchFailure, BenchOutcome, bench
from ._emulate import DEFAULT_MAX_TOKENS, Emulated, emulate
from ._scrape import EngineMetrics, MetricsError, parse_metrics, scrape
from ._serve import EngineView, ServeStatistics, Serving, serve
from ._transfer import PolicyTransfer, TransferReport, transfer

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "BenchFailure",
    "BenchOutcome",
    "Emulated",
    "EngineMetrics",
    "EngineView",
    "MetricsError",
    "PolicyTransfer",
    "ServeStatistics",
    "Serving",
    "TransferReport",
    "bench",
    "emulate",
    "parse_metrics",
    "scrape",
    "serve",
    "transfer",
]
