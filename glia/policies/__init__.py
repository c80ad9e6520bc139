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
from ._policy import Policy
from ._registry import (
    RouterSpec,
    baseline_router,
    load_design,
    load_design_source,
    resolve_router,
)
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
from ._task_mechanisms import (
    ScalerMechanisms,
    SchedulerMechanisms,
    compose_autoscaler,
    compose_scheduler,
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
    "Policy",
    "PowerOfTwoRouter",
    "RandomRouter",
    "RayServeAutoscaler",
    "ReplicaScheduler",
    "RoundRobinRouter",
    "Router",
    "RouterSpec",
    "SarathiScheduler",
    "ScalerMechanisms",
    "SchedulerMechanisms",
    "ShortestPromptScheduler",
    "StaticAutoscaler",
    "baseline_router",
    "compose",
    "compose_autoscaler",
    "compose_scheduler",
    "load_design",
    "load_design_source",
    "resolve_autoscaler",
    "resolve_router",
    "resolve_scheduler",
]
