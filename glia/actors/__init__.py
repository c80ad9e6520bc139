"""The design-run application: a coordinator drives researcher and supervisor agents
(pydantic-ai) that design a policy by experiment, on whatever workers share the bus. See
:func:`glia.design`; the workers themselves are in :mod:`glia.runtime`.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._checkpoint import Checkpoint, ContextState, DesignConfig
    from ._coordinator import Coordinator
    from ._lab import Lab, Outcome, Policy
    from ._models import BudgetExhausted, Meter, MeteredModel, ProviderFailed, resolve_models
    from ._offline import OFFLINE_LABEL, offline_researcher, offline_supervisor
    from ._researcher import Bench, ResearchDeps, researcher_agent
    from ._supervisor import END, supervisor_agent
    from ._workspace import Workspace, WorkspaceError

# The agents' modules (pydantic-ai) load on first use, so sim workers never import them.
_LAZY = {
    "_checkpoint": ("Checkpoint", "ContextState", "DesignConfig"),
    "_coordinator": ("Coordinator",),
    "_lab": ("Lab", "Outcome", "Policy"),
    "_models": ("BudgetExhausted", "Meter", "MeteredModel", "ProviderFailed", "resolve_models"),
    "_offline": ("OFFLINE_LABEL", "offline_researcher", "offline_supervisor"),
    "_researcher": ("Bench", "ResearchDeps", "researcher_agent"),
    "_supervisor": ("END", "supervisor_agent"),
    "_workspace": ("Workspace", "WorkspaceError"),
}
_WHERE = {name: module for module, names in _LAZY.items() for name in names}


def __getattr__(name: str) -> object:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "END",
    "OFFLINE_LABEL",
    "Bench",
    "BudgetExhausted",
    "Checkpoint",
    "ContextState",
    "Coordinator",
    "DesignConfig",
    "Lab",
    "Meter",
    "MeteredModel",
    "Outcome",
    "Policy",
    "ProviderFailed",
    "ResearchDeps",
    "Workspace",
    "WorkspaceError",
    "offline_researcher",
    "offline_supervisor",
    "researcher_agent",
    "resolve_models",
    "supervisor_agent",
]
