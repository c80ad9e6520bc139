"""Nothing Glia starts outlives it: hard kills of the CLI leave no process and no temporary store.

Each test runs the real CLI (``python -m glia ...``) in a session of its own, with ``TMPDIR``
pointing at a folder of the test's, and a marker in its environment. While it runs, every
descendant seen in ``/proc`` is recorded (pid and start time, so a reused pid is not mistaken
for it); once it is mid-run it is killed with SIGKILL (once SIGSTOP first), and within a few
seconds no recorded process, and no process carrying the marker, may be alive, and the
temporary folder must be empty. Linux only (``/proc``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import msgspec
import pytest

import glia
from glia import Experiment
from glia._tempstore import MARKER, lock_dir, reclaim, temp_store
from glia.bus import ExperimentResult, ExperimentStarted, NatsBus, decode_result, nats_server
from glia.experiment import Limits
from glia.runtime import local_cluster
from glia.sandbox import boundary

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")

MARK = "GLIA_LIFECYCLE_TEST"
_SETTLE_S = 15.0
"""Bound on the time the killed CLI's processes get to go (the launcher gives a nats-server
10 s after SIGTERM before SIGKILL); normally they are gone in well under a second."""
_START_S = 120.0
"""Bound on the time a CLI gets to reach the middle of its run (2 busy cores)."""

Proc = tuple[int, int]  # pid, start time (clock ticks after boot)


# -- /proc ---------------------------------------------------------------------------------------
def _stat(pid: int) -> tuple[str, int, int] | None:
    """State, parent pid and start time of ``pid`` (None if there is no such process)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "
    return fields[0], int(fields[1]), int(fields[19])


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _descendants(root: int) -> set[Proc]:
    parents: dict[int, list[tuple[int, int]]] = {}
    for pid in _pids():
        st = _stat(pid)
        if st is not None:
            parents.setdefault(st[1], []).append((pid, st[2]))
    found: set[Proc] = set()
    todo = [root]
    while todo:
        for pid, start in parents.get(todo.pop(), []):
            if (pid, start) not in found:
                found.add((pid, start))
                todo.append(pid)
    return found


def _alive(proc: Proc) -> bool:
    st = _stat(proc[0])
    return st is not None and st[2] == proc[1] and st[0] not in ("Z", "X")


def _marked(token: str) -> set[Proc]:
    """Live processes whose environment carries the test's marker."""
    found: set[Proc] = set()
    needle = f"{MARK}={token}".encode()
    for pid in _pids():
        with contextlib.suppress(OSError):
            if needle in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                st = _stat(pid)
                if st is not None and st[0] not in ("Z", "X"):
                    found.add((pid, st[2]))
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _describe(procs: set[Proc]) -> list[str]:
    return [f"{pid}: {_cmdline(pid)[:160]}" for pid, _ in sorted(procs)]


# -- running the CLI -----------------------------------------------------------------------------
class Cli:
    """``python -m glia ARGS`` (or ``python ARGS``, with ``module=None``) in its own session,
    its descendants recorded while it runs."""

    def __init__(self, args: list[str], tmp_path: Path, module: str | None = "glia") -> None:
        self.tmpdir = tmp_path / "tmp"
        self.tmpdir.mkdir(exist_ok=True)
        self.token = secrets.token_hex(8)
        self.stderr = tmp_path / f"stderr-{self.token}.txt"
        env = {k: v for k, v in os.environ.items() if not k.startswith("GLIA_NATS")}
        env |= {"TMPDIR": str(self.tmpdir), MARK: self.token}
        with self.stderr.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, *(["-m", module] if module else []), *args],
                cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=err, start_new_session=True,
            )  # fmt: skip
        self.seen: set[Proc] = set()

    def record(self) -> set[Proc]:
        now = _descendants(self.proc.pid)
        self.seen |= now
        return now

    def log(self) -> str:
        return self.stderr.read_text(errors="replace")[-3000:]

    def wait_until(self, what: str, ready: Callable[[set[Proc]], bool]) -> None:
        """Record descendants until ``ready(current descendants)``; fail if the CLI ends first."""
        deadline = time.monotonic() + _START_S
        while not ready(self.record()):
            assert self.proc.poll() is None, f"the CLI ended before {what}:\n{self.log()}"
            assert time.monotonic() < deadline, f"no {what} within {_START_S:g} s:\n{self.log()}"
            time.sleep(0.02)

    def kill(self, *, stop_first: bool = False) -> None:
        assert self.proc.poll() is None, f"the CLI ended before it was killed:\n{self.log()}"
        if stop_first:
            os.kill(self.proc.pid, signal.SIGSTOP)
            state = None
            for _ in range(500):  # a few ms normally
                state = (_stat(self.proc.pid) or ("gone",))[0]
                if state == "T":
                    break
                time.sleep(0.01)
            assert state == "T", f"SIGSTOP left the CLI in state {state!r}"
        self.record()
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def assert_nothing_left(self, *, stale_ok: bool = False) -> None:
        """Within a few seconds: no process it started is alive, its temporary folder is empty
        (``stale_ok``: but for stores a kill at the wrong moment left, which the next Glia
        process reclaims: marked as Glia's, with a lock nobody holds; always: but for
        CPython's own probe of the folder, see :func:`_tempdir_probe`)."""
        deadline = time.monotonic() + _SETTLE_S
        while True:
            alive = {p for p in self.seen if _alive(p)} | _marked(self.token)
            left = [
                p for p in self.tmpdir.iterdir()
                if not (stale_ok and _stale(p)) and not _tempdir_probe(p)
            ]  # fmt: skip
            if (not alive and not left) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert not alive, f"still running after the kill: {_describe(alive)}"
        assert not left, f"left in the temporary folder: {sorted(p.name for p in left)}"


_PROBE = re.compile(r"[a-z0-9_]{8}")


def _tempdir_probe(path: Path) -> bool:
    """CPython's own test of the temporary folder (``tempfile._get_default_tempdir``, on a
    process's first use of it): a file of 8 random characters holding ``blat``, removed at
    once. A process killed between the two leaves it; nothing of Glia's is named so."""
    try:
        data = path.read_bytes() if path.is_file() and not path.is_symlink() else None
    except OSError:
        return False
    return data is not None and bool(_PROBE.fullmatch(path.name)) and b"blat".startswith(data)


def _stale(path: Path) -> bool:
    if not (path / MARKER).exists():
        return False
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


def _named(procs: set[Proc], text: str) -> list[int]:
    return [pid for pid, _ in procs if text in _cmdline(pid)]


def _pool_started(procs: set[Proc]) -> bool:
    """A pool process (a child of the fork server) is running."""
    servers = set(_named(procs, "multiprocessing.forkserver"))
    return any((st := _stat(pid)) is not None and st[1] in servers for pid, _ in procs)


def _pool_running(procs: set[Proc]) -> bool:
    """A nats-server and a pool process are running."""
    return bool(_named(procs, "nats-server -a")) and _pool_started(procs)


@contextlib.contextmanager
def _cleanup(cli: Cli) -> Iterator[Cli]:
    """Whatever happens in the test, nothing of the CLI is left running for the next one."""
    try:
        yield cli
    finally:
        if cli.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(cli.proc.pid, signal.SIGKILL)
            cli.proc.wait()
        for pid, start in cli.seen | _marked(cli.token):
            if _alive((pid, start)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


# -- the CLI, killed -----------------------------------------------------------------------------
def test_simulate_killed_mid_run_leaves_nothing(tmp_path: Path) -> None:
    with _cleanup(Cli(["simulate", "--duration", "600"], tmp_path)) as cli:
        cli.wait_until("the simulation started", _pool_running)
        cli.kill()
        cli.assert_nothing_left()


@pytest.mark.parametrize(
    ("stop_first", "in_process"),
    [(False, False), (True, False), (False, True)],
    ids=["kill", "stop-then-kill", "in-process-pool"],
)
def test_baselines_killed_mid_run_leaves_nothing(
    tmp_path: Path, stop_first: bool, in_process: bool
) -> None:
    args = ["baselines", "--duration", "120", *(["--in-process"] if in_process else [])]
    with _cleanup(Cli(args, tmp_path)) as cli:
        # --in-process: a plain process pool, forked from the CLI (no server, no fork server).
        cli.wait_until("the baselines started", bool if in_process else _pool_running)
        cli.kill(stop_first=stop_first)
        cli.assert_nothing_left()


def _experiments(n: int) -> list[Experiment]:
    cluster, workload = glia.experiment_config("glia-routing", duration_s=600)
    routers = sorted(glia.BASELINES)
    return [
        Experiment(cluster=cluster, workload=workload, seed=i // len(routers), router=r)
        for i, r in zip(range(n), routers * (n // len(routers) + 1), strict=False)
    ]


@pytest.mark.anyio
async def test_worker_killed_mid_run_leaves_nothing(tmp_path: Path) -> None:
    async with nats_server(store_dir=tmp_path / "js") as server, glia.connect(server.url) as c:
        await c.submit(_experiments(24))
        args = ["worker", "--nats", server.url, "--concurrency", "2", "--ack-wait", "5"]
        with _cleanup(Cli(args, tmp_path)) as cli:
            await anyio.to_thread.run_sync(cli.wait_until, "an experiment started", _pool_started)
            cli.kill()
            await anyio.to_thread.run_sync(cli.assert_nothing_left)


# -- glia design: killed, then resumed -----------------------------------------------------------
async def _results(store: Path) -> list[ExperimentResult]:
    """Every result the run's server holds, from a server started on its store (left by a
    killed run)."""
    async with nats_server(store_dir=store) as server, NatsBus.connect(server.url) as bus:
        count = (await bus.js.stream_info("GLIA_RESULTS")).state.messages
        out: list[ExperimentResult] = []
        sub = await bus.js.subscribe("glia.result.>", ordered_consumer=True)
        try:
            with anyio.fail_after(30):
                for _ in range(count):
                    msg = decode_result((await sub.next_msg(timeout=10)).data)
                    if isinstance(msg, ExperimentResult):
                        out.append(msg)
        finally:
            await sub.unsubscribe()
        return out


def _simulated(results: list[ExperimentResult]) -> list[str]:
    """The keys of the results a worker simulated (not answered from the cache)."""
    return [r.key for r in results if not r.cached]


@pytest.mark.slow
@pytest.mark.anyio
async def test_design_killed_mid_run_resumes_without_repeating_simulations(
    tmp_path: Path,
) -> None:
    out = (tmp_path / "runs").absolute()
    args = ["design", "--budget", "2", "--seeds", "1", "--set", "duration_s=60",
            "--workers", "2", "--out", str(out)]  # fmt: skip

    def first_trial_done(procs: set[Proc]) -> bool:
        return any(out.glob("*/ctx-0/results/trial-001-*.csv"))

    with _cleanup(Cli(args, tmp_path)) as cli:
        await anyio.to_thread.run_sync(cli.wait_until, "the first trial finished", first_trial_done)
        cli.kill()
        # An analysis may have been starting or ending: its scratch folder is left to reclaim.
        await anyio.to_thread.run_sync(lambda: cli.assert_nothing_left(stale_ok=True))
    (run,) = out.iterdir()
    assert (run / "nats" / "jetstream").is_dir(), "the run's own server store must be kept"

    before = _simulated(await _results(run / "nats"))
    assert before, "nothing had finished before the kill"
    assert len(before) == len(set(before))

    resume = Cli(["design", "--resume", str(run), "--json"], tmp_path)
    with _cleanup(resume):
        code = await anyio.to_thread.run_sync(lambda: resume.proc.wait(timeout=_START_S))
        assert code == 0, resume.log()
        await anyio.to_thread.run_sync(resume.assert_nothing_left)  # stale ones reclaimed too
    summary = msgspec.json.decode((run / "run.json").read_bytes())
    assert summary["status"] == "finished", summary
    after = _simulated(await _results(run / "nats"))
    repeated = sorted({k[:12] for k in after if after.count(k) > 1})
    assert not repeated, f"simulated again after the resume: {repeated}"
    assert set(before) < set(after)  # the resumed run did simulate what was left


# -- sandbox and analysis processes, their parent killed ----------------------------------------
SANDBOX_PARENT = """
import sys, threading
import glia
from glia.sandbox import Limits, run_sandboxed
if sys.argv[1] == "threaded":  # a second thread (the sandbox is spawned the same way)
    threading.Thread(target=threading.Event().wait, daemon=True).start()
design = (
    "import time\\n"
    "from glia.policies import Router\\n"
    "time.sleep(600)\\n"
    "class Sleeper(Router):\\n"
    "    def schedule(self, cluster):\\n"
    "        return []\\n"
)
cluster, workload = glia.experiment_config("glia-routing", duration_s=20)
run_sandboxed(design, cluster, workload, limits=Limits(wall_s=600, cpu_s=600))
"""


@pytest.mark.parametrize("start", ["single", "threaded"])
def test_a_sandbox_process_dies_with_its_killed_parent(tmp_path: Path, start: str) -> None:
    def sandbox_started(procs: set[Proc]) -> bool:
        return bool(procs)  # spawned (bubblewrap, then the design's python), never forked

    with _cleanup(Cli(["-c", SANDBOX_PARENT, start], tmp_path, module=None)) as cli:
        cli.wait_until("the sandbox process started", sandbox_started)
        cli.kill()
        cli.assert_nothing_left()


ANALYSIS_PARENT = """
import sys
from pathlib import Path
import anyio
from glia.sandbox import run_analysis
script = "import time\\ntime.sleep(600)\\n"
anyio.run(lambda: run_analysis(script, Path(sys.argv[1]), timeout_s=600))
"""


def test_an_analysis_process_dies_with_its_killed_parent_and_removes_its_scratch(
    tmp_path: Path,
) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    args = ["-c", ANALYSIS_PARENT, str(workspace)]
    with _cleanup(Cli(args, tmp_path, module=None)) as cli:
        # Its own session: not in the parent's process group, found as a descendant.
        cli.wait_until("the analysis script started", lambda procs: bool(procs))
        assert any(cli.tmpdir.glob("glia-analysis-*"))
        cli.kill()
        # Inside the boundary the scratch directory is a mount point the child cannot remove:
        # it empties it but for its marker, and the next temporary store reclaims the shell.
        cli.assert_nothing_left(stale_ok=boundary() is None)


# -- the pieces ----------------------------------------------------------------------------------
@pytest.mark.anyio
async def test_a_killed_launcher_takes_the_server_along(tmp_path: Path) -> None:
    async with nats_server(store_dir=tmp_path / "js") as server:
        launcher = (server.process.pid, _stat(server.process.pid)[2])  # type: ignore[index]
        nats = (server.pid, _stat(server.pid)[2])  # type: ignore[index]
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait()
        with anyio.fail_after(_SETTLE_S):
            while _alive(nats):
                await anyio.sleep(0.02)
        assert not _alive(launcher)


@pytest.mark.anyio
async def test_a_server_restarts_on_the_store_of_one_killed_outright(tmp_path: Path) -> None:
    store = tmp_path / "js"
    async with nats_server(store_dir=store) as server:
        async with NatsBus.connect(server.url) as bus:
            await bus.save_checkpoint("run-1", b"state")
        os.kill(server.pid, signal.SIGKILL)  # no chance to flush or remove its lock files
        server.process.wait()
    async with nats_server(store_dir=store) as server, NatsBus.connect(server.url) as bus:
        assert await bus.load_checkpoint("run-1") == b"state"


def test_stale_stores_are_reclaimed_and_live_ones_kept(tmp_path: Path) -> None:
    stale = tmp_path / "glia-nats-stale"
    stale.mkdir()
    (stale / MARKER).touch()
    (stale / "nats-server.log").write_text("left by a killed run")
    unmarked = tmp_path / "glia-nats-foreign"  # not made by Glia (or not locked yet): kept
    unmarked.mkdir()
    live = tmp_path / "glia-nats-live"
    live.mkdir()
    fd = lock_dir(live)
    try:
        assert reclaim("glia-nats-", tmp_path) == [stale]
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, unmarked.name])
    finally:
        os.close(fd)
    assert reclaim("glia-nats-", tmp_path) == [live]  # its lock is free now


def test_a_temp_store_is_locked_while_in_use_and_removed_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    with temp_store("glia-test-") as store:
        assert store.path.parent == tmp_path and (store.path / MARKER).exists()
        assert reclaim("glia-test-") == []  # locked by this process
    assert not store.path.exists()


# -- leaving a local cluster mid-run -------------------------------------------------------------
SLEEPER = (
    "import time\n"
    "from glia.policies import Router\n"
    "time.sleep(90)\n"
    "class Sleeper(Router):\n"
    "    def schedule(self, cluster):\n"
    "        return []\n"
)
_LEAVE_S = 20.0
"""Bound on leaving a local cluster whose worker is busy (its server and bus stop in a second
or two; running designs are not waited for)."""


class _Left(Exception):
    pass


class _Interrupted(BaseException):
    """Like pytest's ``Failed`` from a timeout signal, or ``KeyboardInterrupt``: not an
    ``Exception``."""


_SHARED = ("multiprocessing.forkserver", "multiprocessing.resource_tracker", "pymp-")
"""Processes multiprocessing starts once per process (and the reaper of their folder): they
serve every pool of this process and end with it (see glia._lifeline). A pool's processes,
forked by the fork server, share its command line but not its parent."""


def _ours(procs: set[Proc]) -> set[Proc]:
    """``procs`` but for this process's shared multiprocessing helpers."""
    me = os.getpid()
    return {
        p for p in procs
        if not ((st := _stat(p[0])) and st[1] == me and any(s in _cmdline(p[0]) for s in _SHARED))
    }  # fmt: skip


@pytest.mark.timeout(150)
@pytest.mark.parametrize("how", ["raise", "interrupt", "cancel"])
@pytest.mark.anyio
async def test_leaving_a_busy_local_cluster_stops_it_promptly_and_leaves_nothing(
    tmp_path: Path, how: str
) -> None:
    me = os.getpid()
    before = _descendants(me)
    cluster, workload = glia.experiment_config("glia-routing", duration_s=20)
    designs = [Experiment(cluster=cluster, workload=workload, seed=i, design_source=SLEEPER)
               for i in range(4)]  # fmt: skip
    limits = Limits(wall_s=600, cpu_s=600)
    seen: set[Proc] = set()
    left_at = 0.0
    error: BaseException | None = None
    try:
        with anyio.CancelScope() as scope:
            async with local_cluster(workers=2, store_dir=str(tmp_path / "js"), limits=limits) as c:
                run = await c.submit(designs)
                async with c.events(run.run_id) as events:
                    with anyio.fail_after(_START_S):
                        started = 0
                        async for event in events:
                            started += isinstance(event, ExperimentStarted)
                            if started == 2:
                                break
                        while len(_ours(_descendants(me) - before)) < 8:  # server, pools, sandboxes
                            await anyio.sleep(0.05)
                await anyio.sleep(1)  # the designs' sandboxes are running
                seen = _ours(_descendants(me) - before)
                left_at = time.monotonic()
                if how == "raise":
                    raise _Left
                if how == "interrupt":
                    raise _Interrupted
                scope.cancel()
                await anyio.sleep(600)
    except BaseException as e:  # checked below, once the time is taken
        error = e
    took = time.monotonic() - left_at
    assert took < _LEAVE_S, f"leaving the cluster took {took:.1f} s"
    expected = {"raise": _Left, "interrupt": _Interrupted}.get(how, type(None))
    assert type(error) is expected, f"leaving the cluster raised {error!r}"  # not in a group
    deadline = time.monotonic() + _SETTLE_S
    while (alive := {p for p in seen if _alive(p)}) and time.monotonic() < deadline:
        await anyio.sleep(0.05)
    assert not alive, f"still running after the cluster stopped: {_describe(alive)}"
