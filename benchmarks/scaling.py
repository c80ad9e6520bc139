"""Throughput of experiments over the bus with 1 and 2 workers, and the bus's own overhead.

Usage: python benchmarks/scaling.py [--experiments 60]

Starts a private nats-server and `glia worker` processes (concurrency 1 each) on loopback.

* scaling: the same batch of distinct glia-routing experiments (300 s of arrivals each) with 1
  worker and with 2; efficiency = (rate with 2) / (2 x rate with 1);
* overhead: tiny experiments (one request each) submitted together through one worker vs run
  locally in one process — the difference per experiment is what the bus, the result cache,
  the artifact store and the worker add; plus the latency of one submit-to-result round trip.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import anyio

import glia
from glia import Client, Experiment, run_experiment
from glia.bus import NatsBus, WorkerHeartbeat, nats_server


@contextmanager
def workers(url: str, n: int, log_dir: Path) -> Iterator[None]:
    procs = []
    for i in range(n):
        with open(log_dir / f"w{i}.log", "wb") as log:
            argv = [sys.executable, "-m", "glia", "worker", "--nats", url]
            argv += ["--name", f"bench-{i}", "--concurrency", "1"]
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


async def wait_ready(bus: NatsBus, n: int) -> None:
    seen: set[str] = set()
    async with bus.events("*") as events:
        async for ev in events:
            if isinstance(ev, WorkerHeartbeat) and ev.worker.startswith("bench-"):
                seen.add(ev.worker)
                if len(seen) == n:
                    return


def batch(n: int, seed0: int, **overrides: Any) -> list[Experiment]:
    cluster, workload = glia.experiment_config("glia-routing", **overrides)
    return [Experiment(cluster=cluster, workload=workload, seed=seed0 + i) for i in range(n)]


async def timed_run(client: Client, exps: list[Experiment]) -> float:
    t0 = time.perf_counter()
    await client.gather(await client.submit(exps), timeout=3600)
    return time.perf_counter() - t0


async def main(n: int) -> None:
    with TemporaryDirectory() as tmp:
        logs = Path(tmp)
        rates = {}
        for k in (1, 2):
            async with (
                nats_server(store_dir=logs / f"js{k}") as server,
                NatsBus.connect(server.url) as bus,
            ):
                client = Client(bus)
                with workers(server.url, k, logs):
                    await wait_ready(bus, k)
                    await timed_run(client, batch(2, 10_000 + k, duration_s=20.0))  # warm
                    wall = await timed_run(client, batch(n, 1000 * k, duration_s=300.0))
                    rates[k] = n / wall
                    print(f"{k} worker(s): {n} experiments in {wall:.2f} s = {rates[k]:.2f}/s")
                    if k == 1:
                        tiny = batch(200, 50_000, duration_s=5.0, max_requests=1)
                        t0 = time.perf_counter()
                        for e in tiny:
                            run_experiment(e)
                        local = (time.perf_counter() - t0) / len(tiny)
                        bus_wall = await timed_run(
                            client, batch(200, 60_000, duration_s=5.0, max_requests=1)
                        )
                        per = bus_wall / 200
                        trips = []
                        for e in batch(20, 70_000, duration_s=5.0, max_requests=1):
                            trips.append(await timed_run(client, [e]))
                        print(
                            f"tiny experiment locally: {1e3 * local:.2f} ms; through the "
                            f"bus (200 in flight): {1e3 * per:.2f} ms each -> bus overhead "
                            f"{1e3 * (per - local):.2f} ms per experiment"
                        )
                        trips.sort()
                        print(
                            f"one submit-to-result round trip: median "
                            f"{1e3 * trips[len(trips) // 2]:.1f} ms"
                        )
        print(f"scaling efficiency 1 -> 2 workers: {rates[2] / (2 * rates[1]):.2f}")
        print(
            f"machine: {platform.platform()}, {os.cpu_count()} cores, "
            f"python {platform.python_version()}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--experiments", type=int, default=60)
    anyio.run(main, parser.parse_args().experiments)
