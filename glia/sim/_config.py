"""Typed configuration of a simulated cluster and its workload.

Both are frozen msgspec Structs, so an experiment is fully described by plain data that can be
hashed, sent over the bus and written to JSON.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from glia._errors import InputError

from ._latency import Efficiency, LatencyModel, catalogue, derive_num_blocks

__all__ = ["ArrivalProcess", "ClusterConfig", "ResolvedCluster", "WorkloadConfig"]

ArrivalProcess = Literal["trace", "poisson", "lognormal", "gamma"]


class ClusterConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """N identical replicas behind one router, each a vLLM-style engine with a Sarathi scheduler.

    ``num_blocks`` is the KV-cache capacity per replica in blocks of ``block_size`` tokens; when
    omitted it is derived from the GPU's memory. A request is admitted only if ``watermark`` of
    the blocks stay free; an iteration holds at most ``max_batch_size`` sequences and
    ``chunk_size`` tokens (decodes count one each; prefills are chunked into what is left).
    ``efficiency``, a profile fitted by ``glia calibrate``, replaces the catalogue's efficiency
    factors and overheads for this GPU.
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
        gpu_name, gpu = catalogue().gpu(self.gpu)
        model_name, model = catalogue().model(self.model)
        if self.efficiency is not None:
            self.efficiency.check()
        latency = LatencyModel.build(gpu, model, self.tp, self.efficiency)
        blocks = self.num_blocks
        if blocks is None:
            blocks = derive_num_blocks(gpu, model, self.tp, self.block_size)
        elif blocks < 1:
            raise InputError(f"cluster num_blocks is {blocks}: it must be at least 1")
        return ResolvedCluster(
            config=self,
            gpu=gpu_name,
            model=model_name,
            num_blocks=blocks,
            watermark_blocks=int(self.watermark * blocks),
            max_context=model.max_context,
            latency=latency,
        )


class ResolvedCluster(msgspec.Struct, frozen=True, kw_only=True):
    """A checked :class:`ClusterConfig` with canonical names and derived quantities."""

    config: ClusterConfig
    gpu: str
    model: str
    num_blocks: int
    watermark_blocks: int
    max_context: int
    latency: LatencyModel


class WorkloadConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where requests come from and when they arrive.

    ``trace`` is a shipped trace name (see :func:`glia.sim.builtin_traces`) or a CSV path. With
    ``arrivals="trace"`` the trace's ``arrived_at`` column is replayed (``qps`` then rescales time
    to that mean rate, ``duration_s`` cuts it off); otherwise lengths are drawn from the trace and
    arrivals generated at ``qps`` for ``duration_s`` seconds: ``poisson``, ``lognormal`` gaps with
    shape ``sigma`` (mean gap 1/qps) or ``gamma`` gaps with coefficient of variation ``cv``.
    ``*_inflation`` inflates that fraction of prompts / outputs (independently) by
    ``inflation_factor``; ``max_tokens`` caps prompt + output (prompt first).
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
