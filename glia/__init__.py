"""Glia: AI agents that design LLM-serving cluster policies by experiment in a fast simulator."""

from glia._batch import DesignFailed, Experiment, run_batch, run_experiment
from glia._client import Client, SubmittedRun, connect, local_cluster
from glia._errors import DesignError, GliaError, InputError, SimulationError, TraceError
from glia.api import experiment_config, simulate
from glia.policies import BASELINES, Router
from glia.sim import ClusterConfig, ClusterView, Request, SimResult, Summary, WorkloadConfig
from glia.sim._presets import PRESETS

__version__ = "0.1.0"

__all__ = [
    "BASELINES",
    "PRESETS",
    "Client",
    "ClusterConfig",
    "ClusterView",
    "DesignError",
    "DesignFailed",
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
    "connect",
    "experiment_config",
    "local_cluster",
    "run_batch",
    "run_experiment",
    "simulate",
]
