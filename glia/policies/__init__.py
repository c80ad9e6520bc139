"""Policy design interfaces and the baseline catalogue."""

from ._autoscaler import (
    AUTOSCALERS,
    Autoscaler,
    HpaAutoscaler,
    KpaAutoscaler,
    RayServeAutoscaler,
    StaticAutoscaler,
    resolve_autoscaler,
)
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
    "AUTOSCALERS",
    "BASELINES",
    "SCHEDULERS",
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
    "Mechanisms",
    "PowerOfTwoRouter",
    "RandomRouter",
    "RayServeAutoscaler",
    "ReplicaScheduler",
    "RoundRobinRouter",
    "Router",
    "RouterSpec",
    "SarathiScheduler",
    "ShortestPromptScheduler",
    "StaticAutoscaler",
    "compose",
    "load_design",
    "load_design_source",
    "resolve_autoscaler",
    "resolve_router",
    "resolve_scheduler",
]
