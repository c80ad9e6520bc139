"""The routing design interface: what a router sees, and what it returns."""

from __future__ import annotations

from glia.sim import ClusterView, Request

from ._policy import Policy

__all__ = ["Assignment", "Router"]

Assignment = tuple[int, Request]
"""``(replica index, request)``: send this request from the global queue to that replica."""


class Router(Policy):
    """Base class of every router: subclass it and implement :meth:`schedule`.

    The simulator calls :meth:`schedule` after every request arrival and after every iteration
    that completed a request. ``cluster.queue`` holds the requests not yet routed, in arrival
    order; return the ones to route now as ``(replica index, request)`` pairs, in the order they
    should join the replicas' queues. Requests not returned stay in the global queue (the router
    may hold them, e.g. for admission control) and are offered again at the next call; once the
    whole cluster is idle, held requests make the simulation fail. Routers never see a request's
    true output length.

    ``self.rng`` is a seeded ``numpy.random.Generator``: use it for any randomness so that a
    seed fully determines the run.

    Example::

        class LeastLoaded(Router):
            def schedule(self, cluster):
                out = []
                load = [r.num_outstanding for r in cluster.replicas]
                for req in cluster.queue:
                    best = min(range(len(load)), key=load.__getitem__)
                    out.append((best, req))
                    load[best] += 1
                return out
    """

    def schedule(self, cluster: ClusterView) -> list[Assignment]:
        """Return the requests of ``cluster.queue`` to route now, with their replicas."""
        raise NotImplementedError(f"{type(self).__name__} must implement schedule(cluster)")
