"""Actors: independent units of work that talk over the bus, each owned by a task group."""

from ._runtime import Actor, ActorFailed, supervise
from ._worker import SimWorker, WorkerStatistics

__all__ = ["Actor", "ActorFailed", "SimWorker", "WorkerStatistics", "supervise"]
