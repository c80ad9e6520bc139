"""Typed configuration of a simulated cluster and its workload.

Both are frozen msgspec Structs, so an experiment is fully described by plain data that can be
hashed, sent over the bus and written to JSON.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from glia._errors import InputError

from ._latency import Efficiency, LatencyModel, catalogue, derive_num_blocks

__all__ = [
    "ArrivalProcess",
    "Autoscale",
    "ClusterConfig",
    "ReplicaGroup",
    "ResolvedCluster",
    "ResolvedReplica",
    "WorkloadConfig",
]

ArrivalProcess = Literal["trace", "poisson", "lognormal", "gamma"]


class Autoscale(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How an autoscaled cluster may grow and shrink (used only when an autoscaler runs).

    The cluster's ``num_replicas`` replicas are the pool: at most that many are on at once.
    ``initial_replicas`` (default ``min_replicas``) are serving at time 0. A replica the
    autoscaler adds serves only after ``cold_start_s`` (loading the model); one it removes
    first drains: it takes no new requests and finishes every request it holds.
    """

    min_replicas: int = 1
    initial_replicas: int | None = None
    cold_start_s: float = 180.0

    def check(self, pool: int) -> tuple[int, int]:
        """``(min_replicas, initial_replicas)``, checked against a pool of ``pool``."""
        initial = self.initial_replicas if self.initial_replicas is not None else self.min_replicas
        if not 1 <= self.min_replicas <= pool:
            raise InputError(
                f"autoscale min_replicas is {self.min_replicas}: give 1..{pool} (the cluster's "
                f"num_replicas is the most that can be on)"
            )
        if not self.min_replicas <= initial <= pool:
            raise InputError(
                f"autoscale initial_replicas is {initial}: give {self.min_replicas}..{pool} "
                "(between min_replicas and the cluster's num_replicas)"
            )
        if not 0.0 <= self.cold_start_s < float("inf"):
            raise InputError(
                f"autoscale cold_start_s is {self.cold_start_s}: give the seconds a new replica "
                "takes to load its model, e.g. 180"
            )
        return self.min_replicas, initial


class ReplicaGroup(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``count`` replicas of one kind in a heterogeneous cluster; a field left ``None`` takes
    the cluster's value."""

    count: int = 1
    gpu: str | None = None
    model: str | None = None
    tp: int | None = None
    num_blocks: int | None = None
    efficiency: Efficiency | None = None
    precision: str | None = None
    kv_precision: str | None = None


class ClusterConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Replicas behind one router, each a vLLM-style engine with a Sarathi scheduler.

    All ``num_replicas`` replicas are alike unless ``groups`` is given: then replica ids are
    assigned group by group, in order (e.g. 2 x A10 then 2 x A100), each group taking the
    cluster's ``gpu``, ``model``, ``tp``, ``num_blocks`` and ``efficiency`` unless it sets its
    own, and ``num_replicas`` must equal the groups' total.

    ``num_blocks`` is the KV-cache capacity per replica in blocks of ``block_size`` tokens; when
    omitted it is derived from the GPU's memory. A request is admitted only if ``watermark`` of
    the blocks stay free; an iteration holds at most ``max_batch_size`` sequences and
    ``chunk_size`` tokens (decodes count one each; prefills are chunked into what is left).
    ``efficiency``, a profile fitted by ``glia calibrate``, replaces the catalogue's efficiency
    factors and overheads for this GPU. ``precision`` (weights) and ``kv_precision`` (KV cache),
    each ``bf16``, ``fp16`` or ``fp8``, override the model entry's; the KV capacity follows them.
    """

    num_replicas: int = 4
    gpu: str = "A10"
    model: str = "llama-3-8b"
    tp: int = 1
    num_blocks: int | None = None
    block_size: int = 16
    chunk_size: int = 8192
    max_batch_size: int = 128
    watermark: float = 0.01
    efficiency: Efficiency | None = None
    precision: str | None = None
    kv_precision: str | None = None
    groups: tuple[ReplicaGroup, ...] = ()
    prefix_cache: float = 0.0
    """Fraction of each replica's KV blocks that may hold cached prompt prefixes (0: no prefix
    caching)."""
    autoscale: Autoscale | None = None
    """Limits and cold start of an autoscaled cluster; without an autoscaler every replica
    serves all the time and this is not used."""
    metrics_interval_s: float = 0.0
    """Seconds of simulated time between scrapes of each replica's metrics, as a router in front
    of real engines scrapes their ``/metrics`` (0: policies see every replica exactly). Above 0 a
    router sees queue length, running count and KV usage as of the last scrape; see
    :class:`glia.sim.StaleReplicaView`."""

    def resolve(self) -> ResolvedCluster:
        """Check the config and look up its hardware; raises :class:`InputError` if impossible."""
        for name in ("num_replicas", "block_size", "chunk_size", "max_batch_size"):
            value = getattr(self, name)
            if value < 1:
                raise InputError(f"cluster {name} is {value}: it must be at least 1")
        if not 0.0 <= self.watermark < 1.0:
            raise InputError(
                f"cluster watermark is {self.watermark}: give a fraction in [0, 1), e.g. 0.01"
            )
        if not 0.0 <= self.prefix_cache <= 1.0:
            raise InputError(
                f"cluster prefix_cache is {self.prefix_cache}: give a fraction of the KV blocks "
                "in [0, 1] (0 turns prefix caching off)"
            )
        if not (0.0 <= self.metrics_interval_s < float("inf")):
            raise InputError(
                f"cluster metrics_interval_s is {self.metrics_interval_s}: give seconds >= 0 "
                "between metrics scrapes, e.g. 0.5 (0 shows policies exact replica state)"
            )
        groups = self.groups or (ReplicaGroup(count=self.num_replicas),)
        total = sum(g.count for g in groups)
        if any(g.count < 1 for g in groups) or total != self.num_replicas:
            counts = " + ".join(str(g.count) for g in groups)
            raise InputError(
                f"cluster num_replicas is {self.num_replicas} but its groups have {counts} "
                f"replicas: give every group a count of at least 1 and set num_replicas to their "
                f"total"
            )
        if self.autoscale is not None:
            self.autoscale.check(self.num_replicas)
        kinds = [self._resolve_group(g) for g in groups]
        replicas = tuple(k for k, g in zip(kinds, groups, strict=True) for _ in range(g.count))
        first = replicas[0]
        return ResolvedCluster(
            config=self,
            replicas=replicas,
            gpu=first.gpu,
            model=first.model,
            num_blocks=first.num_blocks,
            watermark_blocks=first.watermark_blocks,
            max_context=min(r.max_context for r in replicas),
            latency=first.latency,
        )

    def _resolve_group(self, g: ReplicaGroup) -> ResolvedReplica:
        gpu_name, gpu = catalogue().gpu(g.gpu or self.gpu)
        model_name, model = catalogue().model(g.model or self.model)
        tp = g.tp or self.tp
        efficiency = g.efficiency or self.efficiency
        if efficiency is not None:
            efficiency.check()
        weights = g.precision or self.precision
        kv = g.kv_precision or self.kv_precision
        latency = LatencyModel.build(gpu, model, tp, efficiency, weights, kv)
        # A group on other hardware than the cluster's derives its own KV capacity.
        same = (
            (g.gpu is None or g.gpu == self.gpu)
            and (g.tp is None or g.tp == self.tp)
            and (g.model is None or g.model == self.model)
            and (g.precision is None or g.precision == self.precision)
            and (g.kv_precision is None or g.kv_precision == self.kv_precision)
        )
        blocks = g.num_blocks if g.num_blocks is not None else (self.num_blocks if same else None)
        if blocks is None:
            blocks = derive_num_blocks(gpu, model, tp, self.block_size, weights, kv)
        elif blocks < 1:
            raise InputError(f"cluster num_blocks is {blocks}: it must be at least 1")
        return ResolvedReplica(
            gpu=gpu_name,
            model=model_name,
            tp=tp,
            num_blocks=blocks,
            watermark_blocks=int(self.watermark * blocks),
            max_context=model.max_context,
            latency=latency,
        )


class ResolvedReplica(msgspec.Struct, frozen=True, kw_only=True):
    """One replica's hardware, model and derived quantities."""

    gpu: str
    model: str
    tp: int
    num_blocks: int
    watermark_blocks: int
    max_context: int
    latency: LatencyModel


class ResolvedCluster(msgspec.Struct, frozen=True, kw_only=True):
    """A checked :class:`ClusterConfig` with canonical names and derived quantities.

    ``replicas`` describes each replica by id; the other fields are replica 0's (all replicas'
    in a homogeneous cluster), except ``max_context``, the smallest of any replica.
    """

    config: ClusterConfig
    replicas: tuple[ResolvedReplica, ...]
    gpu: str
    model: str
    num_blocks: int
    watermark_blocks: int
    max_context: int
    latency: LatencyModel

    @property
    def heterogeneous(self) -> bool:
        return len({(r.gpu, r.model, r.tp, r.num_blocks) for r in self.replicas}) > 1


class WorkloadConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where requests come from and when they arrive.

    ``trace`` is a shipped trace name (see :func:`glia.sim.builtin_traces`) or a CSV path. With
    ``arrivals="trace"`` the trace's ``arrived_at`` column is replayed (``qps`` then rescales time
    to that mean rate, ``duration_s`` cuts it off); otherwise lengths are drawn from the trace and
    arrivals generated at ``qps`` for ``duration_s`` seconds: ``poisson``, ``lognormal`` gaps with
    shape ``sigma`` (mean gap 1/qps) or ``gamma`` gaps with coefficient of variation ``cv``.
    ``*_inflation`` inflates that fraction of prompts / outputs (independently) by
    ``inflation_factor``; ``max_tokens`` caps prompt + output (prompt first). ``isl`` and
    ``osl`` fix every prompt's and output's length instead of drawing them from the trace.

    With ``concurrency`` the workload is closed-loop, like ``vllm bench serve
    --max-concurrency``: that many clients each send their next request when their last one
    completes (after ``think_s`` seconds), ``max_requests`` requests in all (default: 10 per
    client, at least 100). Arrival settings (``qps``, ``duration_s``, generated arrivals) then
    do not apply.
    """

    trace: str = "sharegpt_first_turn"
    arrivals: ArrivalProcess = "trace"
    qps: float | None = None
    duration_s: float | None = None
    sigma: float = 2.0
    cv: float = 1.0
    prompt_inflation: float = 0.0
    output_inflation: float = 0.0
    inflation_factor: float = 10.0
    max_tokens: int | None = None
    max_requests: int | None = None
    turns: float = 1.0
    """Mean turns per conversation: above 1, requests are threaded into multi-turn
    conversations whose prompts carry their history (see :mod:`glia.sim._chat`)."""
    diurnal: float = 0.0
    """Day-shaped rate for generated arrivals: the rate is ``qps * (1 - diurnal * cos(2 pi t /
    period_s))``, lowest at time 0 and highest half a period later (0: a constant rate)."""
    period_s: float | None = None
    """Length of the diurnal "day" in seconds (default ``duration_s``: one day per run)."""
    concurrency: int | None = None
    """Closed loop: clients, each sending its next request when its last one completes."""
    think_s: float = 0.0
    """Closed loop: seconds a client waits after a completion before sending again."""
    isl: int | None = None
    """Every prompt's length (input sequence length), instead of the trace's."""
    osl: int | None = None
    """Every output's length (output sequence length), instead of the trace's."""
    prefix_groups: int = 0
    """Shared prefixes: above 0, each request belongs to one of this many groups (drawn
    uniformly) and its prompt starts with its group's shared prefix (a system prompt or
    document), ``prefix_tokens`` long, before its own prompt drawn from the trace; replicas
    with a prefix cache share a cached prefix's KV blocks between its requests."""
    prefix_tokens: int = 0
    """Shared prefixes: the length of each group's prefix in tokens (not counted in
    ``max_tokens``, which caps each request's own prompt and output)."""
