"""Engine iterations described in a CSV: the shapes ``glia latency`` predicts and
``glia calibrate`` fits.

Two layouts are read. The iteration layout (that of ``shared/data/measurements``), one row per
iteration::

    kind,prefill_tokens,prefill_ctx,decode_batch,decode_ctx,decode_lens,mode,median_ms,status
    prefill,2048,0,0,0,,graph,58.3,ok          # a 2,048-token prefill chunk, nothing cached
    decode,0,0,64,1024,,graph,10.06,ok         # 64 decodes, 1,024 tokens cached each
    decode,0,0,32,,16x256+16x4096,graph,9.1,ok # 32 decodes at two context lengths
    mixed,512,2048,32,1024,,graph,21.0,ok      # a chunk over 2,048 cached tokens + 32 decodes

``prefill_ctx`` (tokens cached before the chunk), ``prefill_seqs`` (equal chunks of that many
sequences; default 1), ``decode_ctx``/``decode_lens`` (one of them when ``decode_batch`` > 0;
``decode_lens`` is ``COUNTxLEN+COUNTxLEN…``), ``median_ms`` (the measured time), ``mode`` and
``status`` (rows whose status is not ``ok`` are not measurements) are optional; other columns are
kept as they are. The simple layout, one decode batch and one prefill per row::

    batch_size,context_tokens,prefill_tokens,time_ms
    1,128,0,30.2          # one decode step of 1 sequence with 128 cached tokens
    0,0,8192,1498         # an 8,192-token prefill alone
"""

from __future__ import annotations

import csv
import math
import re
from importlib import resources
from pathlib import Path

import msgspec
import numpy as np
import numpy.typing as npt

from glia._errors import TraceError

__all__ = ["KINDS", "MEASUREMENTS", "Iteration", "read_iterations"]

MEASUREMENTS = {
    "h200-llama-3-8b": "h200_llama-3-8b_iterations.csv",
    "h200-llama-3-8b-fp8": "h200_llama-3-8b-fp8_iterations.csv",
}
"""Measured iteration files shipped with Glia (``glia/data/measurements``), by name."""

KINDS = ("prefill", "decode", "mixed")
"""Kinds of iteration, by what they run: prefill chunks only, decodes only, or both."""

_ITERATION = ("prefill_tokens", "decode_batch")
_SIMPLE = ("batch_size", "context_tokens", "prefill_tokens", "time_ms")
_LENS = re.compile(r"^\s*(\d+)\s*x\s*(\d+)\s*$")


class Iteration(msgspec.Struct, frozen=True, kw_only=True):
    """One engine iteration's batch, and its measured time when the file gives one.

    ``decode`` holds ``(count, context)`` groups: ``count`` sequences decoding one token each
    over ``context`` cached tokens. ``prefill_seqs`` sequences share ``prefill_tokens`` equally,
    each chunk attending over ``prefill_ctx`` cached tokens of its own.
    """

    prefill_tokens: int = 0
    prefill_ctx: int = 0
    prefill_seqs: int = 1
    decode: tuple[tuple[int, int], ...] = ()
    measured_ms: float | None = None
    mode: str = ""
    row: int = 0
    """The row's line in its file (0 when not read from one)."""
    fields: dict[str, str] = {}
    """The row as read, every column kept."""

    @property
    def decode_seqs(self) -> int:
        return sum(n for n, _ in self.decode)

    @property
    def decode_ctx(self) -> int:
        """Tokens cached by the decoding sequences, summed."""
        return sum(n * k for n, k in self.decode)

    @property
    def kind(self) -> str:
        if self.prefill_tokens and self.decode_seqs:
            return "mixed"
        return "prefill" if self.prefill_tokens else "decode"

    def shape(self) -> tuple[int, int, int, int, int, int]:
        """The arguments of :meth:`LatencyModel.iteration_time` for this batch."""
        chunks = self.prefill_seqs if self.prefill_tokens else 0
        c = self.prefill_tokens // max(chunks, 1)
        pairs = chunks * (c * self.prefill_ctx + c * (c + 1) // 2)
        seqs = self.decode_seqs + chunks
        return (
            self.prefill_tokens,
            chunks * self.prefill_ctx,
            pairs,
            self.decode_seqs,
            self.decode_ctx,
            seqs,
        )


def shapes(its: list[Iteration]) -> tuple[npt.NDArray[np.int64], ...]:
    """The six iteration-time arguments of every iteration, as int64 columns."""
    rows = np.array([it.shape() for it in its], dtype=np.int64).reshape(len(its), 6)
    return tuple(np.ascontiguousarray(rows[:, i]) for i in range(6))


def read_iterations(path: str | Path) -> list[Iteration]:
    """Read an iterations CSV (see the module docstring), or a shipped one by its name in
    :data:`MEASUREMENTS`; errors name the file and row."""
    p = str(path)
    if p.lower() in MEASUREMENTS and not Path(p).exists():
        shipped = resources.files("glia").joinpath("data", "measurements", MEASUREMENTS[p.lower()])
        p = str(shipped)
    try:
        with open(p, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            columns = reader.fieldnames or []
    except (OSError, UnicodeDecodeError) as e:
        why = e.strerror if isinstance(e, OSError) else "it is not UTF-8 text"
        raise TraceError(p, None, f"cannot read the file ({why})") from None
    except csv.Error as e:
        raise TraceError(p, None, f"not a CSV file ({e})") from None
    if all(c in columns for c in _SIMPLE):
        parse = _simple
    elif all(c in columns for c in _ITERATION):
        parse = _iteration
    else:
        raise TraceError(
            p,
            1,
            f"an iterations CSV needs the columns {', '.join(_ITERATION)} (with decode_ctx or "
            f"decode_lens, and median_ms for measurements), or {', '.join(_SIMPLE)}; "
            f"this one has {', '.join(columns) or 'none'}",
        )
    if not rows:
        raise TraceError(p, None, "the file has a header but no rows")
    out = []
    for line, row in enumerate(rows, start=2):
        if None in row or any(v is None for v in row.values()):
            raise TraceError(p, line, "the row's number of fields differs from the header's")
        try:
            it = parse(row, line)
        except ValueError as e:
            raise TraceError(p, line, str(e)) from None
        out.append(it)
    return out


def _int(row: dict[str, str], name: str, default: int | None = None) -> int:
    text = (row.get(name) or "").strip()
    if not text:
        if default is None:
            raise ValueError(f"{name} is empty: give a whole number")
        return default
    try:
        value = int(text)
    except ValueError:
        try:
            f = float(text)
        except ValueError:
            raise ValueError(f"{name} is {text!r}: give a whole number") from None
        if not f.is_integer():
            raise ValueError(f"{name} is {text!r}: give a whole number") from None
        value = int(f)
    if value < 0:
        raise ValueError(f"{name} is {value}: it must be >= 0")
    return value


def _time(row: dict[str, str], name: str) -> float | None:
    text = (row.get(name) or "").strip()
    if not text:
        return None
    try:
        t = float(text)
    except ValueError:
        raise ValueError(f"{name} is {text!r}: give a time in milliseconds") from None
    if not (math.isfinite(t) and t > 0):
        raise ValueError(f"{name} is {text}: a measured time must be positive")
    return t


def _lens(text: str) -> tuple[tuple[int, int], ...]:
    groups = []
    for part in text.split("+"):
        m = _LENS.match(part)
        if m is None:
            raise ValueError(
                f"decode_lens is {text!r}: write COUNTxLEN groups joined by '+', "
                "e.g. 16x256+16x4096"
            )
        groups.append((int(m[1]), int(m[2])))
    return tuple(groups)


def _iteration(row: dict[str, str], line: int) -> Iteration:
    status = (row.get("status") or "ok").strip()
    prefill = _int(row, "prefill_tokens")
    batch = _int(row, "decode_batch")
    seqs = _int(row, "prefill_seqs", 1)
    lens_text = (row.get("decode_lens") or "").strip()
    if batch == 0:
        decode: tuple[tuple[int, int], ...] = ()
    elif lens_text:
        decode = _lens(lens_text)
        if sum(n for n, _ in decode) != batch:
            raise ValueError(
                f"decode_lens {lens_text!r} holds {sum(n for n, _ in decode)} sequences but "
                f"decode_batch is {batch}: make them agree"
            )
    elif (row.get("decode_ctx") or "").strip():
        decode = ((batch, _int(row, "decode_ctx")),)
    else:
        raise ValueError(
            f"decode_batch is {batch} but neither decode_ctx nor decode_lens says how many "
            "tokens the decodes have cached"
        )
    if prefill == 0 and batch == 0:
        raise ValueError("prefill_tokens and decode_batch are both 0: an iteration needs work")
    if prefill and (seqs < 1 or prefill % seqs):
        raise ValueError(
            f"prefill_seqs is {seqs}: it must be at least 1 and divide prefill_tokens "
            f"({prefill}) into equal chunks"
        )
    measured = _time(row, "median_ms") if status == "ok" else None
    return Iteration(
        prefill_tokens=prefill,
        prefill_ctx=_int(row, "prefill_ctx", 0),
        prefill_seqs=seqs,
        decode=decode,
        measured_ms=measured,
        mode=(row.get("mode") or "").strip(),
        row=line,
        fields=dict(row),
    )


def _simple(row: dict[str, str], line: int) -> Iteration:
    batch = _int(row, "batch_size")
    prefill = _int(row, "prefill_tokens")
    if batch == 0 and prefill == 0:
        raise ValueError("batch_size and prefill_tokens are both 0: an iteration needs work")
    measured = _time(row, "time_ms")
    return Iteration(
        prefill_tokens=prefill,
        decode=((batch, _int(row, "context_tokens")),) if batch else (),
        measured_ms=measured,
        row=line,
        fields=dict(row),
    )
