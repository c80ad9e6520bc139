"""Policy design interfaces and the baseline catalogue."""

from ._baselines import (
    BASELINES,
    ExpertRouter,
    HeadRoomAdmissionRouter,
    LeastKvRouter,
    LeastLoadedQueueRouter,
    LeastOutstandingRouter,
    LlmdScorerRouter,
    PowerOfTwoRouter,
    RandomRouter,
    RoundRobinRouter,
)
from ._registry import RouterSpec, load_design, load_design_source, resolve_router
from ._router import Assignment, Router

__all__ = [
    "BASELINES",
    "Assignment",
    "ExpertRouter",
    "HeadRoomAdmissionRouter",
    "LeastKvRouter",
    "LeastLoadedQueueRouter",
    "LeastOutstandingRouter",
    "LlmdScorerRouter",
    "PowerOfTwoRouter",
    "RandomRouter",
    "RoundRobinRouter",
    "Router",
    "RouterSpec",
    "load_design",
    "load_design_source",
    "resolve_router",
]
