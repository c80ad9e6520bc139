"""Request traces: loading CSVs, generating arrivals, inflating and capping lengths.

Every random draw comes from a ``numpy.random.Generator`` derived from the caller's seed, with one
independent stream per purpose (arrivals, length sampling, prompt and output inflation), so
changing the arrival rate does not change which lengths are drawn.

Why one module of this size: loading traces, generating arrivals and building a trace are one
pipeline from a config to a :class:`Trace`, every step drawing from the seed's streams.
"""

from __future__ import annotations

import csv
import functools
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import numpy.typing as npt

from glia._errors import InputError, TraceError, unknown_name

from ._chat import thread_conversations
from ._config import WorkloadConfig
from ._streams import Stream, generator

__all__ = ["Trace", "build_trace", "builtin_traces", "load_trace_csv"]

_BUILTIN = {
    "sharegpt_first_turn": "sharegpt_first_turn_lengths.csv",
    "sharegpt": "sharegpt_lengths.csv",
    "azure_conv": "azure_conv_2023.csv",
}

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class Trace:
    """Requests to simulate, in arrival order: read-only arrays of equal length.

    ``prefix_id`` and ``prefix_len``, when given, say which cached prefix each request's prompt
    starts with and how many tokens of it (``-1`` and ``0``: none; see :mod:`glia.sim._prefix`).
    """

    arrived_at: FloatArray
    num_prefill_tokens: IntArray
    num_decode_tokens: IntArray
    prefix_id: IntArray | None = None
    prefix_len: IntArray | None = None
    capped: int = 0
    """Requests whose prompt + output exceeded ``cap`` and were shortened to fit it."""
    cap: int | None = None
    """The token limit (prompt + output) the requests were held to, if any."""
    concurrency: int | None = None
    """Closed loop: this many clients send the requests in order, each its next one when its
    last completes (``think_s`` later); ``arrived_at`` is then ignored (all zeros)."""
    think_s: float = 0.0
    """Closed loop: seconds between a client's completion and its next request."""
    shared_prefixes: bool = False
    """The prefixes are shared ones (system prompts, documents) rather than conversation
    histories: a replica caches a request's ``prefix_len`` tokens once its prefill is done, not
    its prompt and output when it completes (see :mod:`glia.sim._prefix`)."""

    def __post_init__(self) -> None:
        self._check_prefixes()
        a, p, d = self.arrived_at, self.num_prefill_tokens, self.num_decode_tokens
        if not (len(a) == len(p) == len(d)):
            raise InputError(
                f"trace arrays differ in length (arrived_at {len(a)}, num_prefill_tokens "
                f"{len(p)}, num_decode_tokens {len(d)}): give one value per request in each"
            )
        if len(a) == 0:
            raise InputError("the trace has no requests: give at least one")
        checks = (
            (p < 1, "num_prefill_tokens", "token counts must be positive"),
            (d < 1, "num_decode_tokens", "token counts must be positive"),
            (~np.isfinite(a) | (a < 0), "arrived_at", "arrival times must be finite and >= 0"),
        )
        for bad, name, rule in checks:
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                value = (a if name == "arrived_at" else p if name[4] == "p" else d)[i]
                raise InputError(f"trace request {i}: {name} is {value}: {rule}")
        back = np.flatnonzero(np.diff(a) < 0)
        if len(back):
            i = int(back[0]) + 1
            raise InputError(
                f"trace request {i} arrives at {a[i]}, before request {i - 1} at {a[i - 1]}: "
                "sort the trace by arrival time"
            )
        if self.concurrency is not None and self.concurrency < 1:
            raise InputError(f"concurrency is {self.concurrency}: give at least 1 client")
        if not (math.isfinite(self.think_s) and self.think_s >= 0):
            raise InputError(f"think_s is {self.think_s}: give seconds, >= 0")
        for array in (a, p, d):
            array.flags.writeable = False

    def _check_prefixes(self) -> None:
        ids, lens = self.prefix_id, self.prefix_len
        if ids is None and lens is None:
            return
        if ids is None or lens is None or not len(ids) == len(lens) == len(self.arrived_at):
            raise InputError(
                "trace prefix columns: give both prefix_id and prefix_len, one value per request"
            )
        p = self.num_prefill_tokens
        for bad, rule in (
            (ids < -1, "prefix_id must be -1 (none) or a non-negative id"),
            ((lens < 0) | (lens > p), "prefix_len must be between 0 and the prompt's length"),
            ((ids < 0) & (lens > 0), "a request without a prefix_id has prefix_len 0"),
        ):
            if len(p) == len(ids) and bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise InputError(
                    f"trace request {i}: prefix_id {ids[i]}, prefix_len {lens[i]}: {rule}"
                )
        ids.flags.writeable = False
        lens.flags.writeable = False

    def __len__(self) -> int:
        return len(self.arrived_at)


@dataclass(frozen=True, eq=False)
class _Table:
    path: str
    has_arrivals: bool
    arrived_at: FloatArray
    prefill: IntArray
    decode: IntArray
    prefix_id: IntArray | None = None
    prefix_len: IntArray | None = None


def builtin_traces() -> dict[str, str]:
    """Names of the traces shipped with Glia and their files (see ``glia/data/traces``)."""
    return dict(_BUILTIN)


def _resolve_path(trace: str) -> Path:
    if trace in _BUILTIN:
        ref = resources.files("glia").joinpath("data", "traces", _BUILTIN[trace])
        return Path(str(ref))
    path = Path(trace)
    if path.suffix.lower() != ".csv" and not path.exists():
        raise unknown_name("trace", trace, _BUILTIN, hint="or give the path of a CSV file")
    if not path.is_file():
        raise TraceError(str(path), None, "no such file: give an existing CSV trace path")
    return path


def load_trace_csv(trace: str) -> tuple[Trace, bool]:
    """Load a trace CSV (a shipped name or a path) and say whether it has arrival times.

    Columns: ``num_prefill_tokens`` and ``num_decode_tokens`` (positive integers), optionally
    ``arrived_at`` (seconds, non-decreasing) and ``prefix_id`` with ``prefix_len`` (the prefix
    a prompt continues, ``-1`` for none, and how many of its tokens it shares; see
    :mod:`glia.sim._prefix`). Extra columns are ignored.
    """
    path = _resolve_path(trace)
    st = path.stat()
    t = _load_table(str(path), st.st_mtime_ns, st.st_size)
    ids = None if t.prefix_id is None else t.prefix_id.copy()
    lens = None if t.prefix_len is None else t.prefix_len.copy()
    trace_ = Trace(t.arrived_at.copy(), t.prefill.copy(), t.decode.copy(), ids, lens)
    return trace_, t.has_arrivals


# Parsing a 56k-row CSV costs tens of milliseconds; keyed by (path, mtime, size) the cache can
# never serve stale data, and its values are read-only arrays.
@functools.lru_cache(maxsize=16)
def _load_table(path: str, mtime_ns: int, size: int) -> _Table:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise TraceError(path, None, "the file is empty: it needs a header row")
            cols = {name.strip(): i for i, name in enumerate(header)}
            for need in ("num_prefill_tokens", "num_decode_tokens"):
                if need not in cols:
                    raise TraceError(
                        path,
                        1,
                        f"missing column {need!r} (found {', '.join(header)}): a trace needs "
                        "num_prefill_tokens and num_decode_tokens, optionally arrived_at",
                    )
            ip, idc = cols["num_prefill_tokens"], cols["num_decode_tokens"]
            ia = cols.get("arrived_at")
            iid, ilen = cols.get("prefix_id"), cols.get("prefix_len")
            if (iid is None) != (ilen is None):
                raise TraceError(path, 1, "give both prefix_id and prefix_len columns, or neither")
            arr: list[float] = []
            pre: list[int] = []
            dec: list[int] = []
            pids: list[int] = []
            plens: list[int] = []
            for rowno, row in enumerate(reader, start=2):
                if not row:
                    continue
                try:
                    p, d = _count(row[ip]), _count(row[idc])
                    a = float(row[ia]) if ia is not None else 0.0
                except (ValueError, IndexError):
                    raise TraceError(
                        path,
                        rowno,
                        f"cannot read {row!r}: token counts must be integers below 2**31 and "
                        "arrived_at a number of seconds",
                    ) from None
                if p <= 0 or d <= 0:
                    col, value = ("num_prefill_tokens", p) if p <= 0 else ("num_decode_tokens", d)
                    raise TraceError(
                        path, rowno, f"{col} is {value}: token counts must be positive"
                    )
                if ia is not None:
                    if not math.isfinite(a) or a < 0:
                        raise TraceError(
                            path, rowno, f"arrived_at is {a}: it must be a finite time >= 0"
                        )
                    if arr and a < arr[-1]:
                        raise TraceError(
                            path,
                            rowno,
                            f"arrived_at {a} is earlier than the previous row's {arr[-1]}: "
                            "sort the trace by arrival time",
                        )
                if iid is not None and ilen is not None:
                    try:
                        pid, plen = _count(row[iid]), _count(row[ilen])
                    except (ValueError, IndexError):
                        raise TraceError(
                            path, rowno, f"cannot read {row!r}: prefix_id and prefix_len must "
                            "be integers",
                        ) from None  # fmt: skip
                    if pid < -1 or not 0 <= plen <= p or (pid < 0 and plen > 0):
                        raise TraceError(
                            path, rowno, f"prefix_id {pid}, prefix_len {plen}: give -1 and 0 "
                            "for no prefix, else an id >= 0 and 0 <= prefix_len <= the prompt",
                        )  # fmt: skip
                    pids.append(pid)
                    plens.append(plen)
                arr.append(a)
                pre.append(p)
                dec.append(d)
    except UnicodeDecodeError:
        raise TraceError(path, None, "not a UTF-8 text CSV file") from None
    except OSError as e:
        raise TraceError(path, None, f"cannot read the file ({e.strerror})") from None
    if not pre:
        raise TraceError(path, None, "the trace has a header but no requests")
    table = _Table(
        path,
        ia is not None,
        np.asarray(arr, dtype=np.float64),
        np.asarray(pre, dtype=np.int64),
        np.asarray(dec, dtype=np.int64),
        np.asarray(pids, dtype=np.int64) if iid is not None else None,
        np.asarray(plens, dtype=np.int64) if iid is not None else None,
    )
    for array in (table.arrived_at, table.prefill, table.decode, table.prefix_id,
                  table.prefix_len):  # fmt: skip
        if array is not None:
            array.flags.writeable = False
    return table


_MAX_TOKENS = 1 << 31


def _count(text: str) -> int:
    value = float(text)
    if not value.is_integer() or abs(value) >= _MAX_TOKENS:
        raise ValueError(text)
    return int(value)


def _gaps(cfg: WorkloadConfig, qps: float, n: int, rng: np.random.Generator) -> FloatArray:
    mean = 1.0 / qps
    if cfg.arrivals == "poisson":
        return rng.exponential(mean, n)
    if cfg.arrivals == "lognormal":
        mu = math.log(mean) - cfg.sigma**2 / 2.0
        return rng.lognormal(mu, cfg.sigma, n)
    shape = 1.0 / cfg.cv**2
    return rng.gamma(shape, mean / shape, n)


def _diurnal_clock(cfg: WorkloadConfig) -> tuple[FloatArray, FloatArray]:
    """Real times and the expected arrivals by then over the mean rate (``Lambda(t) / qps``)
    for the day-shaped rate ``qps * (1 - a cos(2 pi t / period))``, on a fine grid."""
    assert cfg.duration_s is not None
    period = cfg.period_s if cfg.period_s is not None else cfg.duration_s
    t = np.linspace(0.0, cfg.duration_s, max(10_001, int(cfg.duration_s) + 1))
    w = 2.0 * math.pi / period
    return t, t - cfg.diurnal / w * np.sin(w * t)


def _generate_arrivals(cfg: WorkloadConfig, rng: np.random.Generator) -> FloatArray:
    assert cfg.qps is not None and cfg.duration_s is not None  # checked by the caller
    # A diurnal rate warps time: arrivals generated at the mean rate on the clock of expected
    # arrivals, then mapped back, keep the process's burstiness at every rate.
    clock = _diurnal_clock(cfg) if cfg.diurnal > 0 else None
    horizon = float(clock[1][-1]) if clock is not None else cfg.duration_s
    times: list[FloatArray] = []
    now, batch = 0.0, max(64, int(cfg.qps * cfg.duration_s * 1.2) + 16)
    while True:
        gaps = _gaps(cfg, cfg.qps, batch, rng)
        t = now + np.cumsum(gaps)
        inside = t[t < horizon]
        times.append(inside)
        if len(inside) < batch:
            break
        now = float(t[-1])
    # The first request arrives at time 0, like a replayed trace.
    out = np.concatenate(times)
    if clock is not None:
        out = np.interp(out, clock[1], clock[0])
    return np.concatenate([[0.0], out])


def build_trace(cfg: WorkloadConfig, seed: int, max_context: int | None = None) -> Trace:
    """The requests ``cfg`` describes, for this ``seed``.

    ``max_context`` (the model's context window) caps prompt + output when ``cfg.max_tokens`` is
    not given; how many requests were shortened to fit is the trace's ``capped``.
    """
    _check(cfg)
    if seed < 0:
        raise InputError(f"seed is {seed}: give a non-negative integer")
    lengths, has_arrivals = load_trace_csv(cfg.trace)
    rng_arrivals, rng_pick, rng_prompt, rng_output, rng_chat = (
        generator(seed, s)
        for s in (Stream.ARRIVALS, Stream.PICK, Stream.PROMPT, Stream.OUTPUT, Stream.CHAT)
    )

    if cfg.concurrency is not None:
        ids = lens = None
        n = cfg.max_requests if cfg.max_requests is not None else max(100, 10 * cfg.concurrency)
        arrived = np.zeros(n)  # the clients send them as they go
        pick = rng_pick.integers(0, len(lengths), size=n)
        prefill = lengths.num_prefill_tokens[pick]
        decode = lengths.num_decode_tokens[pick]
    elif cfg.arrivals == "trace":
        if not has_arrivals:
            raise InputError(
                f"trace {cfg.trace!r} has no arrived_at column: choose generated arrivals "
                "(poisson, lognormal or gamma) with a qps and a duration"
            )
        arrived = lengths.arrived_at - lengths.arrived_at[0]
        prefill, decode = lengths.num_prefill_tokens, lengths.num_decode_tokens
        ids, lens = lengths.prefix_id, lengths.prefix_len
        if cfg.qps is not None and len(arrived) > 1 and arrived[-1] > 0:
            natural = (len(arrived) - 1) / arrived[-1]
            arrived = arrived * (natural / cfg.qps)
        if cfg.duration_s is not None:
            keep = arrived < cfg.duration_s
            arrived, prefill, decode = arrived[keep], prefill[keep], decode[keep]
            if ids is not None and lens is not None:
                ids, lens = ids[keep], lens[keep]
    else:
        ids = lens = None  # sampled lengths: a recorded prefix belongs to its own row's order
        arrived = _generate_arrivals(cfg, rng_arrivals)
        pick = rng_pick.integers(0, len(lengths), size=len(arrived))
        prefill = lengths.num_prefill_tokens[pick]
        decode = lengths.num_decode_tokens[pick]

    if cfg.max_requests is not None:
        arrived = arrived[: cfg.max_requests]
        prefill, decode = prefill[: cfg.max_requests], decode[: cfg.max_requests]
        if ids is not None and lens is not None:
            ids, lens = ids[: cfg.max_requests], lens[: cfg.max_requests]
    n = len(arrived)
    prefill = prefill.astype(np.int64, copy=True)
    decode = decode.astype(np.int64, copy=True)
    if cfg.isl is not None:
        prefill[:] = cfg.isl
    if cfg.osl is not None:
        decode[:] = cfg.osl
    factor = cfg.inflation_factor
    if cfg.prompt_inflation > 0:
        hit = rng_prompt.random(n) < cfg.prompt_inflation
        prefill[hit] = np.round(prefill[hit] * factor).astype(np.int64)
    if cfg.output_inflation > 0:
        hit = rng_output.random(n) < cfg.output_inflation
        decode[hit] = np.round(decode[hit] * factor).astype(np.int64)
    cap = cfg.max_tokens if cfg.max_tokens is not None else max_context
    capped = 0
    if cap is not None:
        capped = int(np.count_nonzero(prefill + decode > cap))
        prefill = np.minimum(prefill, cap - 1)
        decode = np.clip(decode, 1, cap - prefill)
    if n == 0:
        raise InputError(f"workload on {cfg.trace!r} produced no requests: raise duration_s or qps")
    arrived = np.asarray(arrived, dtype=np.float64).copy()
    shared = cfg.prefix_groups > 0
    if cfg.turns > 1.0:
        prefill, ids, lens = thread_conversations(prefill, decode, cfg.turns, cap, rng_chat)
    elif shared:
        ids = rng_chat.integers(0, cfg.prefix_groups, size=n).astype(np.int64)
        lens = np.full(n, cfg.prefix_tokens, dtype=np.int64)
        prefill = prefill + cfg.prefix_tokens
    elif ids is not None and lens is not None:  # replayed prefixes, within capped prompts
        ids, lens = ids.copy(), np.minimum(lens, prefill)
    return Trace(
        arrived,
        prefill,
        decode,
        ids,
        lens,
        capped=capped,
        cap=cap,
        concurrency=cfg.concurrency,
        think_s=cfg.think_s,
        shared_prefixes=shared,
    )


def _check(cfg: WorkloadConfig) -> None:
    if cfg.concurrency is not None:
        if cfg.concurrency < 1:
            raise InputError(f"concurrency is {cfg.concurrency}: give at least 1 client")
        if cfg.arrivals != "trace" or cfg.qps is not None or cfg.duration_s is not None:
            raise InputError(
                "a closed-loop workload (concurrency) sends each request when a client's last "
                "one completes: drop qps, duration_s and generated arrivals, and bound it with "
                "max_requests"
            )
    for name in ("isl", "osl"):
        value = getattr(cfg, name)
        if value is not None and value < 1:
            raise InputError(f"{name} is {value}: give a length of at least 1 token")
    if not (math.isfinite(cfg.think_s) and cfg.think_s >= 0):
        raise InputError(f"think_s is {cfg.think_s}: give seconds, >= 0")
    if (
        cfg.concurrency is None
        and cfg.arrivals != "trace"
        and (cfg.qps is None or cfg.duration_s is None)
    ):
        raise InputError(
            f"{cfg.arrivals} arrivals need both qps and duration_s (got qps={cfg.qps}, "
            f"duration_s={cfg.duration_s})"
        )
    if cfg.qps is not None and not (math.isfinite(cfg.qps) and cfg.qps > 0):
        raise InputError(f"qps is {cfg.qps}: give a positive request rate")
    if cfg.duration_s is not None and not (math.isfinite(cfg.duration_s) and cfg.duration_s > 0):
        raise InputError(f"duration_s is {cfg.duration_s}: give a positive number of seconds")
    if not 0.0 <= cfg.diurnal < 1.0:
        raise InputError(
            f"diurnal is {cfg.diurnal}: give the day's swing as a fraction of the mean rate, in "
            "[0, 1) (0.8: the rate goes from 0.2 x qps at night to 1.8 x qps at noon)"
        )
    if cfg.diurnal > 0 and cfg.arrivals == "trace":
        raise InputError(
            "diurnal needs generated arrivals (poisson, lognormal or gamma): a replayed trace "
            "keeps its own arrival times"
        )
    if cfg.period_s is not None and not (math.isfinite(cfg.period_s) and cfg.period_s > 0):
        raise InputError(f"period_s is {cfg.period_s}: give the length of a day in seconds")
    if cfg.sigma <= 0 or cfg.cv <= 0:
        raise InputError(f"arrival shape sigma={cfg.sigma}, cv={cfg.cv}: both must be positive")
    for name in ("prompt_inflation", "output_inflation"):
        frac = getattr(cfg, name)
        if not 0.0 <= frac <= 1.0:
            raise InputError(f"{name} is {frac}: give the fraction of requests, in [0, 1]")
    if cfg.inflation_factor <= 0:
        raise InputError(f"inflation_factor is {cfg.inflation_factor}: it must be positive")
    if not (math.isfinite(cfg.turns) and cfg.turns >= 1.0):
        raise InputError(f"turns is {cfg.turns}: give the mean turns per conversation, >= 1")
    if cfg.max_tokens is not None and cfg.max_tokens < 2:
        raise InputError(f"max_tokens is {cfg.max_tokens}: a request needs at least 2 tokens")
    if cfg.prefix_groups < 0 or (cfg.prefix_groups > 0) != (cfg.prefix_tokens > 0):
        raise InputError(
            f"prefix_groups is {cfg.prefix_groups}, prefix_tokens {cfg.prefix_tokens}: give "
            "both as positive numbers for shared prefixes, or neither"
        )
    if cfg.prefix_groups > 0 and cfg.turns > 1.0:
        raise InputError(
            f"turns is {cfg.turns} with prefix_groups {cfg.prefix_groups}: a workload has "
            "either conversations or shared prefixes; set turns to 1 or prefix_groups to 0"
        )
    if cfg.max_requests is not None and cfg.max_requests < 1:
        raise InputError(f"max_requests is {cfg.max_requests}: it must be at least 1")
