"""The async client: submit experiments to a cluster of workers and watch runs.

::

    async with glia.connect("nats://host:4222") as c:
        run = await c.submit(experiments)
        results = await c.gather(run)
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio

from glia._errors import DesignError, GliaError, InputError, SimulationError
from glia.bus import (
    Bus,
    Event,
    ExperimentFailure,
    ExperimentQueued,
    ExperimentRequest,
    NatsBus,
    ResultMessage,
    SteerMessage,
    answer_from_cache,
    steer_message,
)
from glia.experiment import DesignFailed, Experiment
from glia.sandbox import SLOTS
from glia.sim import RequestTable, SimResult

__all__ = ["Client", "SubmittedRun", "connect", "new_run_id"]


_FAILURES: dict[str, type[GliaError]] = {"design": DesignError, "input": InputError}
"""The error raised for a worker's failure kind (others: ``SimulationError``)."""


def new_run_id() -> str:
    """A fresh run id: time-sortable and unique (safe in NATS subjects)."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class SubmittedRun:
    """What :meth:`Client.submit` queued: the run id and each experiment's key, in order."""

    run_id: str
    keys: tuple[str, ...]
    labels: tuple[str, ...]


class Client:
    """Submits experiments and reads results and events over a :class:`~glia.bus.Bus`."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    async def submit(
        self,
        experiments: Sequence[Experiment],
        *,
        run_id: str | None = None,
        labels: Sequence[str] | None = None,
    ) -> SubmittedRun:
        """Queue experiments for run ``run_id`` (new if not given).

        An experiment whose result is cached is answered at once from the cache and never runs
        again; one submitted twice to the same run is queued once.
        """
        run = run_id or new_run_id()
        names = list(labels) if labels is not None else [e.router for e in experiments]
        if len(names) != len(experiments):
            raise ValueError(f"{len(names)} labels for {len(experiments)} experiments")
        keys = [e.key() for e in experiments]
        queued: set[str] = set()
        for exp, key, label in zip(experiments, keys, names, strict=True):
            if key in queued:
                continue
            queued.add(key)
            if await answer_from_cache(self.bus, key, run_id=run, label=label, by="cache"):
                continue
            request = ExperimentRequest(run_id=run, experiment=exp, label=label)
            await self.bus.submit(request, msg_id=f"{run}.{key}")
            await self.bus.publish_event(
                ExperimentQueued(run_id=run, key=key, label=label, at=time.time())
            )
        return SubmittedRun(run, tuple(keys), tuple(names))

    async def gather(self, run: SubmittedRun, timeout: float | None = None) -> list[ResultMessage]:
        """The result (or failure) of every experiment of ``run``, in submission order.

        Each experiment's first result counts; a duplicate (e.g. from a redelivery after a
        worker died just before acknowledging) is ignored. Raises ``TimeoutError`` after
        ``timeout`` seconds.
        """
        wanted = set(run.keys)
        got: dict[str, ResultMessage] = {}
        with anyio.fail_after(timeout):
            async with self.bus.results(run.run_id) as results:
                async for msg in results:
                    if msg.key in wanted and msg.key not in got:
                        got[msg.key] = msg
                        if len(got) == len(wanted):
                            break
        return [got[k] for k in run.keys]

    async def run(
        self,
        experiments: Sequence[Experiment],
        *,
        run_id: str | None = None,
        labels: Sequence[str] | None = None,
        timeout: float | None = None,
    ) -> list[SimResult]:
        """Submit ``experiments``, wait for all of them and return their results in order,
        each with its per-request table.

        The first failure is raised: :class:`~glia.DesignFailed` for a design that could not
        be evaluated, else the error the worker met (``InputError``, ``DesignError`` or
        ``SimulationError``), naming the experiment and the worker.
        """
        run = await self.submit(experiments, run_id=run_id, labels=labels)
        got = await self.gather(run, timeout=timeout)
        out = []
        for exp, res in zip(experiments, got, strict=True):
            if isinstance(res, ExperimentFailure):
                if res.design is not None:
                    raise DesignFailed(res.design)
                error = _FAILURES.get(res.kind, SimulationError)
                raise error(f"{res.label}: {res.message} (on worker {res.worker})")
            text = (await self.requests(res.artifact)).decode() if res.artifact else ""
            slots = {"router": exp.router, "scheduler": exp.scheduler,
                     "autoscaler": exp.autoscaler}  # fmt: skip
            if exp.design_source is not None:  # the worker names the design in its place
                slots[SLOTS[exp.task]] = res.router
            out.append(SimResult(
                summary=res.summary, requests=RequestTable.from_csv(text), cluster=exp.cluster,
                workload=exp.workload, seed=exp.seed, router=slots["router"] or exp.router,
                scheduler=slots["scheduler"], autoscaler=slots["autoscaler"],
            ))  # fmt: skip
        return out

    @asynccontextmanager
    async def events(self, run_id: str) -> AsyncIterator[AsyncIterator[Event]]:
        """Every event of ``run_id`` from its start, then live ones (``"*"``: every run)."""
        async with self.bus.events(run_id) as it:
            yield it

    async def steer(
        self,
        run_id: str,
        action: str,
        *,
        text: str = "",
        context: int | None = None,
        trial: int | None = None,
        origin: str = "api",
    ) -> SteerMessage:
        """Steer design run ``run_id``: ``note`` (``text`` for the supervisor's next turn),
        ``pause``, ``resume``, ``stop`` (a ``context``, or the whole run), and at a gated run's
        gate ``approve`` or ``pick`` (``trial``). The coordinator applies it at the next turn
        boundary and records it with ``origin``; returns the message sent."""
        msg = steer_message(run_id, action, text=text, context=context, trial=trial, origin=origin)
        await self.bus.publish_steer(msg)
        return msg

    async def requests(self, artifact: str) -> bytes:
        """The per-request CSV of a result (``result.artifact``)."""
        return await self.bus.get_artifact(artifact)


@asynccontextmanager
async def connect(
    url: str, *, name: str = "glia-client", creds: str | None = None, tls_ca: str | None = None
) -> AsyncIterator[Client]:
    """Connect to the NATS server or cluster at ``url``."""
    async with NatsBus.connect(url, name=name, creds=creds, tls_ca=tls_ca) as bus:
        yield Client(bus)
