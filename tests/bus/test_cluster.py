"""Experiments on a real nats-server with real `glia worker` processes (loopback only)."""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from pathlib import Path

import anyio
import msgspec
import pytest

from glia import Client, run_experiment
from glia.bus import (
    MAX_DELIVER,
    BusError,
    ExperimentFailure,
    ExperimentResult,
    ExperimentStarted,
    NatsBus,
    NatsServer,
    ResultMessage,
    WorkerHeartbeat,
    decode_request,
    nats_server,
)
from glia.bus import _subjects as subjects

from .conftest import small_experiments

pytestmark = pytest.mark.anyio

SLOW_DESIGN = """
import time
from glia.policies import Router

class Slow(Router):
    def setup(self, cluster, rng):
        super().setup(cluster, rng)
        time.sleep({seconds})

    def schedule(self, cluster):
        return [(r.id % cluster.num_replicas, r) for r in cluster.queue]
"""

SEGFAULT_DESIGN = """
import numpy
from glia.policies import Router

class Segfault(Router):
    def schedule(self, cluster):
        # Reads far outside any allocation: the process running the design dies of SIGSEGV.
        view = numpy.lib.stride_tricks.as_strided(numpy.zeros(1), shape=(4,), strides=(1 << 40,))
        return [(0, r) for r in cluster.queue][: int(view.sum())]
"""


@contextmanager
def workers(
    url: str, names: list[str], log_dir: Path, ack_wait: float = 30.0
) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """`glia worker` processes, each in its own session (so tests can kill it alone)."""
    procs = {}
    for name in names:
        with open(log_dir / f"{name}.log", "wb") as log:
            procs[name] = subprocess.Popen(
                [sys.executable, "-m", "glia", "worker", "--nats", url, "--name", name,
                 "--concurrency", "1", "--ack-wait", str(ack_wait)],
                stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
            )  # fmt: skip
    try:
        yield procs
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs.values():
            with suppress(subprocess.TimeoutExpired):
                p.wait(timeout=20)
            with suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)  # and any simulation process left behind
            p.wait()


async def wait_for_workers(bus: NatsBus, names: set[str], timeout: float = 60.0) -> None:
    seen: set[str] = set()
    with anyio.fail_after(timeout):
        async with bus.events("*") as events:
            async for ev in events:
                if isinstance(ev, WorkerHeartbeat) and ev.worker in names:
                    seen.add(ev.worker)
                    if seen == names:
                        return


async def all_results(bus: NatsBus, run_id: str, idle: float = 1.0) -> list[ResultMessage]:
    """Every result message of a run on the stream (not just the first per key)."""
    out: list[ResultMessage] = []
    async with bus.results(run_id) as results:
        while True:
            with anyio.move_on_after(idle) as scope:
                out.append(await results.__anext__())
            if scope.cancelled_caught:
                return out


@asynccontextmanager
async def connected(server: NatsServer) -> AsyncIterator[tuple[NatsBus, Client]]:
    async with NatsBus.connect(server.url, name="test-client") as bus:
        yield bus, Client(bus)


def _same(summary_a: object, summary_b: object) -> bool:
    def norm(s: object) -> object:
        return msgspec.structs.replace(s, wall_s=0.0)  # type: ignore[type-var]

    return bool(norm(summary_a) == norm(summary_b))


async def test_200_experiments_on_2_workers_arrive_exactly_once(
    nats: NatsServer, tmp_path: Path
) -> None:
    exps = small_experiments(200, duration_s=2.0)
    assert len({e.key() for e in exps}) == 200
    async with connected(nats) as (bus, client):
        with workers(nats.url, ["w1", "w2"], tmp_path):
            await wait_for_workers(bus, {"w1", "w2"})
            run = await client.submit(exps)
            results = await client.gather(run, timeout=240)
            every = await all_results(bus, run.run_id)
    assert all(isinstance(r, ExperimentResult) for r in results)
    assert [r.key for r in results] == list(run.keys)
    assert sorted(r.key for r in every) == sorted(run.keys)  # nothing duplicated
    assert {r.worker for r in results if isinstance(r, ExperimentResult)} == {"w1", "w2"}
    for exp, res in zip(exps, results, strict=True):
        assert isinstance(res, ExperimentResult)
        assert _same(res.summary, run_experiment(exp).summary)


async def test_a_killed_worker_loses_nothing(nats: NatsServer, tmp_path: Path) -> None:
    (base,) = small_experiments(1)
    slow = msgspec.structs.replace(base, design_source=SLOW_DESIGN.format(seconds=4.0))
    quick = small_experiments(3)
    async with connected(nats) as (bus, client):
        with workers(nats.url, ["doomed"], tmp_path, ack_wait=2.0) as procs:
            await wait_for_workers(bus, {"doomed"})
            run = await client.submit([slow, *quick], labels=["slow", "a", "b", "c"])
            with anyio.fail_after(60):
                async with bus.events(run.run_id) as events:
                    async for ev in events:
                        if isinstance(ev, ExperimentStarted) and ev.label == "slow":
                            break
            procs["doomed"].send_signal(signal.SIGKILL)
            procs["doomed"].wait()
        with workers(nats.url, ["rescuer"], tmp_path, ack_wait=2.0):
            results = await client.gather(run, timeout=120)
            every = await all_results(bus, run.run_id)
    assert all(isinstance(r, ExperimentResult) for r in results)
    assert results[0].worker == "rescuer"
    assert sorted(r.key for r in every) == sorted(run.keys)


@pytest.mark.slow
async def test_a_restarted_server_loses_nothing(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = tmp_path / "js"
    (base,) = small_experiments(1)
    exps = [
        msgspec.structs.replace(base, seed=i, design_source=SLOW_DESIGN.format(seconds=0.3))
        for i in range(16)
    ]
    async with anyio.create_task_group() as tg, nats_server(port=port, store_dir=store) as first:
        second: list[NatsServer] = []

        async def restart() -> None:
            await anyio.sleep(1.0)
            await first_stop(first)  # mid-run: workers and client lose the server
            await anyio.sleep(1.0)
            second.append(await tg.start(_serve, port, store))

        async with connected(first) as (bus, client):
            with workers(first.url, ["w1", "w2"], tmp_path):
                await wait_for_workers(bus, {"w1", "w2"})
                run = await client.submit(exps)
                tg.start_soon(restart)
                results = await client.gather(run, timeout=180)
            assert second, "the run finished before the server restarted"
        tg.cancel_scope.cancel()
    assert all(isinstance(r, ExperimentResult) for r in results)
    assert len({r.key for r in results}) == 16


async def _serve(port: int, store: Path, *, task_status: anyio.abc.TaskStatus[NatsServer]) -> None:
    async with nats_server(port=port, store_dir=store) as server:
        task_status.started(server)
        await anyio.sleep_forever()


async def first_stop(server: NatsServer) -> None:
    """Stop a server before its context manager exits (simulating a crash and restart)."""
    server.process.terminate()
    await anyio.to_thread.run_sync(server.process.wait)


async def test_a_design_that_crashes_its_process_fails_and_the_rest_complete(
    nats: NatsServer, tmp_path: Path
) -> None:
    (base,) = small_experiments(1)
    crash = msgspec.structs.replace(base, design_source=SEGFAULT_DESIGN)
    good = small_experiments(4)
    async with connected(nats) as (bus, client):
        with workers(nats.url, ["w1", "w2"], tmp_path):
            await wait_for_workers(bus, {"w1", "w2"})
            run = await client.submit([crash, *good], labels=["crash", *"abcd"])
            results = await client.gather(run, timeout=180)
    failure = results[0]
    assert isinstance(failure, ExperimentFailure)
    assert failure.kind == "design"
    assert failure.design is not None
    assert failure.design.kind == "exception"
    assert failure.design.message.startswith("the design's process died of SIGSEGV")
    assert all(isinstance(r, ExperimentResult) for r in results[1:])


async def test_resubmitting_returns_the_cached_result_without_running(
    nats: NatsServer, tmp_path: Path
) -> None:
    exps = small_experiments(5)
    async with connected(nats) as (bus, client):
        with workers(nats.url, ["w1"], tmp_path):
            await wait_for_workers(bus, {"w1"})
            first = await client.gather(await client.submit(exps), timeout=120)
        # No worker runs now: the answers can only come from the cache.
        again = await client.gather(await client.submit(exps), timeout=10)
    assert all(isinstance(r, ExperimentResult) and not r.cached for r in first)
    assert all(isinstance(r, ExperimentResult) and r.cached for r in again)
    assert [r.summary for r in again] == [r.summary for r in first]  # type: ignore[union-attr]


async def test_an_experiment_run_again_keeps_the_artifact_of_its_first_run(
    nats: NatsServer, tmp_path: Path
) -> None:
    # Two runs can run one experiment at once (both submit it before either result is cached).
    # Each run of it stores its table under a name of its own: storing it under the first's
    # name deletes the first's chunks, and a client reading them would wait for ever.
    (exp,) = small_experiments(1)
    async with connected(nats) as (bus, client):
        with workers(nats.url, ["w1"], tmp_path):
            await wait_for_workers(bus, {"w1"})
            (first,) = await client.gather(await client.submit([exp]), timeout=60)
            cache = await bus.js.key_value(subjects.RESULTS_BUCKET)
            await cache.delete(exp.key())  # as if the second run had started meanwhile
            (second,) = await client.gather(await client.submit([exp]), timeout=60)
        assert isinstance(first, ExperimentResult) and isinstance(second, ExperimentResult)
        assert not first.cached and not second.cached
        assert first.artifact and second.artifact and first.artifact != second.artifact
        table = await client.requests(first.artifact)
        assert table and table == await client.requests(second.artifact)


async def test_an_artifact_whose_chunks_vanish_is_an_error_not_a_hang(nats: NatsServer) -> None:
    async with connected(nats) as (bus, _):
        await bus.put_artifact("t.csv", b"id,e2e\n0,1.0\n")
        store = await bus.js.object_store(subjects.ARTIFACTS_BUCKET)
        info = await store.get_info("t.csv")
        stream = f"OBJ_{subjects.ARTIFACTS_BUCKET}"
        await bus.js.purge_stream(stream, subject=f"$O.{subjects.ARTIFACTS_BUCKET}.C.{info.nuid}")
        bus.artifact_wait = 1.0
        with pytest.raises(BusError) as e:
            await bus.get_artifact("t.csv")
    assert str(e.value) == (
        "artifact 't.csv' could not be read in 1 s: its chunks are missing from the object "
        "store (deleted while it was read, or the bucket purged)"
    )


async def test_garbage_on_the_queue_is_dropped_and_work_goes_on(
    nats: NatsServer, tmp_path: Path
) -> None:
    async with connected(nats) as (bus, client):
        await bus.js.publish("glia.exp.submit", b"\xff\x00 not msgpack")
        await bus.js.publish("glia.exp.submit", msgspec.msgpack.encode({"type": "experiment.v7"}))
        with workers(nats.url, ["w1"], tmp_path):
            results = await client.gather(await client.submit(small_experiments(2)), timeout=60)
            with anyio.fail_after(10):  # the last ack follows its result by a moment
                while await bus.queue_depth():
                    await anyio.sleep(0.05)
    assert all(isinstance(r, ExperimentResult) for r in results)
    log = (tmp_path / "w1.log").read_text()
    assert log.count("garbage_request_dropped") == 2


async def test_wrong_credentials_fail_fast_and_never_echo_the_password() -> None:
    async with nats_server(extra_args=["--user", "glia", "--pass", "s3cret"]) as server:
        wrong = server.url.replace("nats://", "nats://glia:wrong-pass@")
        with anyio.fail_after(30), pytest.raises(BusError) as err:
            async with NatsBus.connect(wrong, connect_timeout=2):
                pass
        assert str(err.value) == (
            f"cannot connect to nats://glia:***@127.0.0.1:{server.port}: nats: 'Authorization "
            "Violation' (wrong user, password or credentials: check the URL, --creds or "
            "GLIA_NATS_CREDS)"
        )
        cli = subprocess.run(
            [sys.executable, "-m", "glia", "simulate", "--nats", wrong, "--duration", "5"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert cli.returncode == 2
        assert cli.stderr.splitlines()[-1].startswith("error: cannot connect to nats://glia:***@")
        assert "wrong-pass" not in cli.stderr + cli.stdout
        right = server.url.replace("nats://", "nats://glia:s3cret@")
        async with NatsBus.connect(right) as bus:
            assert await bus.queue_depth() == 0


async def test_no_server_is_a_clear_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with anyio.fail_after(30), pytest.raises(BusError, match="is a nats-server running there"):
        async with NatsBus.connect(f"nats://127.0.0.1:{port}", connect_timeout=1):
            pass


async def test_replicated_streams_on_a_lone_server_is_a_clear_error(nats: NatsServer) -> None:
    with anyio.fail_after(30), pytest.raises(BusError) as err:
        async with NatsBus.connect(nats.url, replicas=3):
            pass
    assert str(err.value) == (
        f"the nats-server at {nats.url} is not part of a cluster, so it keeps one copy of "
        "each stream, not 3: use --stream-replicas 1"
    )


async def test_sigterm_drains_a_worker_after_its_running_experiment(
    nats: NatsServer, tmp_path: Path
) -> None:
    (base,) = small_experiments(1)
    slow = msgspec.structs.replace(base, design_source=SLOW_DESIGN.format(seconds=2.0))
    async with connected(nats) as (bus, client):
        with workers(nats.url, ["w1"], tmp_path) as procs:
            await wait_for_workers(bus, {"w1"})
            run = await client.submit([slow], labels=["slow"])
            with anyio.fail_after(60):
                async with bus.events(run.run_id) as events:
                    async for ev in events:
                        if isinstance(ev, ExperimentStarted):
                            break
            procs["w1"].send_signal(signal.SIGTERM)
            code = await anyio.to_thread.run_sync(lambda: procs["w1"].wait(60))
            (result,) = await client.gather(run, timeout=5)  # finished before it exited
    assert code == 0
    assert isinstance(result, ExperimentResult)
    log = (tmp_path / "w1.log").read_text()
    assert log.index("actors_draining") < log.index("experiment_finished")


async def test_monitor_replays_a_run_as_json_lines(nats: NatsServer, tmp_path: Path) -> None:
    async with connected(nats) as (_, client):
        with workers(nats.url, ["w1"], tmp_path):
            run = await client.submit(small_experiments(2), labels=["a", "b"])
            await client.gather(run, timeout=60)
    out = await anyio.run_process(
        [sys.executable, "-m", "glia", "monitor", "--nats", nats.url, "--run", run.run_id,
         "--json", "--timeout", "3"],
    )  # fmt: skip
    events = [msgspec.json.decode(line) for line in out.stdout.splitlines()]
    kinds = [e["type"] for e in events]
    assert kinds.count("queued.v1") == 2
    assert kinds.count("started.v1") == 2
    assert kinds.count("finished.v1") == 2
    assert {e["run_id"] for e in events} == {run.run_id}
    assert kinds.index("queued.v1") < kinds.index("finished.v1")


async def test_a_credentials_file_that_is_neither_kind_is_a_clear_error(tmp_path: Path) -> None:
    creds = tmp_path / "x.creds"
    creds.write_text("hello")
    with pytest.raises(BusError) as err:
        async with NatsBus.connect("nats://127.0.0.1:1", creds=str(creds)):
            pass
    assert str(err.value) == (
        f"{str(creds)!r} is neither a JWT .creds file (nsc) nor an nkey user seed (nk -gen user)"
    )


async def test_streams_made_by_an_operator_are_left_as_they_are(nats: NatsServer) -> None:
    async with NatsBus.connect(nats.url) as bus:
        info = await bus.js.stream_info("GLIA_EVENTS")
        await bus.js.update_stream(dataclasses.replace(info.config, max_age=3600.0))
    async with NatsBus.connect(nats.url) as bus:
        assert (await bus.js.stream_info("GLIA_EVENTS")).config.max_age == 3600.0


async def test_jetstream_gives_up_after_max_deliver_and_the_request_is_handed_over(
    nats: NatsServer,
) -> None:
    async with connected(nats) as (bus, client):
        await client.submit(small_experiments(1), run_id="r1")
        got: list[bytes] = []
        async with bus.exhausted() as exhausted, bus.work_queue(ack_wait=0.3) as q:
            for _ in range(MAX_DELIVER):  # a worker that takes it and dies, each time
                with anyio.fail_after(10):
                    while not await q.fetch(1, timeout=0.5):
                        pass
            async with anyio.create_task_group() as tg:

                async def idle_worker() -> None:  # the server gives up on its next try
                    while True:
                        assert await q.fetch(1, timeout=0.2) == []

                tg.start_soon(idle_worker)
                with anyio.fail_after(10):
                    got.append(await exhausted.__anext__())
                tg.cancel_scope.cancel()
        with anyio.fail_after(10):
            while await bus.queue_depth():
                await anyio.sleep(0.05)
    assert decode_request(got[0]).run_id == "r1"
