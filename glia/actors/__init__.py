"""Actors: independent units of work that talk over the bus, each owned by a task group."""

from ._worker import SimWorker, WorkerStatistics

__all__ = ["SimWorker", "WorkerStatistics"]
