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
from ._scheduler import (
    SCHEDULERS,
    FairScheduler,
    FcfsScheduler,
    ReplicaScheduler,
    SarathiScheduler,
    ShortestPromptScheduler,
    resolve_scheduler,
)

__all__ = [
    "BASELINES",
    "SCHEDULERS",
    "Assignment",
    "CacheAwareRouter",
    "ExpertRouter",
    "FairScheduler",
    "FcfsScheduler",
    "HeadRoomAdmissionRouter",
    "LeastKvRouter",
    "LeastLoadedQueueRouter",
    "LeastOutstandingRouter",
    "LlmdPrefixRouter",
    "LlmdScorerRouter",
    "Mechanisms",
    "PowerOfTwoRouter",
    "RandomRouter",
    "ReplicaScheduler",
    "RoundRobinRouter",
    "Router",
    "RouterSpec",
    "SarathiScheduler",
    "ShortestPromptScheduler",
    "compose",
    "load_design",
    "load_design_source",
    "resolve_router",
    "resolve_scheduler",
]
