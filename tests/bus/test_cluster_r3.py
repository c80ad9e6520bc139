"""Faults on a real 3-node JetStream cluster (loopback only).

Three nats-servers run from ``infra/nats/cluster-node.conf`` (the file users run), Glia's
streams and buckets have 3 replicas, and three `glia worker` processes are each connected to a
different node. Mid-run the node leading the work-queue stream is SIGKILLed and later restarted
from its store, and a worker is SIGKILLed while it runs an experiment: every result must still
arrive exactly once and equal the local run, and a design run must end as an undisturbed one.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import anyio
import msgspec
import nats.errors
import pytest

from glia import Client, Experiment, SubmittedRun, run_experiment
from glia._client import new_run_id
from glia.bus import Event, ExperimentResult, ExperimentStarted, NatsBus, find_nats_server
from glia.bus import _subjects as subjects

from .conftest import small_experiments
from .test_cluster import SLOW_DESIGN, _same, all_results, wait_for_workers

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

CONF = Path(__file__).resolve().parents[2] / "infra" / "nats" / "cluster-node.conf"
HOST = "127.0.0.1"
E = TypeVar("E", bound=Event)
# Everything Glia creates on connect, as JetStream streams (KV buckets and the object store
# are streams too).
STREAMS = (
    subjects.EXPERIMENTS_STREAM, subjects.RESULTS_STREAM, subjects.EVENTS_STREAM,
    subjects.DEAD_LETTERS_STREAM, subjects.STEER_STREAM, f"KV_{subjects.RESULTS_BUCKET}",
    f"KV_{subjects.RUNS_BUCKET}", f"OBJ_{subjects.ARTIFACTS_BUCKET}",
)  # fmt: skip


@dataclass
class Node:
    """One nats-server of the cluster; it can be killed and restarted on the same ports and
    store, as a crashed machine that comes back."""

    index: int
    client_port: int
    cluster_port: int
    http_port: int
    routes: tuple[str, str]
    dir: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    starts: int = 0

    @property
    def name(self) -> str:
        return f"glia-{self.index}"  # JetStream reports stream leaders by server name

    @property
    def url(self) -> str:
        return f"nats://{HOST}:{self.client_port}"

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None
        self.starts += 1
        env = os.environ | {
            "NATS_SERVER_NAME": self.name,
            "NATS_HOST": HOST,
            "NATS_CLIENT_PORT": str(self.client_port),
            "NATS_CLUSTER_PORT": str(self.cluster_port),
            "NATS_HTTP_PORT": str(self.http_port),
            "NATS_STORE_DIR": f'"{self.dir / "store"}"',  # nats-server parses the value
            "NATS_ROUTE_1": self.routes[0],
            "NATS_ROUTE_2": self.routes[1],
        }
        log = self.dir / f"server-{self.starts}.log"
        self.proc = subprocess.Popen(
            [find_nats_server(), "-c", str(CONF), "-l", str(log)],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip

    def kill(self) -> None:
        """SIGKILL: no lame duck, no goodbye to the other nodes or the clients."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self) -> str:
        log = self.dir / f"server-{self.starts}.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        return " | ".join(text.strip().splitlines()[-5:])

    async def monitor(self, path: str) -> dict[str, Any] | None:
        """GET a monitoring endpoint; None while the server does not answer it with 200."""

        def get() -> dict[str, Any] | None:
            url = f"http://{HOST}:{self.http_port}{path}"
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    data: dict[str, Any] = json.loads(resp.read())
                    return data
            except (OSError, ValueError):  # refused, 503 (not ready), half-written answer
                return None

        return await anyio.to_thread.run_sync(get)

    async def wait_ready(self, timeout: float = 60.0, *, caught_up: bool = False) -> None:
        """Until JetStream is up here (``caught_up``: and current with the other nodes)."""
        path = "/healthz" if caught_up else "/healthz?js-enabled-only=true"
        with anyio.fail_after(timeout):
            while (await self.monitor(path) or {}).get("status") != "ok":
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise RuntimeError(f"nats-server {self.name} exited: {self.log_tail()}")
                await anyio.sleep(0.2)


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind((HOST, 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


async def _meta_ready(nodes: list[Node]) -> bool:
    """A meta leader is elected and sees both other peers as current (only the leader knows
    that). Glia's own setup also retries while peers join; waiting here keeps the tests'
    timing the same from run to run."""
    for n in nodes:
        meta = (await n.monitor("/jsz") or {}).get("meta_cluster", {})
        if meta.get("leader") == n.name:
            peers = meta.get("replicas") or []
            return len(peers) == 2 and all(p.get("current") for p in peers)
    return False


@asynccontextmanager
async def three_nodes(tmp_path: Path) -> AsyncIterator[list[Node]]:
    """A 3-node JetStream cluster on loopback, ready (a meta leader elected) on entry."""
    ports = free_ports(9)
    nodes = []
    for i in range(3):
        routes = [f"nats://{HOST}:{ports[3 + j]}" for j in range(3) if j != i]
        d = tmp_path / f"n{i + 1}"
        d.mkdir()
        nodes.append(Node(i + 1, ports[i], ports[3 + i], ports[6 + i], (routes[0], routes[1]), d))
    try:
        for n in nodes:
            n.start()
        for n in nodes:
            await n.wait_ready()
        with anyio.fail_after(60):
            while not await _meta_ready(nodes):
                await anyio.sleep(0.2)
        yield nodes
    finally:
        for n in nodes:
            n.stop()


def urls(nodes: list[Node]) -> str:
    return ",".join(n.url for n in nodes)


@contextmanager
def spawned(
    argv: list[str], log: Path, out: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A process in its own session; it and everything it started are killed on exit."""
    with open(log, "wb") as err, open(out or os.devnull, "wb") as stdout:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=err, start_new_session=True
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # a worker drains, a design run stops
            with suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=20)
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # and any child left behind
        proc.wait()


@contextmanager
def workers_on(
    nodes: list[Node], log_dir: Path, ack_wait: float
) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """`glia worker` w<i> connected to node i only (it learns the others from the cluster)."""
    procs: dict[str, subprocess.Popen[bytes]] = {}
    with ExitStack() as stack:
        for n in nodes:
            name = f"w{n.index}"
            argv = [sys.executable, "-m", "glia", "worker", "--nats", n.url, "--name", name]
            argv += ["--concurrency", "1", "--stream-replicas", "3", "--ack-wait", str(ack_wait)]
            procs[name] = stack.enter_context(spawned(argv, log_dir / f"{name}.log"))
        yield procs


async def workers_ready(
    bus: NatsBus, procs: dict[str, subprocess.Popen[bytes]], logs: Path
) -> None:
    """Until every worker has sent a heartbeat; fails at once if one exits instead."""

    async def watch() -> None:
        while True:
            for name, p in procs.items():
                if p.poll() is not None:
                    tail = (logs / f"{name}.log").read_text(errors="replace")[-2000:]
                    raise AssertionError(f"worker {name} exited with {p.returncode}: {tail}")
            await anyio.sleep(0.2)

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch)
        await wait_for_workers(bus, set(procs))
        tg.cancel_scope.cancel()


async def stream_leader(bus: NatsBus, stream: str, *, not_: str | None = None) -> str:
    """The server leading ``stream`` (other than ``not_``), once the cluster has elected one."""
    js = bus.nc.jetstream(timeout=1.0)  # asked often: no leader yet means no answer
    with anyio.fail_after(90):
        while True:
            with suppress(nats.errors.Error):
                info = await js.stream_info(stream)
                leader = info.cluster.leader if info.cluster else None
                if leader and leader != not_:
                    return leader
            await anyio.sleep(0.1)


async def first_event(bus: NatsBus, run_id: str, match: Callable[[Event], bool]) -> Event:
    """The first event of ``run_id`` (replayed from the start) that ``match`` accepts."""
    with anyio.fail_after(120):
        async with bus.events(run_id) as events:
            async for ev in events:
                if match(ev):
                    return ev
    raise AssertionError("the event stream ended")


async def all_events(bus: NatsBus, run_id: str, kind: type[E], idle: float = 3.0) -> list[E]:
    """Every event of ``kind`` of a run so far (the stream is idle for ``idle`` seconds)."""
    out: list[E] = []
    async with bus.events(run_id) as events:
        while True:
            with anyio.move_on_after(idle) as scope:
                ev = await events.__anext__()
                if isinstance(ev, kind):
                    out.append(ev)
            if scope.cancelled_caught:
                return out


async def exit_code(proc: subprocess.Popen[bytes], timeout: float) -> int:
    with anyio.fail_after(timeout):
        while (rc := proc.poll()) is None:
            await anyio.sleep(0.1)
    return rc


def kill_worker(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL a worker and its simulation processes, as a machine that dies."""
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


async def local_results(exps: list[Experiment]) -> list[Any]:
    """Each experiment run here; designs (which sleep in their sandboxes) overlapped."""
    out: list[Any] = [None] * len(exps)

    async def one(i: int) -> None:
        out[i] = await anyio.to_thread.run_sync(run_experiment, exps[i])

    async with anyio.create_task_group() as tg:
        for i, exp in enumerate(exps):
            if exp.design_source is None:
                out[i] = run_experiment(exp)
            else:
                tg.start_soon(one, i)
    return out


@pytest.mark.timeout(420)
async def test_a_batch_on_3_nodes_survives_losing_the_stream_leader_and_a_worker(
    tmp_path: Path,
) -> None:
    (base,) = small_experiments(1)

    def sleepy(seed: int, seconds: float) -> Experiment:
        return msgspec.structs.replace(
            base, seed=seed, design_source=SLOW_DESIGN.format(seconds=seconds)
        )

    quick = small_experiments(20)
    phase_a = [sleepy(100 + i, 1.5) for i in range(6)]  # running when the leader dies
    phase_b = quick[:12]  # submitted while the cluster elects a new leader
    phase_c = [sleepy(200, 8.0), *quick[12:]]  # after the restart; its worker dies mid-run
    exps = phase_a + phase_b + phase_c
    assert len({e.key() for e in exps}) == len(exps)
    run_id = new_run_id()
    async with (
        three_nodes(tmp_path) as nodes,
        NatsBus.connect(urls(nodes), name="test-client", replicas=3) as bus,
    ):
        client = Client(bus)
        for stream in STREAMS:
            assert (await bus.js.stream_info(stream)).config.num_replicas == 3
        with workers_on(nodes, tmp_path, ack_wait=5.0) as procs:
            await workers_ready(bus, procs, tmp_path)
            a = await client.submit(phase_a, run_id=run_id)
            await first_event(bus, run_id, lambda ev: isinstance(ev, ExperimentStarted))
            leader = await stream_leader(bus, subjects.EXPERIMENTS_STREAM)
            victim = next(n for n in nodes if n.name == leader)
            victim.kill()
            b = await client.submit(phase_b, run_id=run_id)
            successor = await stream_leader(bus, subjects.EXPERIMENTS_STREAM, not_=leader)
            victim.start()
            await victim.wait_ready()
            for stream in STREAMS:  # the rest of the cluster has recovered too
                await stream_leader(bus, stream)
            # The slow one alone first, so that its worker is killed as soon as it starts: a
            # publish of the others, retried while the cluster settles, held the kill back
            # once until the design had finished.
            c0 = await client.submit(phase_c[:1], run_id=run_id, labels=["slow"])
            started = await first_event(
                bus, run_id, lambda ev: isinstance(ev, ExperimentStarted) and ev.label == "slow"
            )
            assert isinstance(started, ExperimentStarted)
            kill_worker(procs[started.worker])
            c = await client.submit(phase_c[1:], run_id=run_id, labels=list("cdefghij"))
            parts = (a, b, c0, c)
            run = SubmittedRun(
                run_id, sum((p.keys for p in parts), ()), sum((p.labels for p in parts), ())
            )
            results = await client.gather(run, timeout=300)
            with anyio.fail_after(60):  # every request acknowledged: nothing more will come
                while await bus.queue_depth():
                    await anyio.sleep(0.2)
            every = await all_results(bus, run_id, idle=3.0)
            await victim.wait_ready(caught_up=True)
            info = await bus.js.stream_info(subjects.EXPERIMENTS_STREAM)
    assert successor != leader
    assert info.cluster is not None
    assert victim.name in {p.name for p in info.cluster.replicas or []} | {info.cluster.leader}
    assert all(isinstance(r, ExperimentResult) for r in results)
    assert sorted(r.key for r in every) == sorted(run.keys)  # each exactly once
    slow = results[len(phase_a) + len(phase_b)]
    assert isinstance(slow, ExperimentResult)
    assert slow.worker != started.worker  # redelivered to a live worker
    for res, ref in zip(results, await local_results(exps), strict=True):
        assert isinstance(res, ExperimentResult)
        assert _same(res.summary, ref.summary)


# Each simulation takes a good fraction of a second, so a worker killed as it starts one is
# killed while running it.
DESIGN = [
    "design",
    "--budget",
    "3",
    "--seeds",
    "1",
    "--known-seeds",
    "--set",
    "duration_s=300",
    "--json",
]


@pytest.mark.timeout(420)
async def test_a_design_run_on_3_nodes_ends_as_an_undisturbed_one(tmp_path: Path) -> None:
    glia = [sys.executable, "-m", "glia"]
    local_out, cluster_out = tmp_path / "local.json", tmp_path / "cluster.json"
    # The undisturbed reference: the same run on this machine's own workers, meanwhile.
    with spawned(
        [*glia, *DESIGN, "--out", str(tmp_path / "local"), "--workers", "1"],
        tmp_path / "local.log", local_out,
    ) as local:  # fmt: skip
        async with (
            three_nodes(tmp_path) as nodes,
            NatsBus.connect(urls(nodes), name="test-client", replicas=3) as bus,
        ):
            # The default ack wait (30 s): the experiment the killed worker was running goes
            # to another worker only then, so the design run cannot end before the restart.
            with workers_on(nodes, tmp_path, ack_wait=30.0) as procs:
                await workers_ready(bus, procs, tmp_path)
                leader = await stream_leader(bus, subjects.EXPERIMENTS_STREAM)
                victim = next(n for n in nodes if n.name == leader)
                with anyio.fail_after(120):
                    async with bus.events("*") as events:
                        with spawned(
                            [*glia, *DESIGN, "--out", str(tmp_path / "cluster"), "--nats",
                             urls(nodes)],
                            tmp_path / "cluster.log", cluster_out,
                        ) as design:  # fmt: skip
                            async for ev in events:
                                if isinstance(ev, ExperimentStarted):
                                    killed = ev.worker
                                    kill_worker(procs[killed])
                                    victim.kill()
                                    break
                            await stream_leader(bus, subjects.EXPERIMENTS_STREAM, not_=leader)
                            victim.start()
                            await victim.wait_ready()
                            assert design.poll() is None, "the design run ended before the restart"
                            code = await exit_code(design, 300)
                            assert code == 0, (tmp_path / "cluster.log").read_text()[-3000:]
                summary = json.loads(cluster_out.read_text())
                every = await all_results(bus, summary["run_id"], idle=3.0)
                started = await all_events(bus, summary["run_id"], ExperimentStarted)
        code = await exit_code(local, 300)
        assert code == 0, (tmp_path / "local.log").read_text()[-3000:]
    reference = json.loads(local_out.read_text())
    assert summary["status"] == reference["status"] == "finished"
    assert summary["simulations_used"] == reference["simulations_used"]
    best = Path(summary["best_design_path"]).read_text()
    assert best == Path(reference["best_design_path"]).read_text()
    assert summary["best_mean_e2e_s"] == reference["best_mean_e2e_s"]
    assert summary["baselines"] == reference["baselines"]
    keys = [r.key for r in every]
    assert len(keys) == len(set(keys))  # no result twice
    # The worker was killed while running an experiment, which was then delivered again.
    first = {e.key: e.worker for e in reversed(started)}
    assert any(first[e.key] == killed for e in started if e.attempt > 1)
