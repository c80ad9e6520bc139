"""One replica stepped from outside, iteration by iteration: the core of an emulated engine.

The simulator's :class:`~glia.sim._replica.Replica` (batching, KV memory, preemption, the
latency model) driven by a caller that owns the clock, as an engine emulator serving real HTTP
requests does: :meth:`EngineModel.add` queues a request, :meth:`EngineModel.start` forms the
next batch and returns how long it takes, :meth:`EngineModel.finish` ends it and says how many
output tokens each request has produced so far and which are done. Pure model code: no clock,
no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from glia._errors import InputError

from ._config import ClusterConfig
from ._replica import Replica
from ._request import Job, Request

__all__ = ["EngineModel", "Progress"]


@dataclass(frozen=True, slots=True)
class Progress:
    """A request's output so far, after an iteration."""

    id: int
    tokens: int
    done: bool


class EngineModel:
    """Replica ``replica`` of ``cluster`` (its GPU, model, KV memory and batching), stepped by
    the caller. Request ids are the caller's; each must be new."""

    def __init__(self, cluster: ClusterConfig, replica: int = 0) -> None:
        rc = cluster.resolve()
        if not 0 <= replica < len(rc.replicas):
            raise InputError(f"replica {replica} is not in the cluster's 0..{len(rc.replicas) - 1}")
        rr = rc.replicas[replica]
        self.max_context = rr.max_context
        self._replica = Replica(
            replica,
            latency=rr.latency,
            num_blocks=rr.num_blocks,
            block_size=cluster.block_size,
            watermark_blocks=rr.watermark_blocks,
            chunk_size=cluster.chunk_size,
            max_batch=cluster.max_batch_size,
        )
        self._room = rr.num_blocks - rr.watermark_blocks
        self._jobs: dict[int, Job] = {}
        self._running = False
        self._restarts_done = 0  # restarts of the requests that have left

    def fits(self, prompt: int, output: int) -> bool:
        """Whether a request of these lengths can ever run here (its whole KV fits)."""
        bs = self._replica.block_size
        return prompt + output <= self.max_context and -(-(prompt + output) // bs) <= self._room

    def add(self, rid: int, prompt: int, output: int, now: float) -> None:
        """Queue a request of ``prompt`` tokens that will produce ``output`` tokens."""
        if rid in self._jobs:
            raise InputError(f"request id {rid} is already in the engine: give each a new id")
        if prompt < 1 or output < 1 or not self.fits(prompt, output):
            raise InputError(
                f"a request of {prompt} prompt and {output} output tokens cannot run on this "
                f"engine (context {self.max_context}, {self._room} usable KV blocks)"
            )
        job = Job(Request(rid, now, prompt), output)
        self._jobs[rid] = job
        self._replica.queue.append(job)

    def start(self, now: float) -> float:
        """Form the next batch at ``now``; its duration in seconds, or 0.0 with nothing to do.

        Call :meth:`finish` at ``now`` + that duration before the next start.
        """
        if self._running:
            raise RuntimeError("EngineModel.start: the iteration in flight has not finished")
        dt = self._replica.start(now)
        self._running = dt > 0.0
        return dt

    def finish(self, now: float) -> list[Progress]:
        """End the iteration in flight at ``now``: every unfinished request's output so far."""
        if not self._running:
            raise RuntimeError("EngineModel.finish: no iteration is in flight")
        self._running = False
        done: list[Job] = []
        self._replica.finish(now, done)
        out = [Progress(j.id, j.output, True) for j in done]
        for j in done:
            del self._jobs[j.id]
            self._restarts_done += j.restarts
        for r in self._replica.snapshot():
            out.append(Progress(r.request.id, r.num_generated_tokens, False))
        return out

    @property
    def num_running(self) -> int:
        """Requests holding KV memory (vLLM's ``num_requests_running``)."""
        return self._replica.num_running

    @property
    def num_waiting(self) -> int:
        """Requests queued, not admitted (vLLM's ``num_requests_waiting``)."""
        return len(self._replica.queue)

    @property
    def kv_usage(self) -> float:
        """Share of KV blocks in use (vLLM's ``kv_cache_usage_perc``), from 0 to 1."""
        r = self._replica
        r.sync()
        return (r.num_blocks - r.free) / r.num_blocks

    @property
    def preemptions(self) -> int:
        """Preemptions so far (vLLM's ``num_preemptions_total``)."""
        return self._restarts_done + sum(j.restarts for j in self._jobs.values())
