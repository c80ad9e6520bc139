"""The public names: adding or removing one is a deliberate API change."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

import glia
import glia.actors
import glia.compare
import glia.policies
import glia.report
import glia.runtime
import glia.sim

GLIA = [
    "BASELINES",
    "PRESETS",
    "Client",
    "ClusterConfig",
    "ClusterView",
    "Comparison",
    "DesignError",
    "DesignFailed",
    "DesignRun",
    "DesignStop",
    "Experiment",
    "GliaError",
    "InputError",
    "Request",
    "Router",
    "SimResult",
    "SimulationError",
    "SubmittedRun",
    "Summary",
    "TraceError",
    "WorkloadConfig",
    "__version__",
    "compare_methods",
    "compare_methods_async",
    "connect",
    "design",
    "design_async",
    "experiment_config",
    "local_cluster",
    "run_batch",
    "run_experiment",
    "simulate",
]

SIM = [
    "COLUMNS",
    "KINDS",
    "MEASUREMENTS",
    "PROFILES",
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
    "ReplicaView",
    "Request",
    "RequestTable",
    "ReplicaGroup",
    "ReplicaState",
    "ResolvedCluster",
    "ResolvedReplica",
    "RoutingPolicy",
    "RunningRequest",
    "ScalingPolicy",
    "SimResult",
    "Summary",
    "Trace",
    "Trigger",
    "SCRAPED_FIELDS",
    "StaleReplicaView",
    "UNSCRAPABLE_FIELDS",
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

POLICIES = [
    "BASELINES",
    "SCHEDULERS",
    "AUTOSCALERS",
    "Assignment",
    "Autoscaler",
    "CacheAwareRouter",
    "ExpertRouter",
    "FairScheduler",
    "FcfsScheduler",
    "HeadRoomAdmissionRouter",
    "HpaAutoscaler",
    "KpaAutoscaler",
    "LeastKvRouter",
    "LeastLoadedQueueRouter",
    "LeastOutstandingRouter",
    "LlmdPrefixRouter",
    "LlmdScorerRouter",
    "LlmdWeighted11Router",
    "LlmdWeighted322Router",
    "Mechanisms",
    "PowerOfTwoRouter",
    "RayServeAutoscaler",
    "RandomRouter",
    "ReplicaScheduler",
    "RoundRobinRouter",
    "Router",
    "RouterSpec",
    "SarathiScheduler",
    "ShortestPromptScheduler",
    "StaticAutoscaler",
    "Policy",
    "ScalerMechanisms",
    "SchedulerMechanisms",
    "compose_autoscaler",
    "compose_scheduler",
    "baseline_router",
    "compose",
    "load_design",
    "load_design_source",
    "resolve_autoscaler",
    "resolve_router",
    "resolve_scheduler",
]


ACTORS = [
    "END", "OFFLINE_LABEL", "Bench", "BudgetExhausted",
    "Checkpoint", "ContextState", "Coordinator", "DesignConfig", "Lab", "Meter", "MeteredModel",
    "Outcome", "Policy", "ProviderFailed", "ResearchDeps",
    "Workspace", "WorkspaceError", "offline_researcher", "offline_supervisor",
    "researcher_agent", "resolve_models", "supervisor_agent",
]  # fmt: skip

COMPARE = [
    "METHODS", "CompareConfig", "Comparison", "Method", "MethodSetup", "MethodSummary",
    "RunResult", "bootstrap_ci", "compare", "compare_async", "sims_to_reach",
    "sims_to_reach_cost", "summarize",
]  # fmt: skip

RUNTIME = ["Actor", "ActorFailed", "SimWorker", "WorkerStatistics", "local_cluster", "supervise"]

REPORT = [
    "Budget", "LogEntry", "ModelUsage", "RunRecord", "Trial", "Validation", "load_record",
    "save_record", "write_report",
]  # fmt: skip


@pytest.mark.parametrize(
    ("module", "names"),
    [
        (glia, GLIA),
        (glia.sim, SIM),
        (glia.policies, POLICIES),
        (glia.actors, ACTORS),
        (glia.runtime, RUNTIME),
        (glia.report, REPORT),
        (glia.compare, COMPARE),
    ],
)
def test_all_is_pinned(module: ModuleType, names: list[str]) -> None:
    assert sorted(module.__all__) == sorted(names)
    assert len(set(module.__all__)) == len(module.__all__)
    for name in names:
        assert hasattr(module, name), f"{module.__name__}.{name}"


def test_the_same_objects_everywhere() -> None:
    assert glia.Router is glia.policies.Router
    assert glia.BASELINES is glia.policies.BASELINES
    for name in ("ClusterConfig", "ClusterView", "Request", "SimResult", "Summary"):
        assert getattr(glia, name) is getattr(glia.sim, name)


def test_the_comparison_runner_is_glia_compare_methods() -> None:
    assert glia.compare_methods is glia.compare.compare
    assert glia.compare_methods_async is glia.compare.compare_async
    assert glia.Comparison is glia.compare.Comparison


def test_the_error_hierarchy() -> None:
    assert issubclass(glia.InputError, glia.GliaError)
    assert issubclass(glia.InputError, ValueError)
    assert issubclass(glia.TraceError, glia.InputError)
    assert issubclass(glia.DesignError, glia.GliaError)
    assert issubclass(glia.SimulationError, glia.GliaError)
    assert not issubclass(glia.DesignError, glia.InputError)


def test_version() -> None:
    assert glia.__version__ == "0.1.0"


def test_presets() -> None:
    assert sorted(glia.PRESETS) == [
        "azure-autoscale",
        "azure-conv",
        "chat-prefix",
        "diurnal",
        "glia-routing",
        "glia-scheduling",
        "prefix-heavy",
        "prefix-heavy-bursty",
        "sharegpt-conv",
    ]
    paper = glia.PRESETS["glia-routing"]
    c = paper.cluster
    assert (c.num_replicas, c.gpu, c.model, c.num_blocks, c.block_size) == (
        4,
        "A10",
        "llama-3-8b",
        2240,
        16,
    )
    assert (c.chunk_size, c.max_batch_size, c.watermark) == (8192, 128, 0.01)
    w = paper.workload
    assert (w.trace, w.arrivals, w.qps, w.duration_s, w.sigma) == (
        "sharegpt_first_turn",
        "lognormal",
        7.5,
        1000.0,
        2.0,
    )
    assert (w.prompt_inflation, w.output_inflation, w.inflation_factor, w.max_tokens) == (
        0.05,
        0.05,
        10.0,
        8192,
    )


# -- experiment_config: presets with overrides -------------------------------------------------


def test_overrides_change_single_fields() -> None:
    c, w = glia.experiment_config("glia-routing", num_replicas=8, qps=9.0, seed=None)
    assert (c.num_replicas, c.num_blocks, w.qps) == (8, 2240, 9.0)
    assert w.duration_s == 1000.0


def test_other_hardware_re_derives_the_kv_capacity() -> None:
    c, _ = glia.experiment_config("glia-routing", gpu="A100")
    assert c.num_blocks is None
    assert c.resolve().num_blocks > 2240
    same, _ = glia.experiment_config("glia-routing", gpu="a10")  # the same GPU, another spelling
    assert same.num_blocks == 2240
    given, _ = glia.experiment_config("glia-routing", gpu="A100", num_blocks=1000)
    assert given.num_blocks == 1000


def test_a_trace_override_replays_its_own_arrivals() -> None:
    _, w = glia.experiment_config("glia-routing", trace="azure_conv")
    assert (w.trace, w.arrivals, w.qps, w.duration_s) == ("azure_conv", "trace", None, None)
    assert (w.prompt_inflation, w.output_inflation) == (0.0, 0.0)
    _, w = glia.experiment_config("glia-routing", trace="sharegpt")  # lengths only
    assert (w.arrivals, w.qps, w.prompt_inflation) == ("lognormal", 7.5, 0.0)


def test_a_lengths_only_trace_on_a_replay_preset() -> None:
    with pytest.raises(glia.InputError, match=r"^trace 'sharegpt' has no arrived_at column"):
        glia.experiment_config("azure-conv", trace="sharegpt")


def test_unknown_settings_and_presets() -> None:
    with pytest.raises(glia.InputError, match=r"^unknown setting\(s\) colour, speed: choose from "):
        glia.experiment_config("glia-routing", speed=2, colour="red")
    with pytest.raises(glia.InputError) as err:
        glia.simulate("llq", preset="nope")
    assert str(err.value) == (
        "unknown preset 'nope': choose one of "
        "azure-autoscale, azure-conv, chat-prefix, diurnal, glia-routing, glia-scheduling, "
        "prefix-heavy, prefix-heavy-bursty, sharegpt-conv"
    )
    with pytest.raises(glia.InputError, match=r"^invalid setting: "):
        glia.experiment_config("glia-routing", num_replicas="four")


def test_simulate_with_overrides() -> None:
    r = glia.simulate("llq", duration_s=30.0, num_replicas=2, seed=3)
    assert r.cluster.num_replicas == 2
    assert r.workload.duration_s == 30.0
    assert r.seed == 3
    assert r.router == "llq"
    assert set(r.requests.replica_id.tolist()) == {0, 1}
    assert r.summary.num_requests == len(r.requests)


def test_results_round_trip_through_their_files(tmp_path: Path) -> None:
    r = glia.simulate("hra", duration_s=20.0)
    table, summary = r.write(tmp_path / "out")
    back = glia.sim.RequestTable.from_csv(table.read_text(encoding="utf-8"))
    for name in glia.sim.COLUMNS:
        a, b = getattr(r.requests, name), getattr(back, name)
        assert a.dtype == b.dtype, name
        assert np.array_equal(a, b), name
    data = json.loads(summary.read_text(encoding="utf-8"))
    assert data["router"] == "hra"
    assert data["mean_e2e_s"] == r.summary.mean_e2e_s
    assert data["num_requests"] == len(r.requests)
    assert data["cluster"]["num_blocks"] == 2240
    with pytest.raises(ValueError, match="not a per-request table"):
        glia.sim.RequestTable.from_csv("a,b\n1,2\n")
