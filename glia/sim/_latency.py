"""The GPU latency model: how long one engine iteration takes.

An iteration runs a batch of prefill chunks and decode steps through the model once. Its time is a
roofline over the GPU's peak FLOP/s and memory bandwidth, each derated by an efficiency factor, plus
a per-iteration host overhead::

    t = overhead + overhead_per_seq * seqs + max(flops / (peak * compute_eff),
                                                 bytes / (bandwidth * mem_eff)) + allreduce

FLOPs are the linear layers (2 per parameter per token) plus attention (4 * layers * heads *
head_dim per query-key pair); bytes are the weights, read once per iteration, plus the KV cache
read and written. This module is the single home of that formula: the simulator calls
:meth:`LatencyModel.iteration_time`, and the numba kernels take over the same coefficients.
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
    "BYTES_PER_PARAM",
    "Catalogue",
    "Efficiency",
    "GpuSpec",
    "LatencyModel",
    "ModelSpec",
    "catalogue",
    "ceil_div",
    "derive_num_blocks",
]

BYTES_PER_PARAM = 2  # FP16/BF16 weights and KV cache
GPU_MEMORY_UTILIZATION = 0.9  # vLLM's default share of GPU memory it may use
ACTIVATION_RESERVE_BYTES = 1 << 30  # per GPU, for activations and the CUDA graph pool
ALLREDUCE_LATENCY_S = 10e-6  # fixed cost of one all-reduce between tensor-parallel GPUs


class GpuSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One GPU kind: data-sheet peaks and the efficiency an engine reaches on it."""

    peak_tflops: float
    mem_bw_gbs: float
    memory_gib: float
    link_bw_gbs: float
    compute_eff: float
    mem_eff: float
    overhead_ms: float
    overhead_per_seq_ms: float = 0.0


class Efficiency(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The calibratable part of a GPU's spec: what an engine reaches of its peaks, and overheads.

    Fitted by ``glia calibrate`` to a user's measurements; overrides the catalogue's values.
    """

    compute_eff: float
    mem_eff: float
    overhead_ms: float
    overhead_per_seq_ms: float

    def check(self) -> None:
        """Raise :class:`InputError` unless the efficiencies are in (0, 1] and overheads >= 0."""
        for name in ("compute_eff", "mem_eff"):
            v = getattr(self, name)
            if not 0.0 < v <= 1.0:
                raise InputError(f"efficiency {name} is {v}: it must be in (0, 1]")
        for name in ("overhead_ms", "overhead_per_seq_ms"):
            v = getattr(self, name)
            if v < 0.0:
                raise InputError(f"efficiency {name} is {v}: it must be >= 0")


class ModelSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A decoder-only transformer's architecture (from its config.json)."""

    layers: int
    hidden: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    max_context: int

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

    @property
    def kv_bytes_per_token(self) -> int:
        """Bytes of K and V cached per token over all layers."""
        return 2 * self.layers * self.kv_heads * self.head_dim * BYTES_PER_PARAM


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


def derive_num_blocks(gpu: GpuSpec, model: ModelSpec, tp: int, block_size: int) -> int:
    """KV blocks per replica left after weights and activations, as vLLM's profiler would find.

    Raises :class:`InputError` when the model does not fit on ``tp`` GPUs of this kind.
    """
    usable = gpu.memory_gib * (1 << 30) * GPU_MEMORY_UTILIZATION * tp
    free = usable - model.params * BYTES_PER_PARAM - ACTIVATION_RESERVE_BYTES * tp
    blocks = int(free // (model.kv_bytes_per_token * block_size))
    if blocks <= 0:
        need = (model.params * BYTES_PER_PARAM) / (1 << 30)
        raise InputError(
            f"the model's {need:.1f} GiB of weights leave no KV-cache memory on {tp} GPU(s) of "
            f"{gpu.memory_gib:g} GiB: use a larger GPU or a higher tensor-parallel degree"
        )
    return blocks


class LatencyModel(msgspec.Struct, frozen=True, kw_only=True):
    """Coefficients of the iteration-time roofline for one replica (GPU kind x model x TP).

    All quantities are per replica; tensor parallelism divides FLOPs and bytes across ``tp`` GPUs
    and adds two all-reduces per layer.
    """

    flops_per_token: float
    attn_flops_per_pair: float
    weight_bytes: float
    kv_bytes_per_token: float
    flops_per_s: float
    bytes_per_s: float
    overhead_s: float
    overhead_per_seq_s: float
    allreduce_bytes_per_token: float = 0.0
    allreduce_bytes_per_s: float = 1.0
    allreduce_fixed_s: float = 0.0

    @classmethod
    def build(
        cls, gpu: GpuSpec, model: ModelSpec, tp: int = 1, efficiency: Efficiency | None = None
    ) -> LatencyModel:
        """The latency model of ``model`` served on ``tp`` GPUs of kind ``gpu``.

        ``efficiency`` (e.g. from ``glia calibrate``) replaces the catalogue's factors.
        """
        eff = efficiency or Efficiency(
            gpu.compute_eff, gpu.mem_eff, gpu.overhead_ms, gpu.overhead_per_seq_ms
        )
        if tp < 1 or tp & (tp - 1):
            raise InputError(f"tensor-parallel degree {tp} is invalid: use 1, 2, 4 or 8")
        if model.heads % tp:
            raise InputError(
                f"tensor-parallel degree {tp} does not divide the model's {model.heads} "
                "attention heads: use a smaller degree"
            )
        linear_params = model.layers * model.layer_params + model.vocab * model.hidden
        ring = 2 * (tp - 1) / tp  # fraction of the data a ring all-reduce moves per GPU
        return cls(
            flops_per_token=2.0 * linear_params,
            attn_flops_per_pair=4.0 * model.layers * model.heads * model.head_dim,
            weight_bytes=float(model.params * BYTES_PER_PARAM),
            kv_bytes_per_token=float(model.kv_bytes_per_token),
            flops_per_s=gpu.peak_tflops * 1e12 * eff.compute_eff * tp,
            bytes_per_s=gpu.mem_bw_gbs * 1e9 * eff.mem_eff * tp,
            overhead_s=eff.overhead_ms * 1e-3,
            overhead_per_seq_s=eff.overhead_per_seq_ms * 1e-3,
            allreduce_bytes_per_token=2.0 * model.layers * model.hidden * BYTES_PER_PARAM * ring,
            allreduce_bytes_per_s=gpu.link_bw_gbs * 1e9,
            allreduce_fixed_s=(2.0 * model.layers * ALLREDUCE_LATENCY_S) if tp > 1 else 0.0,
        )

    def coefficients(self) -> npt.NDArray[np.float64]:
        """The model as the float64 vector the numba kernels take, in field order."""
        return np.array([getattr(self, f) for f in self.__struct_fields__], dtype=np.float64)

    def iteration_time(
        self,
        prefill_tokens: int,
        decode_tokens: int,
        num_seqs: int,
        kv_read_tokens: int,
        attn_pairs: int,
    ) -> float:
        """Seconds for one iteration.

        ``prefill_tokens``: prompt tokens processed (all chunks); ``decode_tokens``: sequences
        decoding one token; ``num_seqs``: sequences in the batch; ``kv_read_tokens``: cached tokens
        the attention reads; ``attn_pairs``: query-key pairs the attention computes.
        """
        tokens = prefill_tokens + decode_tokens
        flops = self.flops_per_token * tokens + self.attn_flops_per_pair * attn_pairs
        moved = self.weight_bytes + self.kv_bytes_per_token * (kv_read_tokens + tokens)
        compute = max(flops / self.flops_per_s, moved / self.bytes_per_s)
        comm = self.allreduce_fixed_s + self.allreduce_bytes_per_token * tokens / (
            self.allreduce_bytes_per_s
        )
        return self.overhead_s + self.overhead_per_seq_s * num_seqs + compute + comm

    def iteration_times(
        self,
        prefill_tokens: npt.ArrayLike,
        decode_tokens: npt.ArrayLike,
        num_seqs: npt.ArrayLike,
        kv_read_tokens: npt.ArrayLike,
        attn_pairs: npt.ArrayLike,
    ) -> npt.NDArray[np.float64]:
        """:meth:`iteration_time` over arrays of iterations (the numpy reference)."""
        p = np.asarray(prefill_tokens, dtype=np.float64)
        tokens = p + np.asarray(decode_tokens, dtype=np.float64)
        flops = self.flops_per_token * tokens + self.attn_flops_per_pair * np.asarray(
            attn_pairs, dtype=np.float64
        )
        moved = self.weight_bytes + self.kv_bytes_per_token * (
            np.asarray(kv_read_tokens, dtype=np.float64) + tokens
        )
        compute = np.maximum(flops / self.flops_per_s, moved / self.bytes_per_s)
        comm = self.allreduce_fixed_s + self.allreduce_bytes_per_token * tokens / (
            self.allreduce_bytes_per_s
        )
        seqs = np.asarray(num_seqs, dtype=np.float64)
        out: npt.NDArray[np.float64] = self.overhead_s + self.overhead_per_seq_s * seqs + compute
        return out + comm

    def prefill_time(self, prompt_tokens: int, chunk_size: int) -> float:
        """Seconds to prefill a prompt alone on an idle replica, in chunks of ``chunk_size``."""
        total, done = 0.0, 0
        while done < prompt_tokens:
            c = min(chunk_size, prompt_tokens - done)
            pairs = c * done + c * (c + 1) // 2
            total += self.iteration_time(c, 0, 1, done, pairs)
            done += c
        return total


def ceil_div(a: int, b: int) -> int:
    """``ceil(a / b)`` for non-negative integers, without floats."""
    return -(-a // b)
