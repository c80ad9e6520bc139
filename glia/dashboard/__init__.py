"""``glia dashboard``: watch design runs in a browser, finished (from disk) and live (from the bus).

See :func:`make_app` and :class:`Live`. Built on aiohttp, already a dependency of Glia, so the
dashboard adds no new package to install; live updates are server-sent events read by a small
vanilla-JS file shipped in the package (no internet needed).
"""

from glia.dashboard._cluster import QueueState, cluster_page, nats_probe
from glia.dashboard._live import EventSource, Live, RunView
from glia.dashboard._server import TokenRequired, make_app

__all__ = [
    "EventSource",
    "Live",
    "QueueState",
    "RunView",
    "TokenRequired",
    "cluster_page",
    "make_app",
    "nats_probe",
]
