"""Answering an experiment from the result cache: one rule for the client and the workers."""

from __future__ import annotations

import time
from typing import Protocol

import msgspec

from ._messages import Event, ExperimentFinished, ExperimentResult, ResultMessage

__all__ = ["answer_from_cache"]


class _Cache(Protocol):
    async def cached(self, key: str) -> ExperimentResult | None: ...

    async def publish_result(self, result: ResultMessage) -> None: ...

    async def publish_event(self, event: Event) -> None: ...


async def answer_from_cache(
    bus: _Cache, key: str, *, run_id: str, label: str, by: str
) -> ExperimentResult | None:
    """If experiment ``key`` has a cached result, publish it as run ``run_id``'s result (marked
    ``cached``, under ``label``) with its finished event (answered ``by`` a worker, or the
    cache) and return it; else return None and publish nothing."""
    hit = await bus.cached(key)
    if hit is None:
        return None
    mine = msgspec.structs.replace(hit, run_id=run_id, label=label, cached=True)
    await bus.publish_result(mine)
    await bus.publish_event(
        ExperimentFinished(
            run_id=run_id, key=key, label=label, worker=by, mean_e2e_s=hit.summary.mean_e2e_s,
            wall_s=0.0, cached=True, at=time.time(),
        )
    )  # fmt: skip
    return mine
