"""Glia: AI agents that design LLM-serving cluster policies by experiment in a fast simulator."""

from typing import TYPE_CHECKING

from glia._batch import run_batch, run_experiment
from glia._client import Client, SubmittedRun, connect
from glia._errors import DesignError, GliaError, InputError, SimulationError, TraceError
from glia.api import simulate
from glia.experiment import DesignFailed, Experiment, experiment_config
from glia.policies import BASELINES, Router
from glia.presets import PRESETS
from glia.runtime import local_cluster
from glia.sim import ClusterConfig, ClusterView, Request, SimResult, Summary, WorkloadConfig

if TYPE_CHECKING:
    from glia._design import DesignRun, DesignStop, design, design_async
    from glia.compare import Comparison
    from glia.compare import compare as compare_methods
    from glia.compare import compare_async as compare_methods_async

__version__ = "0.1.0"

__all__ = [
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


def __getattr__(name: str) -> object:
    # The agents (pydantic-ai and its providers) load on first use: `glia simulate` and the
    # workers never pay for them.
    if name in ("DesignRun", "DesignStop", "design", "design_async"):
        from glia import _design

        return getattr(_design, name)
    # `glia.compare` is the package of the comparison; its runner is `compare_methods`.
    if name in ("Comparison", "compare_methods", "compare_methods_async"):
        from glia.compare import _compare

        return getattr(
            _compare,
            {"compare_methods": "compare", "compare_methods_async": "compare_async"}.get(
                name, name
            ),
        )
    raise AttributeError(f"module 'glia' has no attribute {name!r}")
