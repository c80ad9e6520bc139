"""Experiments over a 3-node JetStream cluster: throughput with 1-3 workers, and what 3 replicas
cost in latency.

Usage: python benchmarks/cluster_r3.py [--experiments 60] [--trips 30]

Starts three nats-servers from infra/nats/cluster-node.conf on loopback and `glia worker`
processes (concurrency 1 each, worker i connected to node i).

* throughput: the same kind of batch as scaling.py (distinct glia-routing experiments, 300 s of
  arrivals each) with 1, 2 and 3 workers, Glia's streams and buckets with 3 replicas;
* R3 vs R1: on a cluster whose streams have 1 replica and on one whose streams have 3, the
  submit-to-result round trip of a tiny experiment (one request) through one worker, and the
  latency of one acknowledged publish of a result-sized message (what a worker waits for per
  result; a finished experiment makes four such writes: artifact, cache entry, result, ack).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager, suppress
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import anyio
from nats.js import api

import glia
from glia import Client, Experiment
from glia.bus import NatsBus, WorkerHeartbeat, find_nats_server

CONF = Path(__file__).resolve().parents[1] / "infra" / "nats" / "cluster-node.conf"
HOST = "127.0.0.1"


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind((HOST, 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def healthy(http_port: int) -> bool:
    url = f"http://{HOST}:{http_port}/healthz?js-enabled-only=true"
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(json.loads(resp.read()).get("status") == "ok")
    except (OSError, ValueError):
        return False


def meta_leader(http_port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{http_port}/jsz", timeout=2) as resp:
            return bool(json.loads(resp.read()).get("meta_cluster", {}).get("leader"))
    except (OSError, ValueError):
        return False


@asynccontextmanager
async def cluster(store: Path) -> AsyncIterator[list[str]]:
    """Three nodes on loopback; yields their client URLs once a meta leader is elected."""
    ports = free_ports(9)
    procs = []
    try:
        for i in range(3):
            routes = [f"nats://{HOST}:{ports[3 + j]}" for j in range(3) if j != i]
            (store / f"n{i}").mkdir(parents=True)
            env = os.environ | {
                "NATS_SERVER_NAME": f"bench-{i + 1}", "NATS_HOST": HOST,
                "NATS_CLIENT_PORT": str(ports[i]), "NATS_CLUSTER_PORT": str(ports[3 + i]),
                "NATS_HTTP_PORT": str(ports[6 + i]), "NATS_STORE_DIR": f'"{store / f"n{i}"}"',
                "NATS_ROUTE_1": routes[0], "NATS_ROUTE_2": routes[1],
            }  # fmt: skip
            argv = [find_nats_server(), "-c", str(CONF), "-l", str(store / f"n{i}.log")]
            proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, start_new_session=True)
            procs.append(proc)
        with anyio.fail_after(60):
            for i in range(3):
                while not await anyio.to_thread.run_sync(healthy, ports[6 + i]):
                    await anyio.sleep(0.2)
            while not await anyio.to_thread.run_sync(meta_leader, ports[6]):
                await anyio.sleep(0.2)
        yield [f"nats://{HOST}:{p}" for p in ports[:3]]
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@contextmanager
def workers(urls: list[str], n: int, replicas: int, log_dir: Path) -> Iterator[None]:
    """Workers bench-0..n-1, worker i connected to node i."""
    with ExitStack() as stack:
        procs = []
        for i in range(n):
            log = stack.enter_context(open(log_dir / f"w{i}-r{replicas}.log", "wb"))
            argv = [sys.executable, "-m", "glia", "worker", "--nats", urls[i % len(urls)]]
            argv += ["--name", f"bench-{i}", "--concurrency", "1"]
            argv += ["--stream-replicas", str(replicas)]
            procs.append(
                subprocess.Popen(
                    argv, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True
                )
            )
        try:
            yield
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                with suppress(subprocess.TimeoutExpired):
                    p.wait(timeout=30)
                with suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait()


async def wait_ready(bus: NatsBus, n: int, since: float) -> None:
    """Until ``n`` workers started after ``since`` have sent a heartbeat."""
    seen: set[str] = set()
    with anyio.fail_after(120):
        async with bus.events("*") as events:
            async for ev in events:
                if isinstance(ev, WorkerHeartbeat) and ev.at >= since:
                    seen.add(ev.worker)
                    if len(seen) >= n:
                        return


def batch(n: int, seed0: int, **overrides: Any) -> list[Experiment]:
    cluster_config, workload = glia.experiment_config("glia-routing", **overrides)
    return [Experiment(cluster=cluster_config, workload=workload, seed=seed0 + i) for i in range(n)]


async def timed_run(client: Client, exps: list[Experiment]) -> float:
    t0 = time.perf_counter()
    await client.gather(await client.submit(exps), timeout=3600)
    return time.perf_counter() - t0


async def round_trips(client: Client, trips: int, seed0: int) -> list[float]:
    out = []
    for e in batch(trips, seed0, duration_s=5.0, max_requests=1):
        out.append(await timed_run(client, [e]))
    return out


async def publish_latency(bus: NatsBus, replicas: int, n: int = 300) -> list[float]:
    """Acknowledged publishes of a result-sized message to a fresh stream of ``replicas``."""
    name = f"BENCH_R{replicas}"
    await bus.js.add_stream(
        api.StreamConfig(
            name=name, subjects=[f"bench.r{replicas}"], storage=api.StorageType.FILE,
            num_replicas=replicas,
        )
    )  # fmt: skip
    payload = os.urandom(1200)  # an encoded ExperimentResult is about this size
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        await bus.js.publish(f"bench.r{replicas}", payload)
        out.append(time.perf_counter() - t0)
    return out


def ms(xs: list[float]) -> str:
    xs = sorted(xs)
    return f"median {1e3 * statistics.median(xs):.2f} ms, p90 {1e3 * xs[int(0.9 * len(xs))]:.2f} ms"


async def main(n: int, trips: int) -> None:
    print(f"# {time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, nats-server 3 nodes on loopback")  # fmt: skip
    with TemporaryDirectory() as tmp:
        logs = Path(tmp)
        latency: dict[int, tuple[list[float], list[float]]] = {}
        for replicas in (1, 3):
            async with (
                cluster(logs / f"r{replicas}") as urls,
                NatsBus.connect(",".join(urls), name="bench", replicas=replicas) as bus,
            ):
                client = Client(bus)
                since = time.time()
                with workers(urls, 1, replicas, logs):
                    await wait_ready(bus, 1, since)
                    await timed_run(client, batch(2, 90_000 + replicas, duration_s=20.0))
                    trips_s = await round_trips(client, trips, 70_000 + 1000 * replicas)
                latency[replicas] = (trips_s, await publish_latency(bus, replicas))
                if replicas == 1:
                    continue
                print("\nthroughput, streams and buckets R3 (experiments/s):")
                rates = {}
                for k in (1, 2, 3):
                    since = time.time()
                    with workers(urls, k, replicas, logs):
                        await wait_ready(bus, k, since)
                        await timed_run(client, batch(2, 10_000 + 100 * k, duration_s=20.0))
                        wall = await timed_run(client, batch(n, 1000 * k, duration_s=300.0))
                    rates[k] = n / wall
                    print(f"{k} worker(s): {n} experiments in {wall:.2f} s = {rates[k]:.2f}/s")
                for k in (2, 3):
                    print(f"efficiency 1 -> {k} workers: {rates[k] / (k * rates[1]):.2f}")
        print("\nR1 vs R3 (one worker, sequential):")
        for replicas, (trips_s, pubs) in latency.items():
            print(f"R{replicas}: submit-to-result round trip {ms(trips_s)}; "
                  f"acknowledged publish {ms(pubs)}")  # fmt: skip
        d_trip = statistics.median(latency[3][0]) - statistics.median(latency[1][0])
        d_pub = statistics.median(latency[3][1]) - statistics.median(latency[1][1])
        print(
            f"added by R3: {1e3 * d_trip:.2f} ms per round trip, {1e3 * d_pub:.2f} ms per publish"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--experiments", type=int, default=60)
    parser.add_argument("--trips", type=int, default=30)
    args = parser.parse_args()
    anyio.run(main, args.experiments, args.trips)
