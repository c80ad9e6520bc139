"""One replica: a vLLM-style engine, continuous batching, a Sarathi chunked-prefill scheduler.

Each iteration the replica batches, in order: one decode token for every running request past
its prefill; prefill chunks for requests whose prompt is partly processed; then new requests from
the front of its queue, while the token budget (``chunk_size``), the batch cap and KV memory allow.
A new request is admitted only if, after allocating blocks for its whole prompt, ``watermark``
blocks stay free. A decode step that fills its last block takes a new one; when none is free, the
most recently arrived running request is preempted: its blocks are freed and it goes back to the
front of the queue to be recomputed from scratch (prompt plus the output it had generated), as
vLLM's recompute preemption does.

Decoders are accounted lazily so that an iteration costs O(1) plus O(new events), not O(batch):
a decoder that started decoding at iteration ``s`` with a ``P``-token prompt holds
``ceil((P + it - s) / B)`` blocks after ``it`` iterations and needs a new block exactly at the
iterations ``c`` with ``c = s - P (mod B)`` (``B`` = block size), so the replica keeps a count of
decoders per residue and the sum ``P - s`` over decoders for the KV tokens attention reads.

Why one module of this size: exact stepping and the lazy decode fast-forward share one
replica's state and must stay bit-identical, so they live together.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from operator import attrgetter
from typing import TYPE_CHECKING

import numpy as np

from glia._errors import DesignError
from glia.kernels import BETWEEN, NEEDS_MEMORY, DecodeRun, decode_run

from ._guard import call_policy
from ._latency import LatencyModel, ceil_div
from ._prefix import PrefixCache
from ._request import Job, Request, RunningRequest

if TYPE_CHECKING:
    from ._scheduling import SchedulingPolicy
    from ._views import ReplicaView

__all__ = ["Clock", "IterationRecord", "Replica"]


class Clock:
    """The instant at which policies look at the cluster, shared by the replicas of a run.

    Lazy replicas bring their state up to it when read (:meth:`Replica.sync`). Moving it is one
    stamp for the whole cluster, not a mark on every lazy replica at every event.
    """

    __slots__ = ("below", "now", "stamp")

    def __init__(self) -> None:
        self.now = 0.0
        # Replicas with an id under `below` count an iteration ending exactly `now` as handled
        # (their events came first; see :meth:`set`).
        self.below = 0
        self.stamp = 0

    def set(self, now: float, inclusive_below: int) -> None:
        """Policies look at ``now``; iterations ending exactly then count as handled on the
        replicas with an id under ``inclusive_below`` (their events would have come first)."""
        self.now, self.below = now, inclusive_below
        self.stamp += 1


@dataclass(frozen=True, slots=True)
class IterationRecord:
    """What one iteration did (for tests and diagnostics; built only when observed).

    ``allocated_blocks`` is after this iteration's allocations; ``blocks_needed`` is what its
    decode steps needed and ``free_before`` what was free, both before any preemption.
    """

    replica: int
    start: float
    end: float
    prefill_tokens: int
    decode_tokens: int
    num_seqs: int
    allocated_blocks: int
    num_blocks: int
    blocks_needed: int
    free_before: int
    preempted: int


class Replica:
    """Mutable state of one replica. Driven by the engine: :meth:`start`, then :meth:`finish`."""

    __slots__ = (
        "_anchor",
        "_chunks",
        "_coef",
        "_end_its",
        "_ends",
        "_event",
        "_flight_end",
        "_kv_base",
        "_next",
        "_phase_count",
        "_phases",
        "_run",
        "_seen",
        "_stop",
        "block_size",
        "busy",
        "cache",
        "cache_output",
        "cached_tokens",
        "chunk_size",
        "clock",
        "decoding",
        "free",
        "id",
        "in_flight",
        "it",
        "latency",
        "lazy",
        "max_batch",
        "num_blocks",
        "observer",
        "prefilling",
        "queue",
        "scheduler",
        "view",
        "watermark",
    )

    def __init__(
        self,
        rid: int,
        *,
        latency: LatencyModel,
        num_blocks: int,
        block_size: int,
        watermark_blocks: int,
        chunk_size: int,
        max_batch: int,
        observer: Callable[[IterationRecord], None] | None = None,
        prefix_cache: int = 0,
        clock: Clock | None = None,
        shared_prefixes: bool = False,
    ) -> None:
        self.id = rid
        self.clock = clock if clock is not None else Clock()
        self.latency = latency
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.watermark = watermark_blocks
        self.chunk_size = chunk_size
        self.max_batch = max_batch
        self.observer = observer
        self.cache = PrefixCache(prefix_cache, block_size) if prefix_cache > 0 else None
        self.cached_tokens = 0  # prompt tokens served from the prefix cache, over the run
        # Conversations cache a completed request's prompt and output; shared prefixes (system
        # prompts) only the prefix, once a prefill has computed it (see glia.sim._prefix).
        self.cache_output = not shared_prefixes
        self.scheduler: SchedulingPolicy | None = None  # set by the engine, with the view
        self.view: ReplicaView | None = None
        self.free = num_blocks
        self.it = 0  # iterations completed
        self.busy = False
        self.in_flight = False  # an iteration has started (its blocks taken) and not ended
        self.lazy = False  # running ahead in a decode-only run (see go_lazy)
        self._anchor: tuple[int, float, int] = (0, 0.0, 0)
        # Where a lazy run's state was last brought to: iteration `_next[0]` starts at
        # `_next[1]` with `_next[2]` free blocks (the kernel resumes from there).
        self._next: tuple[int, float, int] = (0, 0.0, 0)
        self._event: tuple[int, int] = (0, 0)
        self._stop = 0
        self._flight_end = -1.0
        # `_phase_count` mirrored for the kernel (kept in step, not rebuilt for every run).
        self._phases = np.zeros(block_size, dtype=np.int64)
        self._seen = 0  # the clock's stamp this replica's lazy state is brought up to
        self._run: DecodeRun = decode_run  # set per run by go_lazy (compiled or not)
        self._coef = np.zeros(0)
        self.queue: deque[Job] = deque()  # routed here, not admitted (preempted ones at the front)
        self.prefilling: list[Job] = []  # admitted, prompt not fully processed, admission order
        self.decoding: dict[int, Job] = {}  # past prefill, by id
        self._ends: dict[int, list[Job]] = {}  # iteration -> decoders finishing in it
        self._end_its: list[int] = []  # a heap of the keys of `_ends` (and some popped ones)
        self._phase_count = [0] * block_size
        self._kv_base = 0  # sum over decoders of (prompt - start_it)
        self._chunks: list[tuple[Job, int]] = []

    def reset_cache(self) -> None:
        """Empty the prefix cache (a replica restarting loads the model afresh)."""
        if self.cache is not None:
            self.cache = PrefixCache(self.cache.capacity, self.block_size)

    # -- what policies may read ------------------------------------------------------------
    @property
    def num_running(self) -> int:
        return len(self.prefilling) + len(self.decoding)

    def decoder_blocks(self, job: Job) -> int:
        """KV blocks a decoder holds of its own (not those it shares with a cached prefix)."""
        return ceil_div(job.prompt + self.it - job.start_it, self.block_size) - job.shared

    def admission_blocks(self, job: Job) -> int:
        """KV blocks ``job`` would take if admitted now: its whole prompt, less the blocks it
        would share with a cached prefix."""
        blocks = -(-job.prompt // self.block_size)
        if self.cache is not None:
            blocks -= self.cache.shared_blocks(job.req)
        return blocks

    def snapshot(self) -> tuple[RunningRequest, ...]:
        """The running requests, oldest admission first (prefilling ones before decoders)."""
        self.sync()
        out = [
            RunningRequest(
                request=j.req,
                num_processed_tokens=j.prefilled,
                num_generated_tokens=j.output - j.remaining,
                num_allocated_blocks=j.blocks,
                in_prefill=True,
                num_restarts=j.restarts,
            )
            for j in self.prefilling
        ]
        # During an iteration, each decoder already holds the block its step may have needed.
        taken = 1 if self.in_flight else 0
        for j in self.decoding.values():
            steps = self.it - j.start_it
            out.append(
                RunningRequest(
                    request=j.req,
                    num_processed_tokens=j.prompt + steps + taken,
                    num_generated_tokens=j.output - j.remaining + steps,
                    num_allocated_blocks=ceil_div(j.prompt + steps + taken, self.block_size)
                    - j.shared,
                    in_prefill=False,
                    num_restarts=j.restarts,
                )
            )
        return tuple(out)

    # -- the iteration -------------------------------------------------------------------------
    def start(self, now: float) -> float:
        """Form the next batch at ``now``; return its duration, or 0.0 when there is no work."""
        c = self.it
        bs = self.block_size
        need = needed = self._phase_count[c % bs]
        free_before = self.free
        preempted = 0
        sched = self.scheduler
        while need > self.free:
            victim = self._youngest() if sched is None else self._chosen_victim(now)
            need -= self._preempt(victim, c)
            preempted += 1
        self.free -= need

        n_dec = len(self.decoding)
        budget = self.chunk_size - n_dec
        if sched is not None and sched.token_budget is not None:
            budget = min(self.chunk_size, sched.token_budget) - n_dec
        nseq = n_dec
        decode_ctx = self._kv_base + n_dec * c  # tokens cached by the decoders
        prefill_tokens = prefill_ctx = prefill_pairs = 0
        chunks = self._chunks
        chunks.clear()
        for job in self.prefilling:
            if budget <= 0:
                break
            done = job.prefilled
            n = min(job.prompt - done, budget)
            budget -= n
            nseq += 1
            prefill_tokens += n
            prefill_ctx += done
            prefill_pairs += n * done + n * (n + 1) // 2
            chunks.append((job, n))
        queue = self.queue
        asked = sched is not None and bool(queue) and budget > 0
        order = None if sched is None else (self._ordered(now) if asked else [])
        skip = sched is not None and sched.skip_blocked
        admitted: list[Request] = []
        k = 0
        while budget > 0 and n_dec + len(self.prefilling) < self.max_batch:
            if order is None:
                if not queue:
                    break
                job = queue[0]
            elif k < len(order):
                job = order[k]
                k += 1
            else:
                break
            blocks = -(-job.prompt // bs)  # ceil_div, inline on the hot path
            cache = self.cache
            if cache is not None:
                blocks -= cache.shared_blocks(job.req)
            if self.free - blocks < self.watermark:
                if skip:
                    continue
                break  # the next request waits for memory, and so do the ones behind it
            if order is None:
                queue.popleft()
            else:
                queue.remove(job)
                admitted.append(job.req)
            self.free -= blocks
            job.blocks = blocks
            if job.scheduled_at < 0.0:
                job.scheduled_at = now
            self.prefilling.append(job)
            hit = 0
            if cache is not None:
                # Cached prefix tokens count as processed: only the rest is prefilled, and
                # attends over them (whole pass: prompt + generated output on a restart). Their
                # whole blocks are the cache entry's, shared (``blocks`` left them out).
                hit, job.shared = cache.acquire(job.req)
                job.prefilled = hit
                self.cached_tokens += hit
                prefill_ctx += hit
            n = min(job.prompt - hit, budget)
            budget -= n
            nseq += 1
            prefill_tokens += n
            prefill_pairs += n * hit + n * (n + 1) // 2
            chunks.append((job, n))
        if asked:
            self._tell_admitted(now, admitted)
        if nseq == 0:
            return 0.0
        self.in_flight = True
        dt = self.latency.iteration_time(
            prefill_tokens, prefill_ctx, prefill_pairs, n_dec, decode_ctx, nseq
        )
        if self.observer is not None:
            self.observer(
                IterationRecord(
                    replica=self.id,
                    start=now,
                    end=now + dt,
                    prefill_tokens=prefill_tokens,
                    decode_tokens=n_dec,
                    num_seqs=nseq,
                    allocated_blocks=self.num_blocks - self.free,
                    num_blocks=self.num_blocks,
                    blocks_needed=needed,
                    free_before=free_before,
                    preempted=preempted,
                )
            )
        return dt

    def finish(self, now: float, completed: list[Job]) -> None:
        """End the iteration started last at ``now``; append the requests it completed."""
        c = self.it
        self.it = c + 1
        self.in_flight = False
        if self._chunks:
            self._finish_chunks(c, now, completed)
        ending = self._ends.pop(c, None)
        if ending:
            cache = self.cache
            decoding, phase_count, phases, bs = (
                self.decoding,
                self._phase_count,
                self._phases,
                self.block_size,
            )
            for job in ending:
                # self._drop_decoder(job), inline: `it` is already c + 1
                self.free += -((self.it - job.start_it + job.prompt) // -bs) - job.shared
                if job.shared:
                    self._unshare(job)
                del decoding[job.id]
                phase_count[job.phase] -= 1
                phases[job.phase] -= 1
                self._kv_base -= job.prompt - job.start_it
                job.remaining = 0
                job.completed_at = now
                completed.append(job)
                if cache is not None:
                    self._remember(job)

    def _finish_chunks(self, c: int, now: float, completed: list[Job]) -> None:
        """The prompt chunks of iteration ``c``, ending at ``now``: a prompt done yields the
        first output token, and its request completes or starts decoding."""
        bs = self.block_size
        done_prefill = False
        for job, n in self._chunks:
            job.prefilled += n
            if job.prefilled < job.prompt:
                continue
            done_prefill = True
            if job.prefill_done_at < 0.0:
                job.prefill_done_at = now  # the first output token (time to first token)
            if not self.cache_output:
                self._remember(job)  # a shared prefix is reusable once computed
            job.remaining -= 1
            if job.remaining == 0:
                self.free += job.blocks
                self._unshare(job)
                job.completed_at = now
                completed.append(job)
                self._remember(job)
                continue
            s = c + 1
            job.start_it = s
            job.end_it = s + job.remaining - 1
            job.phase = (s - job.prompt) % bs
            self._phase_count[job.phase] += 1
            self._phases[job.phase] += 1
            self._kv_base += job.prompt - s
            self.decoding[job.id] = job
            ending = self._ends.get(job.end_it)
            if ending is None:
                self._ends[job.end_it] = [job]
                heapq.heappush(self._end_its, job.end_it)
            else:
                ending.append(job)
        if done_prefill:
            self.prefilling = [j for j in self.prefilling if j.prefilled < j.prompt]
        self._chunks.clear()

    def _remember(self, job: Job) -> None:
        """Cache a completed request's prompt and output under its prefix id (a shared prefix:
        its ``prefix_len`` tokens, as soon as its prefill is done)."""
        cache, req = self.cache, job.req
        if cache is None or req.prefix_id < 0:
            return
        if self.cache_output:
            cache.insert(req.prefix_id, req.num_prefill_tokens + job.output)
        elif req.prefix_len > 0 and job.remaining > 0:  # before its first token is counted
            cache.insert(req.prefix_id, req.prefix_len)

    def _unshare(self, job: Job) -> None:
        """``job`` no longer holds its shared prefix blocks (finished or preempted)."""
        if job.shared:
            assert self.cache is not None
            self.cache.release(job.req.prefix_id)
            job.shared = 0

    # -- fast-forward -------------------------------------------------------------------------
    # A replica whose iterations are decode-only with nothing admissible runs "lazily": its future
    # up to the next completion or memory shortage is a function of time alone (the decode_run
    # kernel), so the engine gets one event for the whole run. Its visible state (`it`, `free`)
    # is brought to the present by `materialize` whenever a policy may look at it.

    def can_fast_forward(self) -> bool:
        """True when the iteration just started and those after it are decode-only, with nothing
        admissible: no prompt in progress, and the queue empty or blocked by the batch cap or by
        memory (which decode-only iterations only ever reduce)."""
        if self.prefilling or not self.decoding:
            return False
        if not self.queue:
            return True
        if len(self.decoding) >= self.max_batch:
            return True
        return self.free - self.admission_blocks(self.queue[0]) < self.watermark

    def _first_end(self) -> int:
        """The first iteration with an entry in ``_ends`` (``min(self._ends)``, from a heap)."""
        heap, ends = self._end_its, self._ends
        while heap[0] not in ends:  # popped when its iteration ended
            heapq.heappop(heap)
        return heap[0]

    def run_ahead(self, now: float, run: DecodeRun, coef: np.ndarray) -> float:
        """Start the next iteration at ``now`` and run lazily from it, when it and those after
        it are decode-only with nothing admissible and it needs no preemption: what
        :meth:`start` then :meth:`go_lazy` would do, with the kernel computing that first
        iteration too (one call instead of the Python batch formation and latency model).
        Return the time of the run's next event, or -1.0 (nothing done) when :meth:`start`
        must form the batch. Only without an observer or a scheduler."""
        decoding = self.decoding
        if self.prefilling or not decoding:
            return -1.0
        c, bs, free = self.it, self.block_size, self.free
        need = self._phase_count[c % bs]
        if need > free:
            return -1.0  # a preemption: start() picks the victims
        queue = self.queue
        if (
            queue
            and len(decoding) < self.max_batch
            and free - need - self.admission_blocks(queue[0]) >= self.watermark
        ):
            return -1.0  # start() admits the head of the queue
        self.free = free - need  # as start() leaves it (read only after a sync)
        self.in_flight = True
        heap, ends = self._end_its, self._ends
        while heap[0] not in ends:  # self._first_end(), inline
            heapq.heappop(heap)
        self._stop = stop = heap[0]  # the first iteration that completes a request
        self._anchor = self._next = (c, now, free)  # iteration c starts now with `free`
        self._flight_end = -1.0  # its end is not known before a materialization
        self._run, self._coef = run, coef
        status, x, start, duration, free = run(
            coef, now, c, len(decoding), self._kv_base, free, self._phases, stop, INF, True
        )
        if x == c:  # that first iteration completes a request: an ordinary iteration end
            return float(start) + float(duration)
        return self._enter_lazy(status, x, start, duration, free)

    def go_lazy(self, end: float, run: DecodeRun, coef: np.ndarray) -> float:
        """Run ahead from the decode-only iteration in flight (ending at ``end``); return the
        time of the run's next event: the end of the iteration that completes a request, or of
        the one after which a decode step needs a preemption. Needs :meth:`can_fast_forward`."""
        c = self.it
        self._stop = self._first_end()  # the first iteration that completes a request
        if self._stop == c:
            return end
        self._anchor = self._next = (c + 1, end, self.free)  # iteration c + 1 starts at `end`
        self._flight_end = end  # iteration c is in flight until then
        self._run, self._coef = run, coef
        status, x, start, duration, free = self._run_from_anchor(float("inf"), True)
        return self._enter_lazy(status, x, start, duration, free)

    def _enter_lazy(self, status: int, x: int, start: float, duration: float, free: int) -> float:
        """Become lazy until the run's event (from the kernel's answer); return its time."""
        if status == NEEDS_MEMORY:
            self._event = (int(x) - 1, int(free))  # the iteration ending when x should start
            event_time = float(start)
        else:
            self._event = (int(x), int(free))
            event_time = float(start) + float(duration)
        self._seen = self.clock.stamp  # stale from the clock's next move
        self.lazy = True
        return event_time

    def _run_from_anchor(
        self, horizon: float, inclusive: bool
    ) -> tuple[int, int, float, float, int]:
        it, start, free = self._anchor
        return self._run(
            self._coef,
            start,
            it,
            len(self.decoding),
            self._kv_base,
            free,
            self._phases,
            self._stop,
            horizon,
            inclusive,
        )

    def sync(self) -> None:
        """Bring a lazy replica's ``it`` and ``free`` up to its :class:`Clock`'s instant."""
        clock = self.clock
        if self.lazy and self._seen != clock.stamp:
            self._seen = clock.stamp
            now = clock.now
            end = self._flight_end
            # Still in the iteration in flight at the last materialization: nothing changed.
            if self.in_flight and (now < end or (now == end and self.id >= clock.below)):
                return
            self._materialize(now, self.id < clock.below)

    def _materialize(self, now: float, inclusive: bool) -> None:
        """Run the kernel on from where the state was last brought (``_next``) to ``now``.

        The clock's instant only moves forward (within one instant, ``inclusive`` only turns
        true: events are handled by replica id), so resuming gives what a run from the anchor
        would: the kernel's state at an iteration's start is all it carries forward."""
        it, start, free = self._next
        status, x, start, duration, free = self._run(
            self._coef,
            start,
            it,
            len(self.decoding),
            self._kv_base,
            free,
            self._phases,
            self._stop,
            now,
            inclusive,
        )
        if status == BETWEEN:
            self.it, self.free, self._flight_end = int(x), int(free), -1.0
            self.in_flight = False
            self._next = (self.it, float(start), self.free)
        else:  # IN_FLIGHT: runs and memory events at `now` are never past their own event
            self.it, self.free = int(x), int(free)
            self._flight_end = end = float(start) + float(duration)
            self.in_flight = True
            self._next = (self.it + 1, end, self.free)

    def stays_lazy_with(self, job: Job) -> bool:
        """Whether this lazy run stays exact when ``job`` joins the back of the queue: the
        replica would still admit nothing before the run's event. So when the queue already has
        a head (blocked: by memory, which decode-only iterations only reduce, or by the batch
        cap), when the batch is full, or when ``job`` itself is blocked by memory now (as of its
        clock; free blocks only fall until the run's event)."""
        if self.queue or len(self.decoding) >= self.max_batch:
            return True
        self.sync()
        return self.free - self.admission_blocks(job) < self.watermark

    def leave_lazy(self) -> float:
        """Stop running lazily (new work arrived): return the end of the iteration in flight,
        or -1.0 when the replica is between iterations (as of its clock)."""
        self.sync()
        self.lazy = False
        return self._flight_end

    def arrive_at_event(self) -> None:
        """The lazy run reached its event: set the state at the end of its last iteration."""
        self.it, self.free = self._event
        self.in_flight = True  # its last iteration ends now: finish() follows
        self.lazy = False

    # -- memory pressure -----------------------------------------------------------------------
    def _drop_decoder(self, job: Job) -> None:
        """Remove a decoder and free its blocks (call before ``it`` moves on for preemption)."""
        self.free += self.decoder_blocks(job)
        self._unshare(job)
        del self.decoding[job.id]
        self._phase_count[job.phase] -= 1
        self._phases[job.phase] -= 1
        self._kv_base -= job.prompt - job.start_it

    def _youngest(self) -> Job:
        """The running request that arrived last (vLLM's preemption victim)."""
        return max((*self.prefilling, *self.decoding.values()), key=_arrival)

    def _ordered(self, now: float) -> list[Job]:
        """The scheduler's admission order, checked: waiting requests, each at most once."""
        sched, view = self.scheduler, self.view
        assert sched is not None and view is not None
        waiting = {j.id: j for j in self.queue}
        chosen = call_policy("scheduler", sched.name, now, _listed, sched.order, view, now,
                             call="order", replica=self.id)  # fmt: skip
        out = []
        for req in chosen:
            job = waiting.pop(req.id, None) if isinstance(req, Request) else None
            if job is None or job.req != req:
                raise DesignError(
                    f"scheduler {sched.name!r} returned {req!r} from order() on replica "
                    f"{self.id} at t={now:.3f}s: return requests of replica.queue, each once"
                )
            out.append(job)
        return out

    def _tell_admitted(self, now: float, admitted: list[Request]) -> None:
        sched, view = self.scheduler, self.view
        assert sched is not None and view is not None
        call_policy("scheduler", sched.name, now, sched.admitted, view, admitted,
                    call="admitted", replica=self.id)  # fmt: skip

    def _chosen_victim(self, now: float) -> Job:
        sched, view = self.scheduler, self.view
        assert sched is not None and view is not None
        running = {j.id: j for j in (*self.prefilling, *self.decoding.values())}
        req = call_policy("scheduler", sched.name, now, sched.victim, view, now,
                          call="victim", replica=self.id)  # fmt: skip
        job = running.get(req.id) if isinstance(req, Request) else None
        if job is None or job.req != req:
            raise DesignError(
                f"scheduler {sched.name!r} chose {req!r} to preempt on replica {self.id} at "
                f"t={now:.3f}s: choose one of the replica's running requests"
            )
        return job

    def _preempt(self, victim: Job, c: int) -> int:
        """Preempt ``victim`` (recomputed later); return the blocks it needed now."""
        needed_now = 0
        if victim.id in self.decoding:
            needed_now = 1 if victim.phase == c % self.block_size else 0
            steps = c - victim.start_it
            self._drop_decoder(victim)
            self._ends[victim.end_it].remove(victim)
            # It generated one token at the end of its prefill (already counted) and one per
            # decode step since; its prompt and all of them are recomputed as the new prompt.
            victim.prompt += 1 + steps
            victim.remaining -= steps
        else:
            self.free += victim.blocks
            self._unshare(victim)
            self.prefilling.remove(victim)
        victim.prefilled = 0
        victim.blocks = 0
        victim.restarts += 1
        self.queue.appendleft(victim)
        return needed_now


INF = float("inf")

_arrival = attrgetter("arrived_at", "id")
"""The preemption order key: the request that arrived last goes first."""


def _listed(order: Callable[[ReplicaView, float], Iterable[Request]], view: ReplicaView,
            now: float) -> list[Request]:  # fmt: skip
    """A scheduler's order as a list (a generator's errors come out while it is listed)."""
    return list(order(view, now))
