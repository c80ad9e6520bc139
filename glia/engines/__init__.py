"""Real engines: designs and workloads leave the simulator.

:func:`bench` replays a workload against any OpenAI-compatible endpoint (a vLLM, SGLang or
llama.cpp server) and measures every request from its stream, into the simulator's own table
and summary, so that a measured run and a simulated one compare column for column.
"""

from ._bench import BenchFailure, BenchOutcome, bench

__all__ = ["BenchFailure", "BenchOutcome", "bench"]
