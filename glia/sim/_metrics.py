"""Per-request metrics, the run summary, and writing them out.

Column names follow Microsoft Vidur's ``request_metrics.csv`` where it has one.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np
import numpy.typing as npt

from ._config import ClusterConfig, WorkloadConfig

__all__ = ["COLUMNS", "RequestTable", "SimResult", "Summary", "summarize"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

COLUMNS = (
    "request_id",
    "arrived_at",
    "scheduled_at",
    "prefill_completed_at",
    "completed_at",
    "request_e2e_time",
    "prefill_e2e_time",
    "decode_time_per_token",
    "request_scheduling_delay",
    "request_slowdown",
    "request_num_restarts",
    "replica_id",
    "request_num_prefill_tokens",
    "request_num_decode_tokens",
    "request_num_tokens",
)


_INT_COLUMNS = frozenset(
    {
        "request_id",
        "request_num_restarts",
        "replica_id",
        "request_num_prefill_tokens",
        "request_num_decode_tokens",
        "request_num_tokens",
    }
)


@dataclass(frozen=True, eq=False)
class RequestTable:
    """One row per request, in trace order: read-only numpy arrays named like the CSV columns.

    ``prefill_e2e_time`` is the time to first token (TTFT), ``decode_time_per_token`` the mean
    time per output token after the first (TPOT, 0 for one-token outputs), ``request_slowdown``
    the end-to-end time over the time the request takes alone on an idle replica.
    """

    request_id: IntArray
    arrived_at: FloatArray
    scheduled_at: FloatArray
    prefill_completed_at: FloatArray
    completed_at: FloatArray
    request_e2e_time: FloatArray
    prefill_e2e_time: FloatArray
    decode_time_per_token: FloatArray
    request_scheduling_delay: FloatArray
    request_slowdown: FloatArray
    request_num_restarts: IntArray
    replica_id: IntArray
    request_num_prefill_tokens: IntArray
    request_num_decode_tokens: IntArray
    request_num_tokens: IntArray

    def __post_init__(self) -> None:
        for name in COLUMNS:
            getattr(self, name).flags.writeable = False

    def __len__(self) -> int:
        return len(self.request_id)

    @classmethod
    def from_csv(cls, text: str) -> RequestTable:
        """Parse :meth:`to_csv` output (e.g. a worker's artifact) back into a table."""
        rows = list(csv.reader(io.StringIO(text)))
        if not rows or tuple(rows[0]) != COLUMNS:
            raise ValueError("not a per-request table: the header differs from COLUMNS")
        body = list(zip(*rows[1:], strict=True)) if len(rows) > 1 else [()] * len(COLUMNS)
        cols: dict[str, np.ndarray] = {}
        for name, values in zip(COLUMNS, body, strict=True):
            kind = np.int64 if name in _INT_COLUMNS else np.float64
            cols[name] = np.asarray([kind(v) for v in values], dtype=kind)
        return cls(**cols)

    def to_csv(self) -> str:
        """The table as CSV text with a header row."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(COLUMNS)
        cols = [getattr(self, name).tolist() for name in COLUMNS]
        w.writerows(zip(*cols, strict=True))
        return buf.getvalue()


class Summary(msgspec.Struct, frozen=True, kw_only=True):
    """Aggregate metrics of one simulation. Times in seconds."""

    num_requests: int
    sim_duration_s: float
    wall_s: float
    mean_e2e_s: float
    p50_e2e_s: float
    p90_e2e_s: float
    p99_e2e_s: float
    mean_ttft_s: float
    p50_ttft_s: float
    p90_ttft_s: float
    p99_ttft_s: float
    mean_tpot_s: float
    p50_tpot_s: float
    p90_tpot_s: float
    p99_tpot_s: float
    mean_sched_delay_s: float
    p50_sched_delay_s: float
    p90_sched_delay_s: float
    p99_sched_delay_s: float
    mean_slowdown: float
    p50_slowdown: float
    p90_slowdown: float
    p99_slowdown: float
    restarts: int
    requests_restarted: int
    throughput_rps: float
    throughput_tokens_s: float
    gpu_hours: float = 0.0
    """GPU time the replicas were on (loading, serving or draining), in hours."""
    mean_replicas: float = 0.0
    """Replicas on, averaged over the run."""
    scale_events: int = 0
    """Replicas started, cancelled, drained or turned off by an autoscaler."""
    tokens_s_per_gpu: float = 0.0
    """Output tokens per second per GPU: all output tokens over the GPU time the replicas were
    on (as benchmark tools report throughput per GPU)."""
    requests_capped: int = 0
    """Requests of the workload whose prompt + output exceeded the token cap (the workload's
    ``max_tokens``, else the model's context) and were shortened to fit it."""


def _stats(prefix: str, unit: str, a: FloatArray) -> dict[str, float]:
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {
        f"mean_{prefix}{unit}": float(a.mean()),
        f"p50_{prefix}{unit}": float(p50),
        f"p90_{prefix}{unit}": float(p90),
        f"p99_{prefix}{unit}": float(p99),
    }


def summarize(t: RequestTable, wall_s: float) -> Summary:
    """Aggregate a per-request table."""
    duration = float(t.completed_at.max()) if len(t) else 0.0
    fields: dict[str, float | int] = {
        "num_requests": len(t),
        "sim_duration_s": duration,
        "wall_s": wall_s,
        "restarts": int(t.request_num_restarts.sum()),
        "requests_restarted": int((t.request_num_restarts > 0).sum()),
        "throughput_rps": len(t) / duration if duration > 0 else 0.0,
        "throughput_tokens_s": float(t.request_num_decode_tokens.sum()) / duration
        if duration > 0
        else 0.0,
    }
    fields |= _stats("e2e", "_s", t.request_e2e_time)
    fields |= _stats("ttft", "_s", t.prefill_e2e_time)
    fields |= _stats("tpot", "_s", t.decode_time_per_token)
    fields |= _stats("sched_delay", "_s", t.request_scheduling_delay)
    fields |= _stats("slowdown", "", t.request_slowdown)
    return msgspec.convert(fields, Summary)


@dataclass(frozen=True, eq=False)
class SimResult:
    """The outcome of one simulation: its summary, per-request table and what produced them."""

    summary: Summary
    requests: RequestTable
    router: str
    cluster: ClusterConfig
    workload: WorkloadConfig
    seed: int
    scheduler: str | None = None
    autoscaler: str | None = None

    @property
    def policy(self) -> str:
        """The name of the most specific policy that ran: the autoscaler, else the replica
        scheduler, else the router (what a task's comparison is about)."""
        return self.autoscaler or self.scheduler or self.router

    def to_dict(self) -> dict[str, object]:
        """The summary with the experiment's identity, as JSON-ready builtins."""
        out: dict[str, object] = {"router": self.router, "seed": self.seed}
        if self.scheduler is not None:
            out["scheduler"] = self.scheduler
        if self.autoscaler is not None:
            out["autoscaler"] = self.autoscaler
        out |= msgspec.to_builtins(self.summary)
        out["cluster"] = msgspec.to_builtins(self.cluster)
        out["workload"] = msgspec.to_builtins(self.workload)
        return out

    def write(self, out_dir: str | Path) -> tuple[Path, Path]:
        """Write ``requests.csv`` and ``summary.json`` into ``out_dir``; return their paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        table, summary = out / "requests.csv", out / "summary.json"
        table.write_text(self.requests.to_csv(), encoding="utf-8")
        summary.write_bytes(msgspec.json.format(msgspec.json.encode(self.to_dict())) + b"\n")
        return table, summary
