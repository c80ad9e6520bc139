"""The discrete-event core: arrivals, replica iterations, and router calls.

Time advances from event to event, taken from one :class:`~glia.sim._agenda.Agenda`: the next
arrival of the trace, each busy replica's iteration end, and, in an autoscaled cluster, starting
replicas becoming ready and the autoscaler's periodic call. In a closed-loop trace
(``Trace.concurrency``) arrivals are not known in advance: the first ``concurrency`` requests
arrive at time 0, and each completion sends the next request ``think_s`` later. At one instant
events are handled in the order of their kinds (iteration ends, by replica id; then readiness;
then the autoscaler's call; then the arrival), so ties resolve the same way every run; idle
replicas start their next iteration only after every event at that instant (so a request
routed at time t joins a batch formed at t). The router is called after every arrival, every
iteration that completed a request and every replica becoming ready. See
:mod:`glia.sim._autoscaling`.

Why one module of this size: the event loop and the checks of every router decision share
the run's state (queues, fleet, agenda) on the simulator's hot path.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from heapq import heappop, heappush
from operator import attrgetter
from typing import Protocol

import msgspec
import numpy as np

from glia._errors import DesignError, InputError, SimulationError
from glia.kernels import decode_runner, iteration_times, select

from ._agenda import Agenda, Kind
from ._autoscaling import Fleet, LoadView, ScalingPolicy
from ._config import Autoscale, ClusterConfig, ResolvedCluster, WorkloadConfig
from ._guard import call_policy, policy_error
from ._latency import LatencyModel
from ._metrics import RequestTable, SimResult, Summary, summarize
from ._replica import Clock, IterationRecord, Replica
from ._request import Job, Request
from ._scheduling import SchedulingPolicy
from ._streams import Stream, generator
from ._views import ClusterView, ReplicaView, Scraper, StaleReplicaView, Trigger
from ._workload import Trace

__all__ = ["RoutingPolicy", "run_simulation"]

# The agenda's kinds as plain ints, for the event loop.
ITERATION_END, READY, TICK, ARRIVAL = (int(k) for k in Kind)


class RoutingPolicy(Protocol):
    """What the engine needs of a router (see :class:`glia.policies.Router`)."""

    @property
    def name(self) -> str: ...

    def setup(self, cluster: ClusterView, rng: np.random.Generator) -> None: ...

    def schedule(self, cluster: ClusterView) -> Iterable[tuple[int, Request]]: ...


def _idle_when_queue_empty(router: RoutingPolicy) -> bool:
    """Whether ``router``'s class marks its ``schedule`` as returning nothing and changing
    nothing on an empty global queue (the built-in routers that return at once), so that
    those calls can be skipped. Set on the function, so an overriding subclass is called."""
    return getattr(getattr(type(router), "schedule", None), "idle_when_queue_empty", False) is True


def _check_fits(trace: Trace, rc: ResolvedCluster, source: str) -> None:
    """Every request must fit every replica's KV memory on its own, even after a restart (a
    router may send any request anywhere: one that fits nowhere it was sent would stall)."""
    bs = rc.config.block_size
    # A restarted request re-prefills its prompt and all but its last output token.
    worst = -(-(trace.num_prefill_tokens + trace.num_decode_tokens - 1) // bs)
    small = min(rc.replicas, key=lambda r: r.num_blocks - r.watermark_blocks)
    room = small.num_blocks - small.watermark_blocks
    bad = np.flatnonzero(worst > room)
    if len(bad):
        i = int(bad[0])
        p, d = int(trace.num_prefill_tokens[i]), int(trace.num_decode_tokens[i])
        raise InputError(
            f"impossible cluster: request {i} of {source} ({p} prompt + {d} output tokens) needs "
            f"up to {int(worst[i])} KV blocks but a replica has {room} usable ({small.num_blocks} "
            f"minus {small.watermark_blocks} watermark): cap request lengths (max_tokens), add KV "
            f"blocks (num_blocks) or use a bigger GPU"
        )


def run_simulation(
    trace: Trace,
    cluster: ClusterConfig,
    router: RoutingPolicy,
    *,
    seed: int = 0,
    workload: WorkloadConfig | None = None,
    observer: Callable[[IterationRecord], None] | None = None,
    fast_forward: bool = True,
    jit: bool | None = None,
    scheduler: SchedulingPolicy | None = None,
    autoscaler: ScalingPolicy | None = None,
) -> SimResult:
    """Simulate ``trace`` on ``cluster`` under ``router`` until every request completes.

    ``seed`` seeds the router's generator (the trace is already fixed). ``observer``, if given,
    receives an :class:`IterationRecord` for every replica iteration (which turns fast-forward
    off). ``fast_forward`` runs stretches of decode-only iterations in a kernel instead of one
    event at a time; ``jit`` chooses the compiled kernel or its Python source (default: compiled
    unless ``GLIA_NO_JIT=1``). Every combination gives the same result. ``scheduler`` orders
    and admits requests inside each replica and picks preemption victims (default: vLLM's FCFS;
    a scheduler turns fast-forward off, since its choices may change with time).
    ``autoscaler`` sets the number of replicas every ``autoscaler.interval_s`` seconds within
    ``cluster.autoscale`` (default :class:`Autoscale`); without one every replica serves all
    the time. The router then sees only the active replicas: the index it routes to is a
    position in ``cluster.replicas``.
    """
    wall0 = time.perf_counter()
    if seed < 0:
        raise InputError(f"seed is {seed}: give a non-negative integer")
    rc = cluster.resolve()
    source = workload.trace if workload is not None else "the trace"
    _check_fits(trace, rc, source)

    clock = Clock()  # the instant policies look at, for the lazy replicas
    replicas = [
        Replica(
            i,
            latency=rr.latency,
            num_blocks=rr.num_blocks,
            block_size=cluster.block_size,
            watermark_blocks=rr.watermark_blocks,
            chunk_size=cluster.chunk_size,
            max_batch=cluster.max_batch_size,
            observer=observer,
            prefix_cache=int(cluster.prefix_cache * rr.num_blocks),
            clock=clock,
            shared_prefixes=trace.shared_prefixes,
        )
        for i, rr in enumerate(rc.replicas)
    ]
    views = tuple(
        ReplicaView(r, rr.gpu, rr.model) for r, rr in zip(replicas, rc.replicas, strict=True)
    )
    # Replica schedulers run inside their engine and keep exact views; a router and an
    # autoscaler see scraped metrics when cluster.metrics_interval_s is above 0.
    engine_views = views
    scraper: Scraper | None = None
    if cluster.metrics_interval_s > 0.0:
        stale = tuple(
            StaleReplicaView(r, rr.gpu, rr.model)
            for r, rr in zip(replicas, rc.replicas, strict=True)
        )
        scraper = Scraper(stale, cluster.metrics_interval_s)
        views = stale
    if autoscaler is not None:
        scaling = cluster.autoscale or Autoscale()
        min_replicas, initial = scaling.check(len(replicas))
        interval = _interval(autoscaler)
    else:
        min_replicas = initial = len(replicas)
        scaling, interval = Autoscale(cold_start_s=0.0), float("inf")
    agenda = Agenda(len(replicas))
    fleet = Fleet(
        replicas,
        views,
        [rr.tp for rr in rc.replicas],
        initial=initial,
        min_replicas=min_replicas,
        cold_start_s=scaling.cold_start_s,
        agenda=agenda,
    )
    n = len(trace)
    arrivals = trace.arrived_at.tolist()
    prompts = trace.num_prefill_tokens.tolist()
    outputs = trace.num_decode_tokens.tolist()
    if trace.prefix_id is not None and trace.prefix_len is not None:
        ids, lens = trace.prefix_id.tolist(), trace.prefix_len.tolist()
        reqs = [Request(i, arrivals[i], prompts[i], ids[i], lens[i]) for i in range(n)]
    else:
        reqs = [Request(i, arrivals[i], prompts[i]) for i in range(n)]
    jobs = [Job(req, outputs[i]) for i, req in enumerate(reqs)]
    # Arrival times still to come, in order: the whole trace, or (closed loop) the clients'
    # next requests, known only as earlier ones complete.
    closed = trace.concurrency is not None
    due = deque(arrivals if not closed else [0.0] * min(n, trace.concurrency or 0))
    think = trace.think_s

    waiting: dict[int, Request] = {}  # the global queue, in arrival order
    to_start: set[int] = set()
    done: list[Job] = []
    num_done = 0
    name = router.name
    ff = fast_forward and observer is None and scheduler is None
    run = decode_runner(jit)  # the kernel without per-call type dispatch
    coefs = [rr.latency.coefficients() for rr in rc.replicas]
    if scraper is not None:
        scraper.look(0.0)  # the first scrape, as the run starts
    router.setup(ClusterView(0.0, "arrival", waiting, fleet.views), generator(seed, Stream.ROUTER))
    if scheduler is not None:
        scheduler.setup(
            ClusterView(0.0, "arrival", waiting, engine_views),
            generator(seed, Stream.SCHEDULER),
        )
        for r, v in zip(replicas, engine_views, strict=True):
            r.scheduler, r.view = scheduler, v
    if autoscaler is not None:
        autoscaler.setup(
            ClusterView(0.0, "scale", waiting, fleet.views),
            generator(seed, Stream.AUTOSCALER),
        )

    def sync(now: float, source: int = -1) -> None:
        # Replicas running ahead lazily show the state stepping would have at this event: their
        # iterations ending exactly now count as handled if their events would have come first
        # (iteration ends precede other events; among replicas, the lower id first).
        clock.set(now, source if source >= 0 else len(replicas))

    skip_empty = _idle_when_queue_empty(router)

    def route(now: float, trigger: Trigger, source: int = -1) -> None:
        if skip_empty and not waiting:  # the router would return nothing and change nothing
            return
        clock.set(now, source if source >= 0 else len(replicas))  # as sync(now, source)
        routable = fleet.routable
        if scraper is not None:
            scraper.look(now)
        view = ClusterView(now, trigger, waiting, fleet.views)
        try:  # call_policy(router, ...), inline on the hot path
            pairs = router.schedule(view)
            if type(pairs) is not list:  # a generator's errors come out while it is listed
                pairs = list(pairs) if pairs is not None else []
        except DesignError:
            raise
        except Exception as e:
            raise policy_error("router", name, now, e) from e
        if not pairs:  # completions with an empty global queue, held requests
            return
        for pair in pairs:
            try:
                rid, req = pair
            except (TypeError, ValueError):
                raise DesignError(
                    f"router {name!r} returned {pair!r} at t={now:.3f}s: schedule() must return "
                    "(replica index, request) pairs"
                ) from None
            if not isinstance(req, Request):
                raise DesignError(
                    f"router {name!r} returned {req!r} as a request at t={now:.3f}s: route the "
                    "Request objects from cluster.queue"
                )
            if type(rid) is not int:
                if not isinstance(rid, np.integer):
                    raise DesignError(
                        f"router {name!r} routed request {req.id} to {rid!r} at t={now:.3f}s: a "
                        "replica is an int index"
                    )
                rid = int(rid)
            if not 0 <= rid < len(routable):
                raise DesignError(
                    f"router {name!r} routed request {req.id} to replica {rid} at t={now:.3f}s, "
                    f"but the cluster has replicas 0..{len(routable) - 1}: return an index in "
                    f"range({len(routable)})"
                )
            rid = routable[rid]
            got = waiting.pop(req.id, None)
            if got is None or (got is not req and got != req):
                if 0 <= req.id < n and jobs[req.id].replica >= 0:
                    raise DesignError(
                        f"router {name!r} routed request {req.id} twice (again to replica {rid} "
                        f"at t={now:.3f}s; first to replica {jobs[req.id].replica}): route each "
                        "request from cluster.queue once"
                    )
                raise DesignError(
                    f"router {name!r} routed request {req.id} at t={now:.3f}s, which is not in "
                    "the global queue: route only requests from cluster.queue"
                )
            job = jobs[req.id]
            job.replica = rid
            r = replicas[rid]
            if r.lazy and not r.stays_lazy_with(job):
                # Its run is over: step again from the iteration in flight.
                end = r.leave_lazy()
                agenda.cancel(ITERATION_END, rid)
                if end >= 0.0:
                    agenda.push(end, ITERATION_END, rid)
                else:
                    r.busy = False
            r.queue.append(job)
            if not r.busy:
                to_start.add(rid)

    last_tick, last_arrivals, last_done = 0.0, 0, 0  # the autoscaler's previous call

    def rescale(now: float) -> None:
        nonlocal last_tick, last_arrivals, last_done
        sync(now)
        if scraper is not None:
            scraper.look(now)
        load = LoadView(
            fleet,
            ClusterView(now, "scale", waiting, fleet.views),
            now - last_tick,
            next_arrival - last_arrivals,
            num_done - last_done,
        )
        last_tick, last_arrivals, last_done = now, next_arrival, num_done
        assert autoscaler is not None
        want = call_policy("autoscaler", autoscaler.name, now, autoscaler.scale, load)
        if type(want) is not int and not isinstance(want, np.integer):
            raise DesignError(
                f"autoscaler {autoscaler.name!r} returned {want!r} at t={now:.3f}s: scale() must "
                "return the number of replicas wanted, an int"
            )
        fleet.resize(now, int(want))

    next_arrival = 0
    now = 0.0
    agenda.push(due[0], ARRIVAL)  # the next arrival due is always on the agenda
    if interval < float("inf"):
        agenda.push(interval, TICK)
    # The hot path inlines the agenda's push, pop and next_time (see Agenda.entries).
    heap, versions = agenda.entries()
    ends, arrival_version = versions[ITERATION_END], versions[ARRIVAL]
    scaled = autoscaler is not None  # only then may a replica drain
    try:
        while num_done < n:  # the run (and its GPU time) ends with the last completion
            if not heap:  # nothing will happen again
                break
            t, kind, rid, version = heappop(heap)
            if versions[kind][rid] != version:  # cancelled
                continue
            if kind == ITERATION_END:
                now = t
                r = replicas[rid]
                if r.lazy:
                    r.arrive_at_event()
                r.busy = False
                before = len(done)
                r.finish(now, done)
                if not (scaled and fleet.drained(now, rid)):
                    to_start.add(rid)
                if len(done) > before:
                    num_done += len(done) - before
                    if closed:  # each client that got its answer sends its next request
                        if not due and next_arrival < n:
                            agenda.push(now + think, ARRIVAL)
                        due.extend([now + think] * (len(done) - before))
                    route(now, "completion", rid)
            elif kind == ARRIVAL:
                now = t
                due.popleft()
                job = jobs[next_arrival]
                if closed:  # it is sent now: the request a policy sees carries that time
                    req = msgspec.structs.replace(job.req, arrived_at=now)
                    job = jobs[next_arrival] = Job(req, job.output)
                next_arrival += 1
                if due and next_arrival < n:
                    heappush(heap, (due[0], ARRIVAL, 0, arrival_version[0]))  # agenda.push
                waiting[job.id] = job.req
                route(now, "arrival")
            elif kind == READY:
                now = t
                fleet.ready(rid)
                route(now, "ready")
            elif kind == TICK and agenda.next_time() < float("inf"):
                now = t
                agenda.push(now + interval, TICK)
                rescale(now)
            else:  # nothing left, or only the autoscaler's ticks: nothing will happen again
                break
            # Start idle replicas once every event at this instant has been handled.
            if not to_start:
                continue
            while heap and versions[heap[0][1]][heap[0][2]] != heap[0][3]:
                heappop(heap)  # cancelled (agenda.next_time, inline)
            if heap and heap[0][0] <= now:
                continue
            for rid in sorted(to_start) if len(to_start) > 1 else to_start:
                r = replicas[rid]
                if ff:  # a decode-only run: the kernel takes it from its first iteration
                    end = r.run_ahead(now, run, coefs[rid])
                    if end >= 0.0:
                        r.busy = True
                        heappush(heap, (end, ITERATION_END, rid, ends[rid]))  # agenda.push
                        continue
                dt = r.start(now)
                if dt > 0.0:
                    end = now + dt
                    if ff and r.can_fast_forward():
                        end = r.go_lazy(end, run, coefs[rid])
                    r.busy = True
                    heappush(heap, (end, ITERATION_END, rid, ends[rid]))  # agenda.push
            to_start.clear()

    except DesignError as e:
        finished = [j for j in jobs if j.completed_at >= 0.0]
        if finished:  # what the design had achieved when it broke the rules
            e.partial = _summary(_table(finished, rc), fleet, now, wall0, trace.capped)
        raise
    if num_done != n:
        stuck = [j for j in jobs if j.completed_at < 0.0]
        first = stuck[0]
        where = "in the global queue" if first.replica < 0 else f"on replica {first.replica}"
        raise SimulationError(
            f"router {name!r} left {len(stuck)} of {n} requests unserved when the cluster went "
            f"idle at t={now:.3f}s (first: request {first.id}, arrived at "
            f"{first.arrived_at:.3f}s, {where}): a router may hold requests only while some "
            "replica is busy; route everything once the cluster is idle",
            partial=len(done),
        )
    return SimResult(
        summary=_summary(table := _table(jobs, rc), fleet, now, wall0, trace.capped),
        requests=table,
        router=name,
        cluster=cluster,
        workload=workload if workload is not None else WorkloadConfig(trace="<in-memory>"),
        seed=seed,
        scheduler=scheduler.name if scheduler is not None else None,
        autoscaler=autoscaler.name if autoscaler is not None else None,
    )


def _interval(autoscaler: ScalingPolicy) -> float:
    interval = autoscaler.interval_s
    if not isinstance(interval, int | float) or not 1.0 <= interval < float("inf"):
        raise DesignError(
            f"autoscaler {autoscaler.name!r} has interval_s = {interval!r}: give the seconds "
            "between its calls, at least 1.0"
        )
    return float(interval)


def _summary(table: RequestTable, fleet: Fleet, end: float, wall0: float, capped: int) -> Summary:
    gpu_hours, mean_replicas = fleet.totals(end)
    tokens = float(table.request_num_decode_tokens.sum())
    return msgspec.structs.replace(
        summarize(table, time.perf_counter() - wall0),
        tokens_s_per_gpu=tokens / (gpu_hours * 3600.0) if gpu_hours > 0 else 0.0,
        gpu_hours=gpu_hours,
        mean_replicas=mean_replicas,
        scale_events=fleet.scale_events,
        requests_capped=capped,
    )


def _table(jobs: list[Job], rc: ResolvedCluster) -> RequestTable:
    n = len(jobs)

    def column(name: str, dtype: type) -> np.ndarray:
        return np.fromiter(map(attrgetter(name), jobs), dtype, n)  # C-level: no generator

    arrived = column("arrived_at", np.float64)
    first = column("prefill_done_at", np.float64)
    completed = column("completed_at", np.float64)
    scheduled = column("scheduled_at", np.float64)
    prompt = np.fromiter(map(attrgetter("req.num_prefill_tokens"), jobs), np.int64, n)
    output = column("output", np.int64)
    e2e = completed - arrived
    tpot = np.where(output > 1, (completed - first) / np.maximum(output - 1, 1), 0.0)
    return RequestTable(
        request_id=np.arange(n, dtype=np.int64),
        arrived_at=arrived,
        scheduled_at=scheduled,
        prefill_completed_at=first,
        completed_at=completed,
        request_e2e_time=e2e,
        prefill_e2e_time=first - arrived,
        decode_time_per_token=tpot,
        request_scheduling_delay=scheduled - arrived,
        request_slowdown=e2e / _ideal_latency(prompt, output, rc),
        request_num_restarts=column("restarts", np.int64),
        replica_id=column("replica", np.int64),
        request_num_prefill_tokens=prompt,
        request_num_decode_tokens=output,
        request_num_tokens=prompt + output,
    )


def _ideal_latency(prompt: np.ndarray, output: np.ndarray, rc: ResolvedCluster) -> np.ndarray:
    """Seconds each request takes alone on the fastest idle replica (the slowdown's
    denominator)."""
    kinds = {id(r.latency): r.latency for r in rc.replicas}  # a group's replicas share one
    ideal = [_alone(prompt, output, lm, rc.config.chunk_size) for lm in kinds.values()]
    return np.minimum.reduce(ideal) if len(ideal) > 1 else ideal[0]


def _alone(prompt: np.ndarray, output: np.ndarray, lm: LatencyModel, chunk: int) -> np.ndarray:
    coef = lm.coefficients()
    times = select(iteration_times)
    zero, one = np.zeros_like(prompt), np.ones_like(prompt)
    prefill = times(coef, prompt, zero, prompt * (prompt + 1) // 2, zero, zero, one)
    for i in np.flatnonzero(prompt > chunk):  # rare: prompts longer than one chunk
        prefill[i] = lm.prefill_time(int(prompt[i]), chunk)
    # Decode steps read a context growing from P+1 to P+D-1 tokens: use the midpoint.
    mid = prompt + output // 2
    step = times(coef, zero, zero, zero, one, mid, one)
    return prefill + (output - 1) * step
