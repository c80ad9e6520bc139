"""Engine-iteration times of a Llama-3-8B-shaped model on one GPU, for shapes that
``shared/data/measurements/h200_llama-3-8b_iterations.csv`` lacks.

Purpose: validate a per-operator GPU latency model on configurations it was not fitted to:
heterogeneous decode batches, prefill chunks with prior context, batched prefills, mixed iterations
with heterogeneous decodes, and large decode batches.

Method (that of the existing file, see ``shared/data/measurements/README.md``):

* model: exactly Llama-3-8B's shape (32 layers, hidden 4096, 32 query heads, 8 KV heads, head_dim
  128, SwiGLU 14336, vocab 128256), random bf16 weights from a seeded generator (std
  1/sqrt(fan_in)), untied LM head;
* forward: plain PyTorch. RMSNorm (``F.rms_norm``), RoPE (theta 500,000, applied to the fused q|k
  slice in one go), fused QKV and fused gate/up projections, the new tokens' K/V written into a
  preallocated contiguous per-layer KV cache (one ``index_copy_`` each for K and V), attention
  through ``scaled_dot_product_attention`` under ``sdpa_kernel(SDPBackend.FLASH_ATTENTION)`` (GQA
  through ``enable_gqa=True``, or repeated KV heads if flash refuses that), logits only for the
  last token of each sequence, greedy argmax;
* attention calls: one per group of sequences with equal shape, reading K/V from the cache: one
  call for each decode group (all sequences with the same context length, one query each), one for
  a prefill chunk, one for a batch of equal-length prefills. A prefill chunk with prior context
  (its first ``prefill_ctx`` tokens already cached) attends to ctx + its own tokens, causal aligned
  to the bottom right. ``scaled_dot_product_attention(is_causal=True)`` aligns top-left and refuses
  flash when the lengths differ, so this call goes straight to the flash kernel behind SDPA,
  ``aten._scaled_dot_product_flash_attention(is_causal=True)``, whose causal mask is bottom-right
  (what ``torch.nn.attention.bias.causal_lower_right`` does too). At start-up every attention path
  is compared with a float32 reference with an explicit mask; if the bottom-right flash call fails,
  the script falls back to two flash calls (cached prefix, full; own tokens, causal) merged through
  their log-sum-exp, and last to the float32 reference; the ``attn_backend`` column says which ran;
* timing: CUDA events around each iteration; 3 warm-ups, then the median of N runs, N chosen so a
  point takes about 1.5 s (10 <= N <= 50); ``graph`` mode captures the whole forward as one CUDA
  graph and replays it. Eager mode is measured at the end only if time is left;
* self-check (printed, and stored in the meta file): the whole model with a 64-token chunk at
  context 64 against the last 64 rows of a 128-token prefill; a mixed iteration (a chunk with
  context, a batch of two prefills, decodes at two context lengths) against each sequence prefilled
  alone; a graph replay against the eager forward;
* ceilings measured in the same run: an 8192^3 bf16 matmul (TFLOP/s) and a device copy (GB/s, bytes
  read + written), with the GPU, driver, torch and CUDA versions, in ``<out>.meta.json``.

Run (one H200, about 2-3 minutes; ``--max-seconds`` bounds it)::

    python3 benchmarks/device/h200_iterations.py --out "$OUT/h200_llama-3-8b_validation.csv"

``--tiny`` runs a tiny model on the CPU (wall-clock timing, no graphs) to test the code paths.

CSV columns (those of the existing file, with the same meaning, plus new ones):

* ``kind``: ``prefill`` (prefill chunks only), ``decode`` (decodes only), ``mixed`` (both);
* ``prefill_tokens``: all prefill tokens of the iteration; ``prefill_ctx``: tokens of the chunk's
  sequence already in the KV cache; ``prefill_seqs``: prefill sequences (0 in decode rows);
* ``decode_batch``: decoding sequences; ``decode_ctx``: their context length when all share one
  (empty otherwise; 0 in prefill rows); ``decode_lens``: the decodes as ``COUNTxCTX+COUNTxCTX``;
* ``tokens``, ``seqs``: tokens and sequences in the iteration;
* ``kv_gib``: KV cache read by the iteration's attention, as in the existing file: each decode's
  context plus its new token, plus each prefill's prior context (a prefill's own tokens do not
  count); 128 KiB per token;
* ``mode``, ``median_ms``, ``min_ms``, ``max_ms`` (GPU time per iteration, CUDA events),
  ``wall_median_ms`` (host wall time per iteration, launch to synchronise), ``iters``, ``status``
  (``ok``, ``skipped: ...`` or ``error: ...``);
* ``attn_backend``: the attention kernels that ran; ``group``: which set of points the row belongs
  to (``anchor`` rows repeat points of the existing file, to compare this run's machine with it).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

COLUMNS = [
    "kind",
    "prefill_tokens",
    "prefill_ctx",
    "prefill_seqs",
    "decode_batch",
    "decode_ctx",
    "decode_lens",
    "tokens",
    "seqs",
    "kv_gib",
    "mode",
    "median_ms",
    "min_ms",
    "max_ms",
    "wall_median_ms",
    "iters",
    "status",
    "attn_backend",
    "group",
]

KV_SKIP_GIB = 60.0  # points whose KV cache would exceed this are written as skipped
SELF_CHECK_TOL = 0.1  # relative Frobenius error allowed between equivalent whole-model forwards
ATTN_CHECK_TOL = 0.01  # relative Frobenius error allowed for one attention call vs float32


# --------------------------------------------------------------------------------------------
# Model shape and measurement points
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    rope_theta: float = 500_000.0
    eps: float = 1e-5

    @property
    def kv_bytes_per_token(self) -> int:
        """K and V of one token in all layers, bf16."""
        return 2 * self.layers * self.kv_heads * self.head_dim * 2


LLAMA3_8B = Shape(
    layers=32, hidden=4096, heads=32, kv_heads=8, head_dim=128, intermediate=14336, vocab=128256
)
TINY = Shape(layers=2, hidden=256, heads=4, kv_heads=2, head_dim=64, intermediate=512, vocab=1000)


def parse_lens(spec: str) -> tuple[tuple[int, int], ...]:
    """``"16x256+16x4096"`` -> ``((16, 256), (16, 4096))``: (sequences, context) per group."""
    groups = []
    for part in spec.split("+"):
        count, ctx = part.split("x")
        groups.append((int(count), int(ctx)))
    return tuple(groups)


@dataclass(frozen=True)
class Point:
    """One iteration: at most one group of prefills plus decode groups."""

    group: str
    prefill: tuple[int, int, int] | None = None  # (sequences, tokens each, prior context)
    decodes: tuple[tuple[int, int], ...] = ()  # (sequences, context) per decode group
    ref_ms: float | None = None  # graph median of the same point in the existing file

    @property
    def kind(self) -> str:
        if self.prefill and self.decodes:
            return "mixed"
        return "prefill" if self.prefill else "decode"

    @property
    def prefill_seqs(self) -> int:
        return self.prefill[0] if self.prefill else 0

    @property
    def prefill_tokens(self) -> int:
        return self.prefill[0] * self.prefill[1] if self.prefill else 0

    @property
    def prefill_ctx(self) -> int:
        return self.prefill[2] if self.prefill else 0

    @property
    def decode_batch(self) -> int:
        return sum(c for c, _ in self.decodes)

    @property
    def decode_ctx(self) -> str:
        if not self.decodes:
            return "0"
        ctxs = {ctx for _, ctx in self.decodes}
        return str(ctxs.pop()) if len(ctxs) == 1 else ""

    @property
    def decode_lens(self) -> str:
        return "+".join(f"{c}x{ctx}" for c, ctx in self.decodes)

    @property
    def tokens(self) -> int:
        return self.prefill_tokens + self.decode_batch

    @property
    def seqs(self) -> int:
        return self.prefill_seqs + self.decode_batch

    @property
    def kv_read_tokens(self) -> int:
        return self.prefill_seqs * self.prefill_ctx + sum(c * (ctx + 1) for c, ctx in self.decodes)

    @property
    def cache_tokens(self) -> int:
        """Cache slots the iteration occupies (context plus new tokens of every sequence)."""
        p = self.prefill[0] * (self.prefill[1] + self.prefill[2]) if self.prefill else 0
        return p + sum(c * (ctx + 1) for c, ctx in self.decodes)

    @property
    def max_position(self) -> int:
        p = self.prefill[1] + self.prefill[2] if self.prefill else 0
        return max([p] + [ctx + 1 for _, ctx in self.decodes])

    def calls(self) -> list[Call]:
        """Attention calls, with consecutive cache regions from slot 0."""
        out: list[Call] = []
        offset = 0
        if self.prefill:
            n, t, ctx = self.prefill
            out.append(Call(count=n, new=t, ctx=ctx, offset=offset))
            offset += n * (t + ctx)
        for count, ctx in self.decodes:
            out.append(Call(count=count, new=1, ctx=ctx, offset=offset))
            offset += count * (ctx + 1)
        return out

    def label(self) -> str:
        parts = []
        if self.prefill:
            n, t, ctx = self.prefill
            parts.append(f"prefill {n}x{t}" + (f"@ctx{ctx}" if ctx else ""))
        if self.decodes:
            parts.append(f"decode {self.decode_lens}")
        return " + ".join(parts)


def _pp(tokens: int, ctx: int = 0, seqs: int = 1) -> tuple[int, int, int]:
    return (seqs, tokens, ctx)


def full_points() -> list[Point]:
    """Measurement order: anchors (a few seconds), then the brief's priority groups 1-5."""
    points = [
        # Points of h200_llama-3-8b_iterations.csv (graph medians there), to compare machines.
        Point("anchor", decodes=parse_lens("1x1024"), ref_ms=6.08569598197937),
        Point("anchor", decodes=parse_lens("64x1024"), ref_ms=10.059199810028076),
        Point("anchor", decodes=parse_lens("256x256"), ref_ms=14.120448112487793),
        Point("anchor", prefill=_pp(512), ref_ms=15.24452829360962),
        Point("anchor", prefill=_pp(2048), ref_ms=58.299072265625),
        Point("anchor", prefill=_pp(512), decodes=parse_lens("32x1024"), ref_ms=19.61667251586914),
    ]
    for spec in [
        "16x256+16x4096",
        "32x512+32x2048",
        "1x8192+63x256",
        "4x16384+60x512",
        "128x128+8x8192",
        "96x1024+32x3072",
    ]:
        points.append(Point("hetero_decode", decodes=parse_lens(spec)))
    for tokens, ctx in [
        (512, 2048),
        (512, 7680),
        (2048, 2048),
        (2048, 6144),
        (128, 4096),
        (1024, 15360),
    ]:
        points.append(Point("ctx_prefill", prefill=_pp(tokens, ctx)))
    for seqs, tokens in [(4, 512), (8, 256), (2, 2048)]:
        points.append(Point("batched_prefill", prefill=_pp(tokens, 0, seqs)))
    points += [
        Point("mixed_hetero", prefill=_pp(1024, 1024), decodes=parse_lens("32x512+32x4096")),
        Point("mixed_hetero", prefill=_pp(256), decodes=parse_lens("128x1024")),
        Point("mixed_hetero", prefill=_pp(4096), decodes=parse_lens("16x2048")),
        Point("large_decode", decodes=parse_lens("512x256")),
        Point("large_decode", decodes=parse_lens("384x1024")),
        # The same two anchors again after the sweep: drift of clocks or temperature.
        Point("anchor_repeat", decodes=parse_lens("64x1024"), ref_ms=10.059199810028076),
        Point("anchor_repeat", prefill=_pp(2048), ref_ms=58.299072265625),
    ]
    return points


def tiny_points() -> list[Point]:
    """The same structure, scaled down for ``--tiny`` on a CPU."""
    return [
        Point("anchor", decodes=parse_lens("4x32")),
        Point("anchor", prefill=_pp(32), decodes=parse_lens("2x32")),
        Point("hetero_decode", decodes=parse_lens("2x8+2x64")),
        Point("hetero_decode", decodes=parse_lens("1x128+3x8")),
        Point("ctx_prefill", prefill=_pp(16, 48)),
        Point("ctx_prefill", prefill=_pp(32, 32)),
        Point("batched_prefill", prefill=_pp(16, 0, 4)),
        Point("mixed_hetero", prefill=_pp(16, 16), decodes=parse_lens("2x8+2x32")),
        Point("mixed_hetero", prefill=_pp(16), decodes=parse_lens("4x16")),
        Point("large_decode", decodes=parse_lens("16x16")),
    ]


# --------------------------------------------------------------------------------------------
# Iteration plan: token rows, positions and cache slots
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """``count`` sequences, each with ``ctx`` cached tokens and ``new`` tokens in this iteration.

    Sequence ``s`` owns cache slots ``offset + s*span .. offset + (s+1)*span - 1``,
    ``span = ctx + new``; its new tokens go to the last ``new`` of them.
    """

    count: int
    new: int
    ctx: int
    offset: int

    @property
    def span(self) -> int:
        return self.ctx + self.new

    @property
    def rows(self) -> int:
        return self.count * self.new


@dataclass
class Plan:
    calls: list[Call]
    ids: torch.Tensor  # [N] token ids
    positions: torch.Tensor  # [N] RoPE positions
    slots: torch.Tensor  # [N] cache slots of the new tokens
    last_rows: torch.Tensor  # [S] row of each sequence's last new token
    row_starts: list[int] = field(default_factory=list)

    @property
    def n_tokens(self) -> int:
        return int(self.ids.shape[0])


def build_plan(
    calls: list[Call],
    device: torch.device,
    vocab: int,
    ids: torch.Tensor | None = None,
    seed: int = 0,
) -> Plan:
    positions: list[int] = []
    slots: list[int] = []
    last: list[int] = []
    row_starts: list[int] = []
    row = 0
    for c in calls:
        row_starts.append(row)
        for s in range(c.count):
            base = c.offset + s * c.span
            positions.extend(range(c.ctx, c.span))
            slots.extend(range(base + c.ctx, base + c.span))
            row += c.new
            last.append(row - 1)
    if ids is None:
        gen = torch.Generator().manual_seed(seed)
        ids = torch.randint(0, vocab, (row,), generator=gen)
    if ids.shape[0] != row:
        raise ValueError(f"plan has {row} token rows but {ids.shape[0]} ids were given")

    def t(values: list[int]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.long, device=device)

    return Plan(
        calls=calls,
        ids=ids.to(device),
        positions=t(positions),
        slots=t(slots),
        last_rows=t(last),
        row_starts=row_starts,
    )


# --------------------------------------------------------------------------------------------
# Attention
# --------------------------------------------------------------------------------------------


@dataclass
class AttnConfig:
    """Which kernels run; chosen at start-up by ``choose_attention``."""

    sdpa: str = "flash"  # "flash" (SDPA restricted to flash) or "reference"
    gqa_native: bool = True  # enable_gqa=True; else K/V heads repeated before the call
    ctx_mode: str = "flash_lower_right"  # or "flash_lse_split" or "reference"
    ctx_gqa_native: bool = True

    def label(self, has_ctx_prefill: bool) -> str:
        if self.sdpa == "reference":
            base = "math-reference"
        else:
            base = "flash" if self.gqa_native else "flash+repeat_kv"
        if not has_ctx_prefill:
            return base
        ctx = {
            "flash_lower_right": "flash lower-right causal",
            "flash_lse_split": "flash prefix+own merged by lse",
            "reference": "math-reference",
        }[self.ctx_mode]
        if self.ctx_mode != "reference" and not self.ctx_gqa_native:
            ctx += "+repeat_kv"
        return f"{base}; ctx prefill: {ctx}"

    def sdpa_backends(self) -> list[SDPBackend]:
        return [SDPBackend.FLASH_ATTENTION] if self.sdpa == "flash" else [SDPBackend.MATH]


def _repeat_kv(x: torch.Tensor, rep: int) -> torch.Tensor:
    return x if rep == 1 else x.repeat_interleave(rep, dim=1)


def reference_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool
) -> torch.Tensor:
    """float32 attention with an explicit bottom-right causal mask; [B,H,L,D] x [B,Hk,S,D]."""
    L, D = q.shape[2], q.shape[3]
    S = k.shape[2]
    rep = q.shape[1] // k.shape[1]
    kf = _repeat_kv(k.float(), rep)
    vf = _repeat_kv(v.float(), rep)
    scores = (q.float() @ kf.transpose(-1, -2)) * (D**-0.5)
    if causal:
        i = torch.arange(L, device=q.device)[:, None]
        j = torch.arange(S, device=q.device)[None, :]
        scores = scores.masked_fill(j > i + (S - L), float("-inf"))
    return torch.matmul(scores.softmax(-1), vf).to(q.dtype)


def _flash_op(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """The flash kernel behind SDPA: (output [B,H,L,D], logsumexp [B,H,L] float32).

    On CUDA its ``is_causal`` aligns the mask bottom-right when L < S; on the CPU the kernel aligns
    top-left (so ``choose_attention`` rejects ``flash_lower_right`` there).
    """
    if q.device.type == "cuda":
        r = torch.ops.aten._scaled_dot_product_flash_attention(
            q, k, v, dropout_p=0.0, is_causal=causal, return_debug_mask=False
        )
    else:
        r = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
            q, k, v, dropout_p=0.0, is_causal=causal
        )
    return r[0], r[1]


def attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, ctx: int, cfg: AttnConfig
) -> torch.Tensor:
    """One attention call. q [B,H,L,D]; k, v [B,Hk,ctx+L,D] (views of the cache)."""
    L = q.shape[2]
    rep = q.shape[1] // k.shape[1]
    if cfg.sdpa == "reference":
        return reference_attention(q, k, v, causal=L > 1)
    if ctx == 0 or L == 1:
        if cfg.gqa_native:
            return F.scaled_dot_product_attention(q, k, v, is_causal=L > 1, enable_gqa=rep > 1)
        return F.scaled_dot_product_attention(
            q, _repeat_kv(k, rep), _repeat_kv(v, rep), is_causal=L > 1
        )
    # A chunk after `ctx` cached tokens: causal aligned bottom-right.
    if cfg.ctx_mode == "reference":
        return reference_attention(q, k, v, causal=True)
    if not cfg.ctx_gqa_native:
        k, v = _repeat_kv(k, rep), _repeat_kv(v, rep)
    if cfg.ctx_mode == "flash_lower_right":
        return _flash_op(q, k, v, causal=True)[0]
    # flash_lse_split: the cached prefix without a mask, the own tokens causal (square), merged.
    o1, l1 = _flash_op(q, k[:, :, :ctx], v[:, :, :ctx], causal=False)
    o2, l2 = _flash_op(q, k[:, :, ctx:], v[:, :, ctx:], causal=True)
    l1 = l1[..., :L].float()
    l2 = l2[..., :L].float()
    m = torch.maximum(l1, l2)
    w1 = torch.exp(l1 - m).unsqueeze(-1)
    w2 = torch.exp(l2 - m).unsqueeze(-1)
    return ((o1.float() * w1 + o2.float() * w2) / (w1 + w2)).to(q.dtype)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a32, b32 = a.float(), b.float()
    return float((a32 - b32).norm() / b32.norm().clamp_min(1e-30))


def choose_attention(
    shape: Shape, device: torch.device, dtype: torch.dtype, log: Callable[[str], None]
) -> tuple[AttnConfig, dict[str, Any]]:
    """Try each attention path on cache-shaped views against the float32 reference."""
    H, Hk, D = shape.heads, shape.kv_heads, shape.head_dim
    gen = torch.Generator(device=device).manual_seed(1234)

    def case(batch: int, new: int, ctx: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        span = ctx + new
        qrows = torch.randn(batch * new, H + Hk, D, generator=gen, device=device, dtype=dtype)
        q = qrows[:, :H].view(batch, new, H, D).transpose(1, 2)  # strided like the model's q
        cache = torch.randn(2, batch * span + 7, Hk, D, generator=gen, device=device, dtype=dtype)
        k = cache[0, 7:].view(batch, span, Hk, D).transpose(1, 2)
        v = cache[1, 7:].view(batch, span, Hk, D).transpose(1, 2)
        return q, k, v

    cases = {"decode": (3, 1, 37), "prefill": (2, 24, 0), "ctx_prefill": (1, 24, 40)}
    data = {name: case(*dims) for name, dims in cases.items()}
    refs = {
        name: reference_attention(q, k, v, causal=cases[name][1] > 1)
        for name, (q, k, v) in data.items()
    }
    report: dict[str, Any] = {}
    cfg = AttnConfig()

    def trial(name: str, trial_cfg: AttnConfig) -> bool:
        q, k, v = data[name]
        key = f"{name}:{trial_cfg.label(name == 'ctx_prefill')}"
        try:
            with sdpa_kernel(trial_cfg.sdpa_backends()):
                out = attend(q, k, v, cases[name][2], trial_cfg)
            err = rel_err(out, refs[name])
        except Exception as exc:
            report[key] = f"error: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
            log(f"  attention check {key}: {report[key]}")
            return False
        report[key] = err
        ok = err < ATTN_CHECK_TOL
        log(f"  attention check {key}: rel err {err:.2e} ({'ok' if ok else 'REJECTED'})")
        return ok

    for native in (True, False):
        cfg = AttnConfig(sdpa="flash", gqa_native=native)
        if trial("decode", cfg) and trial("prefill", cfg):
            break
    else:
        cfg = AttnConfig(sdpa="reference")
        log("  WARNING: flash SDPA failed its checks; using the float32 reference attention")
    if cfg.sdpa == "flash":
        for mode, native in [
            ("flash_lower_right", True),
            ("flash_lower_right", False),
            ("flash_lse_split", True),
            ("flash_lse_split", False),
        ]:
            trial_cfg = AttnConfig(
                sdpa="flash", gqa_native=cfg.gqa_native, ctx_mode=mode, ctx_gqa_native=native
            )
            if trial("ctx_prefill", trial_cfg):
                cfg = trial_cfg
                break
        else:
            cfg.ctx_mode = "reference"
            log("  WARNING: no flash path passed for prefill with context; using the reference")
    else:
        cfg.ctx_mode = "reference"
    report["chosen"] = cfg.label(True)
    return cfg, report


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------


class Model:
    """Llama-shaped decoder with random weights and a preallocated contiguous KV cache."""

    def __init__(
        self,
        shape: Shape,
        device: torch.device,
        dtype: torch.dtype,
        seed: int,
        cache_tokens: int,
        max_position: int,
        cfg: AttnConfig,
    ) -> None:
        self.shape = shape
        self.cfg = cfg
        s = shape
        gen = torch.Generator(device=device).manual_seed(seed)

        def w(rows: int, cols: int) -> torch.Tensor:
            t = torch.randn(rows, cols, generator=gen, device=device, dtype=dtype)
            return t.mul_(cols**-0.5)

        qkv_out = (s.heads + 2 * s.kv_heads) * s.head_dim
        self.embed = torch.randn(s.vocab, s.hidden, generator=gen, device=device, dtype=dtype)
        self.wqkv = [w(qkv_out, s.hidden) for _ in range(s.layers)]
        self.wo = [w(s.hidden, s.heads * s.head_dim) for _ in range(s.layers)]
        self.wgu = [w(2 * s.intermediate, s.hidden) for _ in range(s.layers)]  # gate rows, up rows
        self.wdown = [w(s.hidden, s.intermediate) for _ in range(s.layers)]
        ones = torch.ones(s.hidden, device=device, dtype=dtype)
        self.ln_attn = [ones.clone() for _ in range(s.layers)]
        self.ln_mlp = [ones.clone() for _ in range(s.layers)]
        self.ln_final = ones.clone()
        self.lm_head = w(s.vocab, s.hidden)
        self.k_cache: list[torch.Tensor] = []
        self.v_cache: list[torch.Tensor] = []
        for _ in range(s.layers):
            for cache in (self.k_cache, self.v_cache):
                t = torch.empty(cache_tokens, s.kv_heads, s.head_dim, device=device, dtype=dtype)
                cache.append(t.normal_(generator=gen))
        inv_freq = 1.0 / (
            s.rope_theta
            ** (torch.arange(0, s.head_dim, 2, device=device, dtype=torch.float32) / s.head_dim)
        )
        freqs = torch.outer(
            torch.arange(max_position + 1, device=device, dtype=torch.float32), inv_freq
        )
        emb = torch.cat((freqs, freqs), dim=-1)
        self.cos = emb.cos().to(dtype)
        self.sin = emb.sin().to(dtype)

    def _rope(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
        return x * cos + rotated * sin

    def _attention(self, q: torch.Tensor, layer: int, plan: Plan) -> torch.Tensor:
        s = self.shape
        kc, vc = self.k_cache[layer], self.v_cache[layer]
        outs = []
        for call, start in zip(plan.calls, plan.row_starts, strict=True):
            qs = q[start : start + call.rows].view(call.count, call.new, s.heads, s.head_dim)
            end = call.offset + call.count * call.span
            ks = kc[call.offset : end].view(call.count, call.span, s.kv_heads, s.head_dim)
            vs = vc[call.offset : end].view(call.count, call.span, s.kv_heads, s.head_dim)
            o = attend(
                qs.transpose(1, 2), ks.transpose(1, 2), vs.transpose(1, 2), call.ctx, self.cfg
            )
            outs.append(o.transpose(1, 2).reshape(call.rows, s.heads * s.head_dim))
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=0)

    def forward(self, plan: Plan, hidden: bool = False) -> torch.Tensor:
        """Greedy next token of each sequence ([S] int64), or with ``hidden`` the final-normed
        hidden state of every token row ([N, hidden])."""
        s = self.shape
        n = plan.n_tokens
        qk_heads = s.heads + s.kv_heads
        x = F.embedding(plan.ids, self.embed)
        cos = self.cos.index_select(0, plan.positions).unsqueeze(1)
        sin = self.sin.index_select(0, plan.positions).unsqueeze(1)
        for i in range(s.layers):
            h = F.rms_norm(x, (s.hidden,), self.ln_attn[i], s.eps)
            qkv = F.linear(h, self.wqkv[i])
            qk = self._rope(qkv[:, : qk_heads * s.head_dim].view(n, qk_heads, s.head_dim), cos, sin)
            q, k = qk[:, : s.heads], qk[:, s.heads :]
            v = qkv[:, qk_heads * s.head_dim :].view(n, s.kv_heads, s.head_dim)
            self.k_cache[i].index_copy_(0, plan.slots, k)
            self.v_cache[i].index_copy_(0, plan.slots, v)
            x = x + F.linear(self._attention(q, i, plan), self.wo[i])
            h = F.rms_norm(x, (s.hidden,), self.ln_mlp[i], s.eps)
            gate, up = F.linear(h, self.wgu[i]).chunk(2, dim=-1)
            x = x + F.linear(F.silu(gate) * up, self.wdown[i])
        if hidden:
            return F.rms_norm(x, (s.hidden,), self.ln_final, s.eps)
        last = F.rms_norm(x.index_select(0, plan.last_rows), (s.hidden,), self.ln_final, s.eps)
        return F.linear(last, self.lm_head).argmax(dim=-1)


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------


class Clock:
    """Seconds since the process started (falls back to since this object was made)."""

    def __init__(self) -> None:
        self._t0 = time.monotonic()
        try:
            ticks = os.sysconf("SC_CLK_TCK")
            start = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
            uptime = float(Path("/proc/uptime").read_text().split()[0])
            self._t0 -= max(0.0, uptime - start / ticks)
        except (OSError, ValueError, IndexError):
            pass

    def elapsed(self) -> float:
        return time.monotonic() - self._t0


@dataclass
class Timing:
    median_ms: float
    min_ms: float
    max_ms: float
    wall_median_ms: float
    iters: int


def time_runs(
    run: Callable[[], object],
    cuda: bool,
    seconds_left: Callable[[], float],
    target_s: float,
    min_iters: int,
    max_iters: int,
    warmups: int = 3,
) -> Timing:
    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    sync()
    t = time.perf_counter()
    for _ in range(warmups):
        run()
    sync()
    est = max((time.perf_counter() - t) / warmups, 1e-6)
    n = max(min_iters, min(max_iters, int(target_s / est)))
    n = max(3, min(n, int(0.8 * seconds_left() / est)))
    gpu: list[float] = []
    wall: list[float] = []
    start = torch.cuda.Event(enable_timing=True) if cuda else None
    end = torch.cuda.Event(enable_timing=True) if cuda else None
    for _ in range(n):
        w0 = time.perf_counter()
        if start is not None and end is not None:
            start.record()
            run()
            end.record()
            end.synchronize()
            w1 = time.perf_counter()
            gpu.append(start.elapsed_time(end))
        else:
            run()
            w1 = time.perf_counter()
            gpu.append((w1 - w0) * 1e3)
        wall.append((w1 - w0) * 1e3)
    return Timing(statistics.median(gpu), min(gpu), max(gpu), statistics.median(wall), n)


def capture_graph(fn: Callable[[], torch.Tensor]) -> tuple[torch.cuda.CUDAGraph, torch.Tensor]:
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(2):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn()
    torch.cuda.synchronize()
    return graph, out


# --------------------------------------------------------------------------------------------
# Ceilings, environment, self-check
# --------------------------------------------------------------------------------------------


def measure_ceilings(device: torch.device, tiny: bool) -> dict[str, Any]:
    cuda = device.type == "cuda"
    n = 512 if tiny else 8192
    gen = torch.Generator(device=device).manual_seed(7)
    a = torch.randn(n, n, generator=gen, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, generator=gen, device=device, dtype=torch.bfloat16)
    nbytes = (64 << 20) if tiny else (2 << 30)
    src = torch.empty(nbytes, dtype=torch.uint8, device=device).fill_(1)
    dst = torch.empty_like(src)
    kw: dict[str, Any] = {
        "target_s": 0.5 if cuda else 0.1,
        "min_iters": 10 if cuda else 3,
        "max_iters": 50 if cuda else 5,
    }
    mm = time_runs(lambda: a @ b, cuda, lambda: 60.0, **kw)
    cp = time_runs(lambda: dst.copy_(src), cuda, lambda: 60.0, **kw)
    return {
        "matmul_n": n,
        "matmul_bf16_tflops_median": 2 * n**3 / (mm.median_ms * 1e-3) / 1e12,
        "matmul_bf16_tflops_best": 2 * n**3 / (mm.min_ms * 1e-3) / 1e12,
        "copy_bytes": nbytes,
        "copy_gbps_median": 2 * nbytes / (cp.median_ms * 1e-3) / 1e9,
        "copy_gbps_best": 2 * nbytes / (cp.min_ms * 1e-3) / 1e9,
        "copy_note": "GB/s = (bytes read + bytes written) / time, 1 GB = 1e9 bytes",
    }


def nvidia_smi() -> dict[str, str]:
    fields = [
        "name",
        "driver_version",
        "clocks.sm",
        "clocks.max.sm",
        "clocks.mem",
        "power.draw",
        "power.limit",
        "temperature.gpu",
        "memory.used",
    ]
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=15,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    values = [v.strip() for v in out.splitlines()[0].split(",")] if out.strip() else []
    return dict(zip(fields, values, strict=False))


def environment(device: torch.device) -> dict[str, Any]:
    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(
            {
                "gpu": props.name,
                "gpu_memory_gib": props.total_memory / 2**30,
                "sm_count": props.multi_processor_count,
                "capability": f"{props.major}.{props.minor}",
                "nvidia_smi_start": nvidia_smi(),
            }
        )
        env["driver"] = env["nvidia_smi_start"].get("driver_version")
    return env


def self_check(
    model: Model, device: torch.device, graphs: bool, log: Callable[[str], None]
) -> dict[str, Any]:
    """Whole-model consistency checks; returns the errors, each with a verdict."""
    vocab = model.shape.vocab
    gen = torch.Generator().manual_seed(99)
    results: dict[str, Any] = {}

    def ids(n: int) -> torch.Tensor:
        return torch.randint(0, vocab, (n,), generator=gen)

    def run(calls: list[Call], tokens: torch.Tensor) -> torch.Tensor:
        return model.forward(build_plan(calls, device, vocab, ids=tokens), hidden=True)

    def verdict(name: str, err: float, expect_small: bool = True) -> None:
        ok = err < SELF_CHECK_TOL if expect_small else err > 3 * SELF_CHECK_TOL
        results[name] = {"rel_err": err, "ok": ok}
        log(f"  self-check {name}: rel err {err:.3e} ({'ok' if ok else 'FAIL'})")

    # 1. A 64-token chunk after 64 cached tokens == the last 64 rows of a 128-token prefill.
    seq = ids(128)
    full = run([Call(1, 128, 0, offset=0)], seq)
    run([Call(1, 64, 0, offset=1000)], seq[:64])
    chunk = run([Call(1, 64, 64, offset=1000)], seq[64:])
    verdict("chunk64_ctx64_vs_prefill128", rel_err(chunk, full[64:]))
    # Control: the same chunk without its context must differ, or the check tells nothing.
    alone = run([Call(1, 64, 0, offset=2000)], seq[64:])
    verdict(
        "control_chunk_without_ctx (must be large)", rel_err(alone, full[64:]), expect_small=False
    )

    # 2. One mixed iteration vs each sequence prefilled alone: a chunk of 32 at context 32, two
    #    prefills of 24 in one call, decodes at contexts 39, 39 and 99.
    z, w1, w2, y1, y2, x = ids(64), ids(24), ids(24), ids(40), ids(40), ids(100)
    off_z, off_w, off_y, off_x, scratch = 3000, 3100, 3200, 3300, 4000
    run(
        [
            Call(1, 32, 0, off_z),
            Call(1, 39, 0, off_y),
            Call(1, 39, 0, off_y + 40),
            Call(1, 99, 0, off_x),
        ],
        torch.cat([z[:32], y1[:39], y2[:39], x[:99]]),
    )
    mixed_calls = [
        Call(1, 32, 32, off_z),
        Call(2, 24, 0, off_w),
        Call(2, 1, 39, off_y),
        Call(1, 1, 99, off_x),
    ]
    mixed_ids = torch.cat([z[32:], w1, w2, y1[39:], y2[39:], x[99:]])
    mixed = run(mixed_calls, mixed_ids)
    expected = []
    for tokens, keep in [(z, 32), (w1, 24), (w2, 24), (y1, 1), (y2, 1), (x, 1)]:
        expected.append(run([Call(1, tokens.shape[0], 0, scratch)], tokens)[-keep:])
    verdict("mixed_vs_separate_prefills", rel_err(mixed, torch.cat(expected)))
    rows = [32, 24, 24, 1, 1, 1]
    parts = torch.split(mixed, rows)
    for name, got, want in zip(
        ["chunk", "batched1", "batched2", "dec39a", "dec39b", "dec99"], parts, expected, strict=True
    ):
        results[f"mixed_part_{name}"] = rel_err(got, want)
    log(
        "    per part: "
        + ", ".join(f"{k[11:]} {v:.2e}" for k, v in results.items() if k.startswith("mixed_part_"))
    )

    # 3. Graph replay == eager forward on the same mixed iteration.
    if graphs:
        plan = build_plan(mixed_calls, device, vocab, ids=mixed_ids)
        eager = model.forward(plan, hidden=True)
        graph, out = capture_graph(lambda: model.forward(plan, hidden=True))
        graph.replay()
        torch.cuda.synchronize()
        verdict("graph_replay_vs_eager", rel_err(out, eager))
        del graph, out
    return results


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def _row(
    point: Point,
    mode: str,
    status: str,
    backend: str,
    kv_per_token: int,
    timing: Timing | None = None,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "kind": point.kind,
        "prefill_tokens": point.prefill_tokens,
        "prefill_ctx": point.prefill_ctx,
        "prefill_seqs": point.prefill_seqs,
        "decode_batch": point.decode_batch,
        "decode_ctx": point.decode_ctx,
        "decode_lens": point.decode_lens,
        "tokens": point.tokens,
        "seqs": point.seqs,
        "kv_gib": round(point.kv_read_tokens * kv_per_token / 2**30, 3),
        "mode": mode,
        "median_ms": "",
        "min_ms": "",
        "max_ms": "",
        "wall_median_ms": "",
        "iters": "",
        "status": status,
        "attn_backend": backend,
        "group": point.group,
    }
    if timing is not None:
        row.update(
            median_ms=timing.median_ms,
            min_ms=timing.min_ms,
            max_ms=timing.max_ms,
            wall_median_ms=timing.wall_median_ms,
            iters=timing.iters,
        )
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="CSV to write")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=330.0,
        help="stop measuring this long after the process started (default 330)",
    )
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="tiny model on the CPU (wall-clock timing, no graphs): tests the code",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--no-eager",
        action="store_true",
        help="skip the eager pass that runs at the end when time is left",
    )
    parser.add_argument(
        "--groups", default="", help="comma-separated groups to measure (default: all)"
    )
    args = parser.parse_args(argv)

    clock = Clock()

    def log(msg: str) -> None:
        with contextlib.suppress(OSError):  # a closed stdout must not cost the CSV
            print(f"[{clock.elapsed():6.1f}s] {msg}", flush=True)

    max_seconds: float = args.max_seconds

    def seconds_left() -> float:
        return max_seconds - clock.elapsed()

    tiny: bool = args.tiny
    if not tiny and not torch.cuda.is_available():
        log("no CUDA device: use --tiny for a CPU test run")
        return 2
    device = torch.device("cpu" if tiny else "cuda")
    cuda = device.type == "cuda"
    shape = TINY if tiny else LLAMA3_8B
    dtype = torch.bfloat16
    points = tiny_points() if tiny else full_points()
    if args.groups:
        wanted = set(args.groups.split(","))
        points = [p for p in points if p.group in wanted]
    target_s, min_iters, max_iters = (1.5, 10, 50) if cuda else (0.05, 3, 5)
    kv_tok = shape.kv_bytes_per_token

    torch.set_grad_enabled(False)
    meta_path = Path(f"{args.out}.meta.json")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {
        "script": "benchmarks/device/h200_iterations.py",
        "seed": args.seed,
        "tiny": tiny,
        "shape": shape.__dict__,
        "dtype": "bfloat16",
    }

    def write_meta() -> None:
        meta["elapsed_s"] = clock.elapsed()
        meta_path.write_text(json.dumps(meta, indent=2, default=str) + "\n")

    meta["env"] = environment(device)
    log("environment: " + json.dumps(meta["env"], default=str))
    meta["ceilings"] = measure_ceilings(device, tiny)
    if cuda:
        torch.cuda.empty_cache()
    c = meta["ceilings"]
    log(
        f"ceilings: {c['matmul_n']}^3 bf16 matmul {c['matmul_bf16_tflops_median']:.1f} TFLOP/s "
        f"(best {c['matmul_bf16_tflops_best']:.1f}); device copy {c['copy_gbps_median']:,.0f} "
        f"GB/s (best {c['copy_gbps_best']:,.0f}; read + write)"
    )
    write_meta()

    log("choosing attention kernels:")
    cfg, attn_report = choose_attention(shape, device, dtype, log)
    meta["attention"] = attn_report
    log(f"attention: {cfg.label(True)}")

    kept = [p for p in points if p.cache_tokens * kv_tok / 2**30 <= KV_SKIP_GIB]
    cache_tokens = max([p.cache_tokens for p in kept] + [8192])
    max_position = max([p.max_position for p in kept] + [256])
    log(
        f"allocating model and a KV cache of {cache_tokens:,} tokens "
        f"({cache_tokens * kv_tok / 2**30:.1f} GiB)"
    )
    model = Model(shape, device, dtype, args.seed, cache_tokens, max_position, cfg)
    if cuda:
        torch.cuda.synchronize()
        log(f"GPU memory allocated: {torch.cuda.memory_allocated() / 2**30:.1f} GiB")
    meta["kv_cache_tokens"] = cache_tokens

    log("self-check:")
    try:
        with sdpa_kernel(cfg.sdpa_backends()):
            meta["self_check"] = self_check(model, device, cuda, log)
    except Exception as exc:  # measure anyway; the meta file records why the check broke
        meta["self_check"] = {"error": {"ok": False, "message": f"{type(exc).__name__}: {exc}"}}
        log(f"self-check raised {type(exc).__name__}: {exc}")
    checks_ok = all(v.get("ok", True) for v in meta["self_check"].values() if isinstance(v, dict))
    log("self-check " + ("passed" if checks_ok else "FAILED: rows are still measured; see meta"))
    write_meta()

    f = args.out.open("w", newline="")
    writer = csv.DictWriter(f, fieldnames=COLUMNS)
    writer.writeheader()
    f.flush()
    measured: list[tuple[Point, float]] = []

    def emit(row: dict[str, Any], point: Point) -> None:
        writer.writerow(row)
        f.flush()
        os.fsync(f.fileno())
        msg = f"{row['mode']:5s} {point.group:15s} {point.label():40s} "
        if row["status"] == "ok":
            msg += (
                f"median {row['median_ms']:8.3f} ms (min {row['min_ms']:.3f}, "
                f"max {row['max_ms']:.3f}, wall {row['wall_median_ms']:.3f}, "
                f"n={row['iters']})"
            )
            if point.ref_ms and row["mode"] == "graph":
                ratio = row["median_ms"] / point.ref_ms
                msg += f"  existing file {point.ref_ms:.3f} ms, ratio {ratio:.3f}"
        else:
            msg += row["status"]
        log(msg)

    def measure(point: Point, mode: str) -> None:
        backend = cfg.label(point.prefill_ctx > 0)
        kv_gib = point.cache_tokens * kv_tok / 2**30
        if kv_gib > KV_SKIP_GIB:
            emit(_row(point, "-", f"skipped: KV {kv_gib:.1f} GiB", backend, kv_tok), point)
            return
        need = 5.0 if mode == "graph" else 3.0
        if seconds_left() < need:
            emit(_row(point, "-", "skipped: time budget", backend, kv_tok), point)
            return
        graph = None
        try:
            plan = build_plan(point.calls(), device, shape.vocab, seed=args.seed)
            with sdpa_kernel(cfg.sdpa_backends()):
                if mode == "graph":
                    graph, _ = capture_graph(lambda: model.forward(plan))
                    run: Callable[[], object] = graph.replay
                else:
                    run = lambda: model.forward(plan)  # noqa: E731
                timing = time_runs(run, cuda, seconds_left, target_s, min_iters, max_iters)
            row = _row(point, mode, "ok", backend, kv_tok, timing)
            if mode == "graph":
                measured.append((point, timing.median_ms))
        except Exception as exc:  # keep going: a later point may still work
            msg = str(exc).splitlines()[0][:160] if str(exc) else ""
            status = f"error: {type(exc).__name__}: {msg}".replace(",", ";")
            row = _row(point, mode, status, backend, kv_tok)
        finally:
            del graph
            if cuda:
                try:
                    torch.cuda.synchronize()
                    torch.cuda.empty_cache()
                except Exception as exc:
                    log(f"cleanup after {point.label()} failed: {exc}")
        emit(row, point)

    mode = "graph" if cuda else "eager"
    log(f"measuring {len(points)} points in {mode} mode; {seconds_left():.0f} s left")
    for point in points:
        measure(point, mode)
    if cuda and not args.no_eager:
        log(f"eager pass over the same points while time is left ({seconds_left():.0f} s)")
        for point in points:
            if seconds_left() < 20:
                log("eager pass stopped: time budget")
                break
            if point.group != "anchor_repeat":
                measure(point, "eager")
    f.close()

    if cuda:
        meta["nvidia_smi_end"] = nvidia_smi()
        meta["max_memory_allocated_gib"] = torch.cuda.max_memory_allocated() / 2**30
        log(
            f"end state: {meta['nvidia_smi_end']}; peak allocated "
            f"{meta['max_memory_allocated_gib']:.1f} GiB"
        )
    write_meta()
    log(f"wrote {args.out} and {meta_path}; {len(measured)} graph points ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
