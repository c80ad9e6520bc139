"""Comparing design methods: ``glia compare`` runs every method x repeat as an independent
design run and reports scores with bootstrap CIs, search curves, T90/T95, valid-candidate
rates and costs. The statistics are pure functions; the runner and methods load on first use
(they bring the agents)."""

from typing import TYPE_CHECKING

from glia.compare._stats import bootstrap_ci, sims_to_reach, sims_to_reach_cost

if TYPE_CHECKING:
    from glia.compare._compare import Comparison, compare, compare_async, summarize
    from glia.compare._methods import METHODS, Method, MethodSetup
    from glia.compare._records import CompareConfig, MethodSummary, RunResult

_LAZY = {
    "_compare": ("Comparison", "compare", "compare_async", "summarize"),
    "_methods": ("METHODS", "Method", "MethodSetup"),
    "_records": ("CompareConfig", "MethodSummary", "RunResult"),
}
_WHERE = {name: module for module, names in _LAZY.items() for name in names}

__all__ = [
    "METHODS",
    "CompareConfig",
    "Comparison",
    "Method",
    "MethodSetup",
    "MethodSummary",
    "RunResult",
    "bootstrap_ci",
    "compare",
    "compare_async",
    "sims_to_reach",
    "sims_to_reach_cost",
    "summarize",
]


def __getattr__(name: str) -> object:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
