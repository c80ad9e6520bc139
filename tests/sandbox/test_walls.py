"""Each wall of the sandbox, tried by a design as an attacker would, with the friendly Python
layer (static rules, import allow-list, audit hook) switched off first (see ``ESCAPE_KIT``):
what holds is the operating system and the protocol, and every attempt ends as a clean
:class:`DesignFailure` while the caller runs on."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

import glia
from glia.sandbox import Limits, _boundary, boundary

from ._designs import LIMITS, design, escape, failure, run

pytestmark = pytest.mark.skipif(boundary() is not None, reason=f"no OS sandbox: {boundary()}")

REFUSED = (
    "the design tried an operation the sandbox refuses while loading (PermissionError: [Errno 1] "
    "Operation not permitted{}): a design has no files, network, processes or signals"
)


def _children() -> list[int]:
    """Processes whose parent is this one."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid():
                out.append(int(entry.name))
    return out


def test_the_escape_kit_runs_when_it_attacks_nothing() -> None:
    assert isinstance(run(escape("x = os.getpid()")), glia.SimResult)


@pytest.mark.parametrize(
    ("code", "detail"),
    [
        ("os.fork()", ""),
        ("imp('subprocess').run(['/usr/bin/true'])", ""),  # _posixsubprocess.fork_exec
        ("imp('_posixsubprocess').fork_exec(*([None] * 23))", None),
        ("os.posix_spawn('/usr/bin/true', ['true'], {})", ": '/usr/bin/true'"),
        ("os.execv('/usr/bin/true', ['true'])", ""),
    ],
)
def test_no_process_can_be_started(code: str, detail: str | None) -> None:
    before = _children()
    f = failure(escape(code))
    if detail is None:  # wrong arguments: refused before any system call, still no process
        assert f.kind in ("exception", "forbidden")
    else:
        assert (f.kind, f.message) == ("forbidden", REFUSED.format(detail))
    assert _children() == before  # nothing left behind


def test_native_code_is_refused() -> None:
    f = failure(escape("imp('ctypes').CDLL(None).fork()"))
    assert f.kind == "forbidden"
    assert f.message == "ctypes.dlopen is not allowed: a design may not load native code"


def test_no_socket_can_be_opened() -> None:
    f = failure(escape("imp('socket').socket()"))
    assert f.kind == "forbidden"
    assert f.message == "socket.__new__ is not allowed: a design has no network access"


def inside(code: str) -> str:
    """What ``code`` prints, run inside the boundary and seccomp filter with no audit hook
    at all (the kernel's walls alone)."""
    python, _ = _boundary._python()
    seal = (
        "import sys; sys.path.insert(0, '/glia/lib'); from glia.main import _seal; "
        f"_seal(bytes.fromhex({_boundary.seccomp_filter().hex()!r}))\n"
    )
    argv = [*_boundary._file_system(), "--", python, "-I", "-S", "-c", seal + code]
    done = subprocess.run(argv, capture_output=True, env={}, timeout=60, check=False)
    return (done.stdout + done.stderr).decode().strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("code", "refused"),
    [
        ("import socket; socket.socket()", "PermissionError: [Errno 1] Operation not permitted"),
        (
            "import socket; socket.socketpair()",
            "PermissionError: [Errno 1] Operation not permitted",
        ),
        ("import ctypes; print(ctypes.CDLL(None).fork())", "-1"),
        ("import ctypes; print(ctypes.CDLL(None).syscall(57))", "-1"),  # raw fork
        ("import ctypes; print(ctypes.CDLL(None).kill(1, 19))", "-1"),
        (
            "import os; os.execv('/usr/bin/true', ['true'])",
            "PermissionError: [Errno 1] Operation not permitted",
        ),
        (
            "import os; print(sorted(os.listdir('/')))",
            "['bin', 'dev', 'glia', 'lib', 'lib64', 'root', 'sbin', 'usr', 'work']",
        ),
        ("import os; print(os.getuid(), os.getpid() < 10)", "65534 True"),
    ],
)
def test_the_kernel_refuses_without_the_audit_hook(code: str, refused: str) -> None:
    assert inside(code) == refused


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (
            "os.open('/work/made', os.O_CREAT | os.O_WRONLY)",
            "(OSError: [Errno 30] Read-only file system: '/work/made')",
        ),
        ("os.mkfifo('/dev/fifo')", "(PermissionError: [Errno 1] Operation not permitted)"),
    ],
)
def test_no_file_can_be_created(code: str, message: str) -> None:
    f = failure(escape(code))
    assert f.kind == "forbidden"
    assert message in f.message


def test_files_outside_are_neither_truncated_nor_read(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    f = failure(escape(f"os.open({str(victim)!r}, os.O_RDONLY | os.O_TRUNC)"))
    assert f.kind == "exception"
    assert "No such file or directory" in f.message
    assert victim.read_text() == "keep me"
    for path in ("/etc/passwd", "/proc/self/environ", "/glia/lib/../../proc/self/environ",
                 "/glia/lib/glia/../../../../etc/passwd"):  # fmt: skip
        f = failure(escape(f"os.open({path!r}, os.O_RDONLY)"))
        assert f.message.startswith("the design raised FileNotFoundError while loading")


def test_the_file_system_holds_nothing_of_glia_but_the_design_side(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    f = failure(escape("raise RuntimeError(repr(sorted(os.listdir('/'))))"))
    assert "'etc'" not in f.message and "'proc'" not in f.message
    f = failure(escape("raise RuntimeError(repr(sorted(os.listdir('/glia/lib/glia'))))"))
    assert "sim" not in f.message and "'policies.py'" in f.message
    walk = "raise RuntimeError(repr([n for _, _, fs in os.walk('/') for n in fs]))"
    f = failure(escape(walk))
    assert "design.py" not in f.message  # a listing it got ...
    for name in glia.sim.builtin_traces():  # ... holds no trace
        assert name not in f.message


def test_the_environment_and_proc_are_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLIA_TEST_SECRET", "sk-do-not-leak")
    f = failure(
        escape("raise RuntimeError(repr(dict(os.environ)) + repr(os.path.exists('/proc')))")
    )
    assert f.message == "the design raised RuntimeError while loading: {}False"


@pytest.mark.parametrize("target", ["1", "os.getppid()", f"{os.getpid()}", "0", "-1"])
def test_no_signal_reaches_another_process(target: str) -> None:
    f = failure(escape(f"os.kill({target}, {int(signal.SIGSTOP)})"))
    assert (f.kind, f.message) == ("forbidden", REFUSED.format(""))


def test_the_simulator_cannot_be_imported() -> None:
    f = failure(design("import glia.sim\n"))
    assert f.kind == "import"
    assert f.message == (
        "import of 'glia.sim' is not allowed: a design runs apart from the simulator and may "
        "import glia.policies (Router, ReplicaScheduler, Autoscaler) and glia.views"
    )
    for name in ("glia.sim", "glia.api", "glia.experiment"):
        f = failure(escape(f"imp({name!r})"))
        assert f.message == (
            f"the design raised ModuleNotFoundError while loading: No module named {name!r}"
        )


def test_garbage_on_the_channel_is_a_protocol_failure() -> None:
    pickle = (  # a pickle that would run a shell command in whoever unpickles it
        b"cos\nsystem\n(S'touch /tmp/glia-pwned'\ntR."
    )
    for payload in (b"garbage!" * 4, len(pickle).to_bytes(4, "big") + pickle):
        f = failure(escape(f"os.write(int(sys.argv[1]), {payload!r})"))
        assert f.kind == "protocol"
        assert f.message.startswith("the design's process sent a")
        assert f.message.endswith(
            ": designs talk to the simulator only through the policy methods they implement"
        )
    assert not Path("/tmp/glia-pwned").exists()


def test_an_oversized_message_is_refused_without_reading_it() -> None:
    f = failure(escape("os.write(int(sys.argv[1]), (1 << 30).to_bytes(4, 'big'))"))
    assert f.kind == "protocol"
    assert f.message.startswith(
        "the design's process sent a message of 1073741824 bytes (at most 4194304 are accepted)"
    )


def test_a_forged_result_cannot_replace_the_simulators() -> None:
    # The design answers its first call with a well-formed message of another kind (a report
    # of its own), then with its real decisions: the simulator takes only what it asked for.
    forged = """
        _proto = sys.modules["glia.protocol"]
        _wire = imp("msgspec.msgpack").encode(_proto.Scaled(count=1))
        os.write(int(sys.argv[1]), len(_wire).to_bytes(4, "big") + _wire)
    """
    f = failure(escape(forged))
    assert f.kind == "protocol"
    assert f.message.startswith("the design's process sent a Scaled message where a Loaded was due")


def test_closing_the_channel_or_exiting_is_reported() -> None:
    f = failure(escape("operator.attrgetter('_exit')(os)(0)"))
    assert f.kind == "protocol"
    assert f.message.startswith("the design's process ended without reporting (exit code 0)")


def test_cpu_time_is_limited_and_reported_as_cpu() -> None:
    f = failure(design("", "while True:\n    pass"), Limits(wall_s=20.0, cpu_s=1.0))
    assert f.kind == "cpu"
    assert f.message == (
        "router 'Hostile' used up its CPU time at t=0.000s: look for an endless loop, or make "
        "each call cheaper"
    )
    # Inside one long native call the soft limit's signal cannot be handled: the hard limit.
    busy = "x = [numpy.sort(numpy.ones(10**7)) for _ in range(10**6)]"
    f = failure(design("import numpy\n", busy), Limits(wall_s=20.0, cpu_s=1.0))
    assert f.kind == "cpu"


def test_a_design_that_stops_answering_times_out() -> None:
    f = failure(escape("import time\ntime.sleep(60)"), Limits(wall_s=2.0, cpu_s=3.0))
    assert f.kind == "timeout"
    assert f.message == (
        "the design's simulation did not finish within 2 s: look for an endless loop, or make "
        "each call cheaper"
    )


def test_a_huge_failure_message_is_capped() -> None:
    f = failure(design("", "raise ValueError('x' * 5_000_000)"))
    assert f.kind == "exception"
    assert len(f.message) < 2100 and f.message.endswith("more characters cut]")
    assert len(f.traceback) < 4100


def test_limits_are_those_given() -> None:
    assert LIMITS.trusted is False


ORACLE = '''
import operator, random
from glia.policies import Router

_sys = operator.attrgetter("__init__.__globals__")(random.Random)["_os"].sys
gc = operator.attrgetter("_gcd_import")(_sys.modules["_frozen_importlib"])("gc")

def _peek(objects):
    """Every route to hidden state the attacks on the old sandbox used."""
    found = {}
    for obj in objects:
        for attr in ("_output", "output", "num_decode_tokens", "remaining", "_r", "_queue"):
            try:
                found[attr] = operator.attrgetter(attr)(obj)
            except Exception:
                pass
        try:
            found["format"] = "{0._r.queue}".format(obj)
        except Exception:
            pass
    for frame_route in ("f_back.f_back.f_locals",):
        try:
            found["frame"] = operator.attrgetter("gi_frame")(None)
        except Exception:
            pass
    try:
        builtins = operator.attrgetter("__init__.__globals__")(Router)["__builtins__"]
        found["sim"] = builtins["__import__"]("glia.sim")
    except Exception:
        pass
    for o in gc.get_objects():
        if type(o).__name__ in ("Job", "Trace", "Replica", "RequestTable"):
            found["gc"] = o
    return found

class Oracle(Router):
    calls = 0

    def schedule(self, cluster):
        self.calls += 1
        if self.calls % 500 == 1 and _peek([cluster, self, *cluster.replicas, *cluster.queue]):
            return [(len(cluster.replicas) + 7, r) for r in cluster.queue]  # caught: fail loudly
        out = []
        load = [r.num_outstanding for r in cluster.replicas]
        for req in cluster.queue:
            best = min(range(len(load)), key=load.__getitem__)
            out.append((best, req))
            load[best] += 1
        return out
'''


def test_an_oracle_finds_nothing_and_does_no_better_than_hra() -> None:
    cluster, workload = glia.experiment_config("glia-routing", duration_s=300.0)
    oracle, honest = 0.0, 0.0
    for seed in (0, 1, 2):
        out = glia.sandbox.run_sandboxed(ORACLE, cluster, workload, seed, LIMITS)
        assert isinstance(out, glia.SimResult), out  # no route led anywhere ...
        llq = glia.simulate("llq", cluster=cluster, workload=workload, seed=seed)
        assert out.summary.mean_e2e_s == llq.summary.mean_e2e_s  # ... it routed as LLQ
        hra = glia.simulate("hra", cluster=cluster, workload=workload, seed=seed)
        oracle, honest = oracle + out.summary.mean_e2e_s, honest + hra.summary.mean_e2e_s
    assert oracle >= honest
