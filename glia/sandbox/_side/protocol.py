"""The wire protocol between the trusted simulator and a design's sandbox process.

Frames are a 4-byte big-endian length and a msgpack body. Every message is plain data, and
the trusted side decodes the sandbox's messages against :data:`FromSandbox` only, with a size
cap: nothing from a design's process is ever unpickled or trusted beyond its schema.

The simulator speaks first (:class:`Start`, :class:`Setup`, then one :class:`Call` per policy
call); the sandbox answers each with exactly one decision (or :class:`Failed`), after any
number of :class:`Fetch` requests for the heavy fields of a view. Snapshots are incremental:
a :class:`Call` carries only the requests that arrived since the previous one and a replica's
queue only when it changed.
"""

from __future__ import annotations

import os
from typing import Literal

import msgspec

from .views import Request

__all__ = [
    "MAX_FRAME",
    "SPIN_S",
    "Call",
    "Failed",
    "Fetch",
    "FromSandbox",
    "Loaded",
    "Ordered",
    "Ready",
    "ReplicaInfo",
    "ReplicaState",
    "Routed",
    "Running",
    "Scaled",
    "Setup",
    "Start",
    "Victim",
]

MAX_FRAME = 4 << 20
"""Largest message the trusted side accepts from a sandbox (a routing call's decisions for a
queue of ~100k requests fit)."""

_CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
SPIN_S = 200e-6 if (_CPUS or 1) > 1 else 0.0
"""How long either end polls for the other's next message before it sleeps. A round trip's
two wake-ups cost tens of microseconds each; the answer to a routing call, and the
simulator's next call, usually come sooner than that. Not on one CPU, where a poller only
keeps the other end from running."""


Method = Literal["schedule", "order", "victim", "scale"]


class _Msg(msgspec.Struct, frozen=True, tag_field="t", array_like=True):
    pass


# -- trusted side -> sandbox -----------------------------------------------------------------
class Start(_Msg, frozen=True, tag="start"):
    task: Literal["routing", "scheduling", "autoscaling"]
    source: str
    check_only: bool = False
    output_kb: int = 8


class ReplicaInfo(msgspec.Struct, frozen=True, array_like=True):
    """What never changes about a replica."""

    id: int
    gpu: str
    model: str
    num_blocks: int
    block_size: int
    watermark_blocks: int


class ReplicaState(msgspec.Struct, frozen=True, array_like=True):
    """A replica now; ``queue`` (request ids) is ``None`` when unchanged since the last call,
    and the block counts are -1 until the policy first reads them (reading them costs the
    simulator, which advances lazily, a replica's exact state)."""

    id: int
    num_allocated_blocks: int
    num_running: int
    prefix_cache_blocks: int
    queue: list[int] | None = None
    metrics_age_s: float = 0.0
    """Age of the scraped fields (``metrics_interval_s`` above 0; 0 for exact views)."""
    num_outstanding: int = -1
    """The router's own count of requests in flight here when the other counts are scraped (then
    it differs from queue plus running); -1 for exact views."""


class Setup(_Msg, frozen=True, tag="setup"):
    replicas: list[ReplicaInfo]
    rng: str
    """The policy's generator: ``numpy.random.Generator.bit_generator.state`` as JSON."""


class Load(msgspec.Struct, frozen=True, array_like=True):
    window_s: float
    arrivals: int
    completions: int
    min_replicas: int
    max_replicas: int
    num_active: int
    num_starting: int
    num_draining: int
    num_ongoing: int


class Call(_Msg, frozen=True, tag="call"):
    method: Method
    now: float
    trigger: str = "arrival"
    arrived: list[Request] = []
    """Requests that joined the global queue since the previous call, in arrival order."""
    known: list[Request] = []
    """Other requests the policy has not been shown yet (those a replica's queue names)."""
    full: bool = False
    """``arrived`` is the whole global queue (for a policy that does not route, whose view of
    the queue others change), not what was added to it."""
    replicas: list[ReplicaState] = []
    """The replicas a router may use now, in order (one, for a scheduler's call)."""
    replica: int = -1
    """The replica a scheduler is called for."""
    admitted: list[list[int]] = []
    """A scheduler's pending ``admitted()`` notices: ``[replica, id, id, ...]`` each."""
    load: Load | None = None
    introduced: list[ReplicaInfo] = []
    """Replicas the policy has not been shown yet (an autoscaler turned them on)."""


class Running(msgspec.Struct, frozen=True, array_like=True):
    request: Request
    num_processed_tokens: int
    num_generated_tokens: int
    num_allocated_blocks: int
    in_prefill: bool
    num_restarts: int


class Answer(_Msg, frozen=True, tag="answer"):
    """The answer to a :class:`Fetch`."""

    running: list[Running] = []
    cached: int = 0
    blocks: tuple[int, int] = (0, 0)
    """``(num_allocated_blocks, prefix_cache_blocks)``."""


class Finish(_Msg, frozen=True, tag="finish"):
    pass


ToSandbox = Start | Setup | Call | Answer | Finish


# -- sandbox -> trusted side -----------------------------------------------------------------
class Loaded(_Msg, frozen=True, tag="loaded"):
    """The design loaded: its policy's name (``name``, else the class's), and an autoscaler's
    ``interval_s`` (read, as the simulator does, before ``setup()``)."""

    name: str
    interval_s: float = 15.0


class Ready(_Msg, frozen=True, tag="ready"):
    """``setup()`` returned: the settings the simulator reads once."""

    token_budget: int | None = None
    skip_blocked: bool = False
    admitted: bool = False
    """Whether the design overrides ``admitted()`` (else its notices are not sent)."""


class Fetch(_Msg, frozen=True, tag="fetch"):
    what: Literal["running", "cached", "blocks"]
    replica: int
    request: int = -1


class Routed(_Msg, frozen=True, tag="routed"):
    pairs: list[tuple[int, int]]
    """``(replica index, request id)``."""


class Ordered(_Msg, frozen=True, tag="ordered"):
    ids: list[int]


class Victim(_Msg, frozen=True, tag="victim"):
    id: int


class Scaled(_Msg, frozen=True, tag="scaled"):
    count: int


class Failed(_Msg, frozen=True, tag="failed"):
    kind: Literal["syntax", "import", "exception", "memory", "cpu", "forbidden", "invalid-decision"]
    message: str
    traceback: str = ""
    output: str = ""


FromSandbox = Loaded | Ready | Fetch | Routed | Ordered | Victim | Scaled | Failed
