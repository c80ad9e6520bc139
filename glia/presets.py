"""Named experiment setups: a cluster, a workload, the task they were made for, its default
router and SLO, and the workload each one's best design is also validated on.

Presets sit above the simulator (they name tasks and SLOs, which the simulator knows nothing
of) and below everything that runs experiments.
"""

from __future__ import annotations

import msgspec

from glia._errors import unknown_name
from glia.sim import Autoscale, ClusterConfig, WorkloadConfig

__all__ = ["PRESETS", "SECOND_WORKLOAD", "Preset", "Slo", "preset"]


class Slo(msgspec.Struct, frozen=True, kw_only=True):
    """A service-level objective on the 90th percentiles of TTFT and TPOT (seconds)."""

    p90_ttft_s: float
    p90_tpot_s: float


class Preset(msgspec.Struct, frozen=True, kw_only=True):
    """A named cluster + workload, made for one task (``routing``, ``scheduling`` or
    ``autoscaling``); ``router`` is the baseline router of the other tasks, ``slo`` what an
    autoscaler must keep."""

    name: str
    description: str
    cluster: ClusterConfig
    workload: WorkloadConfig
    task: str = "routing"
    router: str = "llq"
    slo: Slo | None = None


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

_GLIA_ROUTING_WORKLOAD = WorkloadConfig(
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

# A pool of 8 A10s; 2 serve at first; a new one loads Llama-3-8B for 3 minutes.
_AUTOSCALED_CLUSTER = msgspec.structs.replace(
    _PAPER_CLUSTER,
    num_replicas=8,
    autoscale=Autoscale(min_replicas=1, initial_replicas=2, cold_start_s=180.0),
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
            workload=_GLIA_ROUTING_WORKLOAD,
        ),
        Preset(
            name="glia-scheduling",
            description=(
                "The routing study's cluster and workload with least-loaded-queue routing: "
                "replicas often run out of KV memory and requests queue inside them, so the "
                "order they are admitted in (and who is preempted) decides mean and tail E2E"
            ),
            cluster=_PAPER_CLUSTER,
            workload=_GLIA_ROUTING_WORKLOAD,
            task="scheduling",
        ),
        Preset(
            name="diurnal",
            description=(
                "A two-hour compressed day: ShareGPT first turns with bursty gamma arrivals "
                "(CV 2) whose rate swings from 1.2 QPS at night to 10.8 QPS at noon (mean 6); "
                "a pool of 8 x A10 (Llama-3-8B) starting with 2, 3-minute cold starts, least-"
                "loaded-queue routing; SLO p90 TTFT <= 0.5 s and p90 TPOT <= 50 ms"
            ),
            cluster=_AUTOSCALED_CLUSTER,
            workload=WorkloadConfig(
                trace="sharegpt_first_turn",
                arrivals="gamma",
                cv=2.0,
                qps=6.0,
                duration_s=7200.0,
                diurnal=0.8,
                max_tokens=8192,
            ),
            task="autoscaling",
            slo=Slo(p90_ttft_s=0.5, p90_tpot_s=0.05),
        ),
        Preset(
            name="azure-autoscale",
            description=(
                "One hour of Azure's production conversation trace (long prompts, bursty, "
                "5.5 req/s) replayed on a pool of 8 x A10 starting with 2, 3-minute cold "
                "starts, least-loaded-queue routing; SLO p90 TTFT <= 2 s and p90 TPOT <= 100 ms"
            ),
            cluster=_AUTOSCALED_CLUSTER,
            workload=WorkloadConfig(trace="azure_conv", arrivals="trace", max_tokens=8192),
            task="autoscaling",
            slo=Slo(p90_ttft_s=2.0, p90_tpot_s=0.1),
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


SECOND_WORKLOAD = {"glia-routing": "azure-conv", "azure-conv": "glia-routing",
                   "sharegpt-conv": "glia-routing", "chat-prefix": "glia-routing",
                   "glia-scheduling": "azure-conv", "diurnal": "azure-autoscale",
                   "azure-autoscale": "diurnal"}  # fmt: skip
"""The workload each preset's best design is also validated on."""
