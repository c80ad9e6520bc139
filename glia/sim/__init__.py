"""The cluster simulator: replicas, KV memory, batching, latency model, workloads and metrics.

Pure model code: no bus, no agents, no I/O beyond reading traces.
"""

from ._autoscaling import LoadView, ReplicaState, ScalingPolicy
from ._calibrate import (
    PROFILES,
    CalibrationResult,
    ErrorStats,
    calibrate,
    error_stats,
    load_profile,
    measured,
    predict_ms,
)
from ._config import (
    ArrivalProcess,
    Autoscale,
    ClusterConfig,
    ReplicaGroup,
    ResolvedCluster,
    ResolvedReplica,
    WorkloadConfig,
)
from ._engine import RoutingPolicy, run_simulation
from ._engine_model import EngineModel, Progress
from ._iterations import KINDS, MEASUREMENTS, Iteration, read_iterations
from ._latency import Efficiency, GpuSpec, LatencyModel, ModelSpec, catalogue, derive_num_blocks
from ._metrics import COLUMNS, RequestTable, SimResult, Summary, summarize
from ._replica import IterationRecord
from ._request import Request, RunningRequest
from ._simulate import simulate
from ._views import (
    SCRAPED_FIELDS,
    UNSCRAPABLE_FIELDS,
    ClusterView,
    ReplicaView,
    StaleReplicaView,
    Trigger,
    UnscrapableFieldError,
)
from ._workload import Trace, build_trace, builtin_traces, load_trace_csv

__all__ = [
    "COLUMNS",
    "KINDS",
    "MEASUREMENTS",
    "PROFILES",
    "SCRAPED_FIELDS",
    "UNSCRAPABLE_FIELDS",
    "ArrivalProcess",
    "Autoscale",
    "CalibrationResult",
    "ClusterConfig",
    "ClusterView",
    "Efficiency",
    "EngineModel",
    "ErrorStats",
    "GpuSpec",
    "Iteration",
    "IterationRecord",
    "LatencyModel",
    "LoadView",
    "ModelSpec",
    "Progress",
    "ReplicaGroup",
    "ReplicaState",
    "ReplicaView",
    "Request",
    "RequestTable",
    "ResolvedCluster",
    "ResolvedReplica",
    "RoutingPolicy",
    "RunningRequest",
    "ScalingPolicy",
    "SimResult",
    "StaleReplicaView",
    "Summary",
    "Trace",
    "Trigger",
    "UnscrapableFieldError",
    "WorkloadConfig",
    "build_trace",
    "builtin_traces",
    "calibrate",
    "catalogue",
    "derive_num_blocks",
    "error_stats",
    "load_profile",
    "load_trace_csv",
    "measured",
    "predict_ms",
    "read_iterations",
    "run_simulation",
    "simulate",
    "summarize",
]
