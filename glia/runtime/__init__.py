"""The runtime: actors under supervision, the simulation worker, and a local cluster.

An actor is an object with a ``name``, an async ``run(task_status=...)`` and a ``drain()``;
:func:`supervise` runs actors together, restarting ones that crash and draining them all on a
signal. :class:`SimWorker` is the actor that runs experiments from the bus;
:func:`local_cluster` starts a private nats-server and a worker on this machine's cores.
"""

from ._local import local_cluster
from ._supervise import Actor, ActorFailed, supervise
from ._worker import SimWorker, WorkerStatistics

__all__ = ["Actor", "ActorFailed", "SimWorker", "WorkerStatistics", "local_cluster", "supervise"]
