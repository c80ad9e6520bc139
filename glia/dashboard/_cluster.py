"""The dashboard's cluster page: workers (heartbeats, slots, current experiments), the work
queue's depth and the dead letters.

Workers and experiments come from the live event stream (:class:`~glia.dashboard.Live`); the
queue's depth and the dead-letter count are asked of JetStream when the page is loaded (cheap:
one stream-info request each), since no event carries them.
"""

from __future__ import annotations

import html
import time
from collections.abc import Awaitable, Callable

import msgspec
from aiohttp import web

from glia.bus import NatsBus
from glia.bus._subjects import DEAD_LETTERS_STREAM
from glia.dashboard._live import Live

__all__ = ["QueueState", "cluster_page", "nats_probe"]

_REFRESH_S = 2
"""The page reloads itself this often (a heartbeat's period): no script needed."""


class QueueState(msgspec.Struct, frozen=True, kw_only=True):
    """What JetStream says about the work: requests waiting, and requests given up on."""

    depth: int
    dead_letters: int


Probe = Callable[[], Awaitable[QueueState]]


def nats_probe(bus: NatsBus) -> Probe:
    """Reads the queue's depth and the dead-letter count from ``bus``'s JetStream."""

    async def probe() -> QueueState:
        dead = await bus.js.stream_info(DEAD_LETTERS_STREAM)
        return QueueState(depth=await bus.queue_depth(), dead_letters=int(dead.state.messages))

    return probe


async def cluster_page(live: Live | None, probe: Probe | None) -> web.Response:
    """The cluster page (an explanation instead when the dashboard follows no bus)."""
    head = f"<!doctype html><meta charset=utf-8><meta http-equiv=refresh content={_REFRESH_S}>"
    if live is None:
        body = "<p>no bus: start the dashboard with --nats URL to see the cluster</p>"
        return web.Response(text=f"{head}<title>Cluster</title><h1>Cluster</h1>{body}",
                            content_type="text/html")  # fmt: skip
    now = time.time()
    current: dict[str, list[str]] = {}
    for key, (worker, label) in sorted(live.running.items()):
        current.setdefault(worker, []).append(f"{key.split('/')[0]}: {label}")
    rows = "".join(
        f"<tr data-worker='{html.escape(w.worker)}'><td>{html.escape(w.worker)}</td>"
        f"<td>{w.concurrency}</td><td>{w.running}</td><td>{w.done}</td><td>{w.failed}</td>"
        f"<td>{max(0.0, now - w.at):.0f} s ago</td>"
        f"<td>{html.escape('; '.join(current.get(w.worker, [])))}</td></tr>"
        for w in sorted(live.workers.values(), key=lambda h: h.worker)
    )
    queue = await probe() if probe is not None else None
    depth = "" if queue is None else str(queue.depth)
    dead = "" if queue is None else str(queue.dead_letters)
    body = (
        "<table class=queue><tr><th>queued<th>running<th>failed<th>queue depth<th>dead letters"
        f"</tr><tr><td>{len(live.queued)}</td><td>{len(live.running)}</td><td>{live.failed}</td>"
        f"<td>{depth}</td><td>{dead}</td></tr></table>"
        "<table class=workers><tr><th>worker<th>slots<th>running<th>done<th>failed"
        f"<th>last heartbeat<th>current experiments</tr>{rows}</table>"
    )
    return web.Response(text=f"{head}<title>Cluster</title><h1>Cluster</h1>{body}",
                        content_type="text/html")  # fmt: skip
