"""Clusters and workloads that several tasks' presets share."""

from __future__ import annotations

import msgspec

from glia.sim import Autoscale, ClusterConfig, WorkloadConfig

__all__ = [
    "AUTOSCALED_CLUSTER",
    "PAPER_CLUSTER",
    "PAPER_WORKLOAD",
    "PREFIX_CLUSTER",
    "PREFIX_WORKLOAD",
]

PAPER_CLUSTER = ClusterConfig(
    num_replicas=4,
    gpu="A10",
    model="llama-3-8b",
    num_blocks=2240,
    block_size=16,
    chunk_size=8192,
    max_batch_size=128,
    watermark=0.01,
)
"""The Glia paper's routing study: 4 x A10 serving Llama-3-8B."""

PAPER_WORKLOAD = WorkloadConfig(
    trace="sharegpt_first_turn",
    arrivals="lognormal",
    qps=7.5,
    duration_s=1000.0,
    sigma=2.0,
    prompt_inflation=0.05,
    output_inflation=0.05,
    inflation_factor=10.0,
    max_tokens=8192,
)
"""The paper's workload: ShareGPT first turns, 5 % of prompts and outputs inflated 10x."""

AUTOSCALED_CLUSTER = msgspec.structs.replace(
    PAPER_CLUSTER,
    num_replicas=8,
    autoscale=Autoscale(min_replicas=1, initial_replicas=2, cold_start_s=180.0),
)
"""A pool of 8 A10s; 2 serve at first; a new one loads Llama-3-8B for 3 minutes."""

PREFIX_CLUSTER = ClusterConfig(
    num_replicas=4,
    gpu="H100",
    model="qwen2.5-7b",
    block_size=16,
    chunk_size=8192,
    max_batch_size=256,
    watermark=0.01,
    prefix_cache=0.07,
    metrics_interval_s=0.5,
)
"""IBM's llm-d router study: 4 x H100 serving Qwen2.5-7B (66,490 KV blocks each, derived from
the GPU's memory); 7% of them (4,654 blocks) may cache prefixes, five of the six 14,000-token
prefixes; the router sees engine metrics scraped every 0.5 s."""

PREFIX_WORKLOAD = WorkloadConfig(
    trace="sharegpt_first_turn",
    arrivals="poisson",
    qps=85.0,
    duration_s=180.0,
    max_tokens=4096,
    prefix_groups=6,
    prefix_tokens=14_000,
    osl=64,
)
"""Prefix-heavy traffic: six groups of requests, each prompt a 14,000-token prefix shared by
its group then a ShareGPT first turn, 64 output tokens, Poisson arrivals at 85 QPS."""
