"""The GPU latency model: how long one engine iteration takes, operator by operator.

An iteration runs a batch of prefill chunks and decode steps through the model once. On the GPU
its operators are separate kernels, so their times add; each operator is its own roofline over
the GPU's peaks, derated by an efficiency factor::

    t = overhead + overhead_per_seq * seqs + overhead_per_token * tokens
      + max(linear FLOPs / linear FLOP/s,  weight bytes / weight bandwidth)        # GEMMs
      + max(logits FLOPs / linear FLOP/s,  LM-head bytes / weight bandwidth)       # sampled tokens
      + embedding rows gathered / weight bandwidth
      + max(prefill attention FLOPs / attention FLOP/s,  KV bytes / KV bandwidth)   # prefill chunks
      + max(decode attention FLOPs / attention FLOP/s,   KV bytes / KV bandwidth)   # decodes
      + all-reduce (tensor parallelism: two per layer)

* Linear layers: 2 FLOPs per weight per token; their weights are read once per iteration.
* Logits: the LM head runs for the one sampled token of each sequence, not for every prompt token
  (as vLLM does); the embedding table is gathered row by row, not read whole.
* Attention: 4 * layers * heads * head_dim FLOPs per query-key pair. A prefill chunk attends over
  the tokens cached before it and causally over itself; its KV bytes are those tokens' K and V.
  A decode attends over its sequence's cache. Decode sequences of different context lengths are
  costed per sequence; since each one's roofline is linear in its context, that is the batch's
  total context. The prefill chunks of one iteration share one roofline over their totals.
* KV reads run at their own bandwidth factor: measured on an H200 they reached ~2.5 TB/s while
  weight streaming reached ~3.9 TB/s, so one factor cannot fit both.

Weights and the KV cache may be 16-bit (``bf16``, ``fp16``) or 8-bit (``fp8``): bytes per element
come from the model entry or an override, FP8 linear layers run at the GPU's FP8 peak where it has
one, and the KV capacity of a replica derives from the same bytes.

This module is the single home of the formula: the simulator calls
:meth:`LatencyModel.iteration_time`, and the numba kernels (``glia.kernels``) repeat it over the
coefficient vector of :meth:`LatencyModel.coefficients`, operation for operation, so both give
bit-identical times.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Mapping
from importlib import resources

import msgspec
import numpy as np
import numpy.typing as npt

from glia._errors import InputError, unknown_name

__all__ = [
    "DTYPE_BYTES",
    "Catalogue",
    "Efficiency",
    "GpuSpec",
    "LatencyModel",
    "ModelSpec",
    "catalogue",
    "ceil_div",
    "derive_num_blocks",
]

DTYPE_BYTES = {"bf16": 2, "fp16": 2, "fp8": 1}
"""Bytes per element of each precision weights and the KV cache may have."""
ACT_BYTES = 2  # activations (and so embedding rows and all-reduce payloads) stay 16-bit
GPU_MEMORY_UTILIZATION = 0.9  # vLLM's default share of GPU memory it may use
ACTIVATION_RESERVE_BYTES = 1 << 30  # per GPU, for activations and the CUDA graph pool
ALLREDUCE_LATENCY_S = 10e-6  # fixed cost of one all-reduce between tensor-parallel GPUs


def dtype_bytes(name: str, what: str) -> int:
    """Bytes per element of precision ``name``; ``what`` names the setting in the error."""
    try:
        return DTYPE_BYTES[name.lower()]
    except KeyError:
        raise unknown_name(f"{what} precision", name, DTYPE_BYTES) from None


class Efficiency(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The calibratable part of a GPU's spec: what an engine reaches of its peaks, and overheads.

    ``compute_eff`` and ``mem_eff`` are the linear layers' shares of peak tensor FLOP/s and of
    peak bandwidth (weight streaming); ``attn_compute_eff`` and ``kv_mem_eff`` are attention's
    (``None``: the linear layers' factor). Overheads are per iteration, per sequence in the batch
    and per token in the batch. Fitted by ``glia calibrate`` to a user's measurements; overrides
    the catalogue's values. (The first four fields are those of profiles written before the
    per-operator model, which therefore still load.)
    """

    compute_eff: float
    mem_eff: float
    overhead_ms: float
    overhead_per_seq_ms: float
    attn_compute_eff: float | None = None
    kv_mem_eff: float | None = None
    overhead_per_token_us: float = 0.0

    @property
    def attn_compute(self) -> float:
        """Attention's share of peak FLOP/s."""
        return self.compute_eff if self.attn_compute_eff is None else self.attn_compute_eff

    @property
    def kv_mem(self) -> float:
        """KV-cache reads' share of peak bandwidth."""
        return self.mem_eff if self.kv_mem_eff is None else self.kv_mem_eff

    def check(self) -> None:
        """Raise :class:`InputError` unless the efficiencies are in (0, 1] and overheads >= 0."""
        for name in ("compute_eff", "mem_eff", "attn_compute_eff", "kv_mem_eff"):
            v = getattr(self, name)
            if v is not None and not 0.0 < v <= 1.0:
                raise InputError(f"efficiency {name} is {v}: it must be in (0, 1]")
        for name in ("overhead_ms", "overhead_per_seq_ms", "overhead_per_token_us"):
            v = getattr(self, name)
            if v < 0.0:
                raise InputError(f"efficiency {name} is {v}: it must be >= 0")


class GpuSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One GPU kind: data-sheet peaks (dense, no sparsity) and what an engine reaches of them."""

    peak_tflops: float
    """16-bit tensor-core peak."""
    mem_bw_gbs: float
    memory_gib: float
    link_bw_gbs: float
    compute_eff: float
    mem_eff: float
    overhead_ms: float
    overhead_per_seq_ms: float = 0.0
    attn_compute_eff: float | None = None
    kv_mem_eff: float | None = None
    overhead_per_token_us: float = 0.0
    peak_fp8_tflops: float = 0.0
    """FP8 tensor-core peak; 0 where the GPU has none (FP8 weights then run at 16-bit speed)."""
    source: str = ""
    """Where the peaks come from (a data sheet's address)."""

    def efficiency(self) -> Efficiency:
        """The catalogue's efficiency factors and overheads for this GPU."""
        return Efficiency(
            self.compute_eff,
            self.mem_eff,
            self.overhead_ms,
            self.overhead_per_seq_ms,
            self.attn_compute_eff,
            self.kv_mem_eff,
            self.overhead_per_token_us,
        )


class ModelSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A decoder-only transformer's architecture (from its config.json)."""

    layers: int
    hidden: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    max_context: int
    weight_dtype: str = "bf16"
    kv_dtype: str = "bf16"
    source: str = ""
    """Where the architecture comes from (the config.json's address)."""

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def layer_params(self) -> int:
        """Parameters of one transformer layer (attention projections + gated MLP)."""
        h, kv = self.hidden, self.kv_heads * self.head_dim
        return 2 * h * h + 2 * h * kv + 3 * h * self.intermediate

    @property
    def params(self) -> int:
        """All parameters, with untied input embedding and LM head."""
        return self.layers * self.layer_params + 2 * self.vocab * self.hidden

    def weight_bytes(self, weight_dtype: str | None = None) -> int:
        """Bytes of all weights: linear layers and LM head in ``weight_dtype``, embedding 16-bit."""
        w = dtype_bytes(weight_dtype or self.weight_dtype, "weight")
        linear = self.layers * self.layer_params + self.vocab * self.hidden
        return linear * w + self.vocab * self.hidden * ACT_BYTES

    def kv_bytes_per_token(self, kv_dtype: str | None = None) -> int:
        """Bytes of K and V cached per token over all layers."""
        per = dtype_bytes(kv_dtype or self.kv_dtype, "KV-cache")
        return 2 * self.layers * self.kv_heads * self.head_dim * per


class Catalogue(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The GPU and model catalogue shipped in ``catalogue.toml``."""

    gpus: dict[str, GpuSpec]
    models: dict[str, ModelSpec]
    gpu_aliases: dict[str, str] = {}
    model_aliases: dict[str, str] = {}

    def gpu(self, name: str) -> tuple[str, GpuSpec]:
        """The canonical name and spec of a GPU kind (case-insensitive, aliases allowed)."""
        key = _lookup(name, self.gpus, self.gpu_aliases)
        if key is None:
            raise unknown_name("GPU", name, self.gpus)
        return key, self.gpus[key]

    def model(self, name: str) -> tuple[str, ModelSpec]:
        """The canonical name and spec of a model (case-insensitive, aliases allowed)."""
        key = _lookup(name, self.models, self.model_aliases)
        if key is None:
            raise unknown_name("model", name, self.models)
        return key, self.models[key]


def _lookup(name: str, table: Mapping[str, object], aliases: Mapping[str, str]) -> str | None:
    folded = {k.lower(): k for k in table} | {a.lower(): t for a, t in aliases.items()}
    return folded.get(name.lower())


@functools.cache
def catalogue() -> Catalogue:
    """The shipped catalogue (parsed once; immutable)."""
    text = resources.files("glia.sim").joinpath("catalogue.toml").read_text(encoding="utf-8")
    return msgspec.convert(tomllib.loads(text), Catalogue)


def derive_num_blocks(
    gpu: GpuSpec,
    model: ModelSpec,
    tp: int,
    block_size: int,
    weight_dtype: str | None = None,
    kv_dtype: str | None = None,
) -> int:
    """KV blocks per replica left after weights and activations, as vLLM's profiler would find.

    Raises :class:`InputError` when the model does not fit on ``tp`` GPUs of this kind.
    """
    usable = gpu.memory_gib * (1 << 30) * GPU_MEMORY_UTILIZATION * tp
    weights = model.weight_bytes(weight_dtype)
    free = usable - weights - ACTIVATION_RESERVE_BYTES * tp
    blocks = int(free // (model.kv_bytes_per_token(kv_dtype) * block_size))
    if blocks <= 0:
        raise InputError(
            f"the model's {weights / (1 << 30):.1f} GiB of weights leave no KV-cache memory on "
            f"{tp} GPU(s) of {gpu.memory_gib:g} GiB: use a larger GPU, a higher tensor-parallel "
            "degree or FP8 weights"
        )
    return blocks


class LatencyModel(msgspec.Struct, frozen=True, kw_only=True):
    """Coefficients of the per-operator iteration time for one replica (GPU kind x model x TP).

    All quantities are per replica; tensor parallelism divides FLOPs and bytes across ``tp`` GPUs
    and adds two all-reduces per layer. The field order is the numba kernels' contract.
    """

    linear_flops_per_token: float
    linear_bytes: float
    logits_flops_per_seq: float
    logits_bytes: float
    embed_bytes_per_token: float
    attn_flops_per_pair: float
    kv_bytes_per_token: float
    linear_flops_per_s: float
    weight_bytes_per_s: float
    attn_flops_per_s: float
    kv_bytes_per_s: float
    overhead_s: float
    overhead_per_seq_s: float
    overhead_per_token_s: float
    allreduce_bytes_per_token: float
    allreduce_bytes_per_s: float
    allreduce_fixed_s: float

    @classmethod
    def build(
        cls,
        gpu: GpuSpec,
        model: ModelSpec,
        tp: int = 1,
        efficiency: Efficiency | None = None,
        weight_dtype: str | None = None,
        kv_dtype: str | None = None,
    ) -> LatencyModel:
        """The latency model of ``model`` served on ``tp`` GPUs of kind ``gpu``.

        ``efficiency`` (e.g. from ``glia calibrate``) replaces the catalogue's factors;
        ``weight_dtype`` and ``kv_dtype`` override the model entry's precisions.
        """
        eff = efficiency or gpu.efficiency()
        if tp < 1 or tp & (tp - 1):
            raise InputError(f"tensor-parallel degree {tp} is invalid: use 1, 2, 4 or 8")
        if model.heads % tp:
            raise InputError(
                f"tensor-parallel degree {tp} does not divide the model's {model.heads} "
                "attention heads: use a smaller degree"
            )
        wdt = (weight_dtype or model.weight_dtype).lower()
        w = dtype_bytes(wdt, "weight")
        fp8 = wdt == "fp8" and gpu.peak_fp8_tflops > 0.0
        linear_peak = gpu.peak_fp8_tflops if fp8 else gpu.peak_tflops
        h, layers = model.hidden, model.layers
        ring = 2 * (tp - 1) / tp  # fraction of the data a ring all-reduce moves per GPU
        return cls(
            linear_flops_per_token=2.0 * layers * model.layer_params,
            linear_bytes=float(layers * model.layer_params * w),
            logits_flops_per_seq=2.0 * model.vocab * h,
            logits_bytes=float(model.vocab * h * w),
            embed_bytes_per_token=float(h * ACT_BYTES),
            attn_flops_per_pair=4.0 * layers * model.heads * model.head_dim,
            kv_bytes_per_token=float(model.kv_bytes_per_token(kv_dtype)),
            linear_flops_per_s=linear_peak * 1e12 * eff.compute_eff * tp,
            weight_bytes_per_s=gpu.mem_bw_gbs * 1e9 * eff.mem_eff * tp,
            attn_flops_per_s=gpu.peak_tflops * 1e12 * eff.attn_compute * tp,
            kv_bytes_per_s=gpu.mem_bw_gbs * 1e9 * eff.kv_mem * tp,
            overhead_s=eff.overhead_ms * 1e-3,
            overhead_per_seq_s=eff.overhead_per_seq_ms * 1e-3,
            overhead_per_token_s=eff.overhead_per_token_us * 1e-6,
            allreduce_bytes_per_token=2.0 * layers * h * ACT_BYTES * ring,
            allreduce_bytes_per_s=gpu.link_bw_gbs * 1e9,
            allreduce_fixed_s=(2.0 * layers * ALLREDUCE_LATENCY_S) if tp > 1 else 0.0,
        )

    def coefficients(self) -> npt.NDArray[np.float64]:
        """The model as the float64 vector the numba kernels take, in field order."""
        return np.array([getattr(self, f) for f in self.__struct_fields__], dtype=np.float64)

    def iteration_time(
        self,
        prefill_tokens: int,
        prefill_ctx: int,
        prefill_pairs: int,
        decode_seqs: int,
        decode_ctx: int,
        seqs: int,
    ) -> float:
        """Seconds for one iteration.

        ``prefill_tokens``: prompt tokens processed in this iteration (all chunks);
        ``prefill_ctx``: tokens cached before those chunks, which they attend over;
        ``prefill_pairs``: query-key pairs of the chunks' attention (prior context included);
        ``decode_seqs``: sequences decoding one token; ``decode_ctx``: tokens cached by them,
        summed over sequences; ``seqs``: sequences in the batch (decodes plus prefill chunks),
        each sampling one token.
        """
        tokens = prefill_tokens + decode_seqs
        linear = max(
            self.linear_flops_per_token * tokens / self.linear_flops_per_s,
            self.linear_bytes / self.weight_bytes_per_s,
        )
        logits = max(
            self.logits_flops_per_seq * seqs / self.linear_flops_per_s,
            self.logits_bytes / self.weight_bytes_per_s,
        )
        gather = self.embed_bytes_per_token * tokens / self.weight_bytes_per_s
        prefill = max(
            self.attn_flops_per_pair * prefill_pairs / self.attn_flops_per_s,
            self.kv_bytes_per_token * (prefill_ctx + prefill_tokens) / self.kv_bytes_per_s,
        )
        attended = decode_ctx + decode_seqs  # each decode attends over its cache and itself
        decode = max(
            self.attn_flops_per_pair * attended / self.attn_flops_per_s,
            self.kv_bytes_per_token * attended / self.kv_bytes_per_s,
        )
        comm = self.allreduce_fixed_s + self.allreduce_bytes_per_token * tokens / (
            self.allreduce_bytes_per_s
        )
        host = self.overhead_s + self.overhead_per_seq_s * seqs + self.overhead_per_token_s * tokens
        return host + linear + logits + gather + prefill + decode + comm

    def prefill_time(self, prompt_tokens: int, chunk_size: int) -> float:
        """Seconds to prefill a prompt alone on an idle replica, in chunks of ``chunk_size``."""
        total, done = 0.0, 0
        while done < prompt_tokens:
            c = min(chunk_size, prompt_tokens - done)
            total += self.iteration_time(c, done, c * done + c * (c + 1) // 2, 0, 0, 1)
            done += c
        return total


def ceil_div(a: int, b: int) -> int:
    """``ceil(a / b)`` for non-negative integers, without floats."""
    return -(-a // b)
