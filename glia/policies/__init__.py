"""Policy design interfaces and the baseline catalogue."""

from ._baselines import (
    BASELINES,
    CacheAwareRouter,
    ExpertRouter,
    HeadRoomAdmissionRouter,
    LeastKvRouter,
    LeastLoadedQueueRouter,
    LeastOutstandingRouter,
    LlmdPrefixRouter,
    LlmdScorerRouter,
    PowerOfTwoRouter,
    RandomRouter,
    RoundRobinRouter,
)
from ._mechanisms import Mechanisms, compose
from ._registry import RouterSpec, load_design, load_design_source, resolve_router
from ._router import Assignment, Router

__all__ = [
    "BASELINES",
    "Assignment",
    "CacheAwareRouter",
    "ExpertRouter",
    "HeadRoomAdmissionRouter",
    "LeastKvRouter",
    "LeastLoadedQueueRouter",
    "LeastOutstandingRouter",
    "LlmdPrefixRouter",
    "LlmdScorerRouter",
    "Mechanisms",
    "PowerOfTwoRouter",
    "RandomRouter",
    "RoundRobinRouter",
    "Router",
    "RouterSpec",
    "compose",
    "load_design",
    "load_design_source",
    "resolve_router",
]
