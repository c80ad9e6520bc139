"""Named experiment setups: a cluster and a workload."""

from __future__ import annotations

import msgspec

from glia._errors import unknown_name

from ._config import ClusterConfig, WorkloadConfig

__all__ = ["PRESETS", "Preset", "preset"]


class Preset(msgspec.Struct, frozen=True, kw_only=True):
    """A named cluster + workload."""

    name: str
    description: str
    cluster: ClusterConfig
    workload: WorkloadConfig


_PAPER_CLUSTER = ClusterConfig(
    num_replicas=4,
    gpu="A10",
    model="llama-3-8b",
    num_blocks=2240,
    block_size=16,
    chunk_size=8192,
    max_batch_size=128,
    watermark=0.01,
)

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="glia-routing",
            description=(
                "The Glia paper's routing study: 4 x A10 serving Llama-3-8B (2,240 KV blocks "
                "each), ShareGPT first turns with 5% of prompts and 5% of outputs inflated 10x, "
                "log-normal arrivals (sigma 2) at 7.5 QPS for 1,000 s"
            ),
            cluster=_PAPER_CLUSTER,
            workload=WorkloadConfig(
                trace="sharegpt_first_turn",
                arrivals="lognormal",
                qps=7.5,
                duration_s=1000.0,
                sigma=2.0,
                prompt_inflation=0.05,
                output_inflation=0.05,
                inflation_factor=10.0,
                max_tokens=8192,
            ),
        ),
        Preset(
            name="azure-conv",
            description=(
                "One hour of Azure's production conversation trace (Splitwise, 2023; 19,366 "
                "requests, 5.5 req/s, bursty) replayed on the paper's 4 x A10 cluster"
            ),
            cluster=_PAPER_CLUSTER,
            workload=WorkloadConfig(trace="azure_conv", arrivals="trace", max_tokens=8192),
        ),
        Preset(
            name="chat-prefix",
            description=(
                "Multi-turn chat: ShareGPT messages threaded into conversations of 4 turns on "
                "average (each prompt carries its history), Poisson arrivals at 4 QPS for "
                "1,000 s on the paper's cluster, with 30% of each replica's KV blocks caching "
                "conversation prefixes"
            ),
            cluster=msgspec.structs.replace(_PAPER_CLUSTER, prefix_cache=0.3),
            workload=WorkloadConfig(
                trace="sharegpt_first_turn",
                arrivals="poisson",
                qps=4.0,
                duration_s=1000.0,
                turns=4.0,
                max_tokens=8192,
            ),
        ),
        Preset(
            name="sharegpt-conv",
            description=(
                "Whole ShareGPT conversations (long prompts, mean 2,340 tokens; Sarathi-Serve's "
                "trace) with Poisson arrivals at 1.2 QPS for 1,000 s on the paper's cluster, "
                "below its saturation point"
            ),
            cluster=_PAPER_CLUSTER,
            workload=WorkloadConfig(
                trace="sharegpt", arrivals="poisson", qps=1.2, duration_s=1000.0, max_tokens=8192
            ),
        ),
    )
}


def preset(name: str) -> Preset:
    """The preset called ``name``."""
    try:
        return PRESETS[name]
    except KeyError:
        raise unknown_name("preset", name, PRESETS) from None
