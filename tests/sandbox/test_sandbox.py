"""Hostile designs: each ends as a clear DesignFailure within its limits; good ones still run."""

from __future__ import annotations

import re
import shutil
import sys
import textwrap
from pathlib import Path

import anyio
import msgspec
import pytest

import glia
from glia import Client, Experiment
from glia.bus import ExperimentFailure, ExperimentResult, MemoryBus
from glia.runtime import SimWorker
from glia.sandbox import DesignFailure, _boundary, check_design, run_sandboxed

from ._designs import CLUSTER, LIMITS, WORKLOAD, design, failure, run


def test_a_good_design_gives_exactly_the_in_process_result() -> None:
    out = run(design(""))
    assert isinstance(out, glia.SimResult)
    assert out.router == "Hostile"
    direct = glia.simulate("round-robin", duration_s=20.0, num_replicas=1)  # sanity: it ran
    assert direct.summary.num_requests == out.summary.num_requests


def test_infinite_loop_in_schedule() -> None:
    f = failure(design("", "while True:\n    pass"))
    assert f.kind == "cpu"
    assert f.message.startswith("router 'Hostile' used up its CPU time at t=0.000s")


def test_infinite_loop_at_import() -> None:
    assert failure(design("while True:\n    pass\n")).kind == "cpu"


def test_a_10_gb_allocation() -> None:
    f = failure(design("import numpy\nx = numpy.ones(10**10 // 8)\n"))
    assert f.kind == "memory"


@pytest.mark.parametrize(
    ("module", "use"),
    [
        ("os", "os.fork()"),
        ("os", "os.system('true')"),
        ("subprocess", "subprocess.run(['true'])"),
        ("socket", "socket.socket()"),
        ("ctypes", "ctypes.CDLL(None)"),
        ("importlib", "importlib.import_module('os')"),
        ("sys", "sys.modules.clear()"),
        ("pathlib", "pathlib.Path('/tmp/x').write_text('x')"),
        ("builtins", "builtins.open('/etc/passwd')"),
    ],
)
def test_forbidden_modules(module: str, use: str) -> None:
    f = failure(design(f"import {module}\n{use}\n"))
    assert f.kind == "import"
    assert f.message.startswith(f"import of {module!r} is not allowed: a design may import abc,")
    assert f.traceback.splitlines()[1] == f"  design.py:2 in <module>: import {module}"


@pytest.mark.parametrize(
    ("code", "rule"),
    [
        ("open('/etc/passwd').read()", "line 5: 'open' is off limits to designs"),
        ("__import__('os').system('true')", "line 5: '__import__' is off limits to designs"),
        ("getattr(cluster, 'queue')", "line 5: 'getattr' is off limits to designs"),
        ("().__class__.__base__.__subclasses__()", "attribute '__class__' is off limits"),
        ("cluster.replicas[0]._r.queue", "private attribute '_r' of another object is off limits"),
        ("eval('1')", "line 5: 'eval' is off limits to designs"),
    ],
)
def test_introspection_and_dynamic_code_are_rejected_before_running(code: str, rule: str) -> None:
    source = design("", f"{code}\nreturn []")
    f = failure(source)
    assert f.kind == "forbidden"
    assert rule in f.message


def test_reading_files_through_numpy_is_refused_at_run_time() -> None:
    f = failure(design("import numpy\nnumpy.fromfile('/etc/passwd', dtype=numpy.uint8)\n"))
    assert f.kind == "forbidden"
    assert f.message == "open('/etc/passwd') is not allowed: a design has no file access"
    # ... however the path is spelled (the file is not in the sandbox anyway)
    f = failure(design("import numpy\nnumpy.fromfile('/usr/../etc/passwd', dtype=numpy.uint8)\n"))
    assert f.message == "open('/usr/../etc/passwd') is not allowed: a design has no file access"


def test_writing_a_file_through_numpy_is_refused() -> None:
    f = failure(design("import numpy\nnumpy.zeros(3).tofile('/tmp/glia-sandbox-escape')\n"))
    assert f.kind == "forbidden"
    assert "/tmp/glia-sandbox-escape" in f.message


def test_monkey_patching_the_simulator_cannot_fake_a_better_score() -> None:
    cheat = design("import glia.sim\nglia.sim.LatencyModel.iteration_time = lambda *a, **k: 1e-6\n")
    f = failure(cheat)
    assert f.kind == "import"
    assert f.message.startswith("import of 'glia.sim' is not allowed: a design runs apart")


def test_private_modules_cannot_be_imported() -> None:
    f = failure(design("import glia.sim._metrics\n"))
    assert f.kind == "import"
    assert f.message.startswith("import of 'glia.sim._metrics' is not allowed")
    f = failure(design("from glia import sim\n"))
    assert f.message.startswith("import of 'glia.sim' is not allowed")


@pytest.mark.parametrize("exc", ["SystemExit(3)", "KeyboardInterrupt()"])
def test_raising_exit_or_interrupt(exc: str) -> None:
    f = failure(design("", f"raise {exc}"))
    assert f.kind == "exception"
    assert f.message.startswith(f"router 'Hostile' raised {exc.split('(')[0]} at t=0.000s")
    assert f.traceback.splitlines()[-2] == f"  design.py:5 in schedule: raise {exc}"


def test_an_exception_points_at_the_designs_own_line() -> None:
    f = failure(design("", "x = 1\nreturn [(0, r) for r in cluster.queue][10 // (x - 1)]"))
    assert f.kind == "exception"
    assert f.message.startswith("router 'Hostile' raised ZeroDivisionError at t=0.000s")
    assert "design.py:6 in schedule" in f.traceback


def test_printing_megabytes_is_captured_and_truncated() -> None:
    out = failure(design("", "print('x' * 2_000_000)\nreturn 'garbage'"))
    assert out.kind == "invalid-decision"
    assert out.message.startswith("router 'Hostile' returned 'g' at t=0.000s")
    assert len(out.output) < 9_100
    assert out.output.endswith("more characters not kept]")


def test_returning_garbage() -> None:
    f = failure(design("", "return [(99, r) for r in cluster.queue]"))
    assert f.kind == "invalid-decision"
    assert "to replica 99" in f.message


def test_the_environment_is_empty() -> None:
    leak = design("", "import numpy\nprint(sorted(numpy.__dict__.get('_environ', {})))\nreturn []")
    assert failure(leak).kind == "forbidden"  # `__dict__` is introspection


def test_check_reports_the_router_or_what_is_wrong() -> None:
    assert check_design(design("")) == "Hostile"
    bad = check_design("import os\n")
    assert isinstance(bad, DesignFailure)
    assert bad.kind == "import"


def test_the_worker_keeps_serving_after_hostile_designs() -> None:
    hostile = [
        design("", "while True:\n    pass"),
        design("import os\n"),
        design("import numpy\nx = numpy.ones(10**10 // 8)\n"),
        design("", "raise SystemExit(1)"),
    ]
    base = Experiment(cluster=CLUSTER, workload=WORKLOAD, seed=0)
    exps = [msgspec.structs.replace(base, design_source=src) for src in hostile]
    exps.append(msgspec.structs.replace(base, router="llq"))

    async def main() -> list[object]:
        bus = MemoryBus()
        async with anyio.create_task_group() as tg:
            worker = SimWorker(bus, name="w", concurrency=2, limits=LIMITS)
            await tg.start(worker.run)
            client = Client(bus)
            results = await client.gather(await client.submit(exps), timeout=180)
            worker.drain()
        return list(results)

    results = anyio.run(main)
    kinds = [r.design.kind if isinstance(r, ExperimentFailure) and r.design else None
             for r in results]  # fmt: skip
    assert kinds[:4] == ["cpu", "import", "memory", "exception"]
    assert isinstance(results[4], ExperimentResult)


def test_a_failure_reports_what_was_completed_before_it() -> None:
    late = design("", "if cluster.now > 10:\n    return [(7, r) for r in cluster.queue]\n"
                      "return [(0, r) for r in cluster.queue]")  # fmt: skip
    f = failure(late)
    assert f.kind == "invalid-decision"
    assert f.partial is not None
    assert 0 < f.partial.num_requests < 150
    assert failure(design("", "return 'garbage'")).partial is None  # nothing completed yet


def test_lists_as_pairs_and_numpy_indices_are_accepted() -> None:
    out = run(design("import numpy\n", "return [[numpy.int64(0), r] for r in cluster.queue]"))
    assert isinstance(out, glia.SimResult)


def test_a_name_that_is_not_a_string_falls_back_to_the_class_name() -> None:
    source = design("").replace(
        "class Hostile(Router):\n", "class Hostile(Router):\n    name = 5\n"
    )
    out = run(source)
    assert isinstance(out, glia.SimResult)
    assert out.router == "Hostile"


def test_an_absurd_replica_count_is_clamped_like_any_other() -> None:
    source = (
        "from glia.policies import Autoscaler\n"
        "class Huge(Autoscaler):\n    interval_s = 5.0\n"
        "    def scale(self, load):\n        return 10**40\n"
    )
    cluster = msgspec.structs.replace(CLUSTER, num_replicas=4)
    out = run_sandboxed(source, cluster, WORKLOAD, 0, LIMITS, task="autoscaling", router="llq")
    assert isinstance(out, glia.SimResult), out

    class Huge(glia.policies.Autoscaler):
        interval_s = 5.0

        def scale(self, load: object) -> int:
            return 10**40

    direct = glia.sim.simulate(
        cluster, WORKLOAD, 0, glia.policies.resolve_router("llq"), autoscaler=Huge()
    )
    assert out.summary == msgspec.structs.replace(direct.summary, wall_s=out.summary.wall_s)


def test_the_design_sees_exactly_what_an_in_process_policy_sees() -> None:
    # The same router, in the sandbox and in process, reading every view field: same run.
    body = """
        def schedule(self, cluster):
            out = []
            for req in cluster.queue:
                best = min(
                    range(len(cluster.replicas)),
                    key=lambda i: (
                        cluster.replicas[i].num_allocated_blocks + cluster.replicas[i].num_queued
                        + sum(r.num_generated_tokens for r in cluster.replicas[i].running)
                        + cluster.replicas[i].cached_prefix(req), i),
                )
                out.append((best, req))
            return out
    """
    source = "from glia.policies import Router\nclass Reader(Router):\n" + textwrap.indent(
        textwrap.dedent(body), "    "
    )
    sandboxed = run(source)
    assert isinstance(sandboxed, glia.SimResult)
    direct = glia.simulate(glia.policies.load_design_source(source), duration_s=20.0)
    assert sandboxed.summary == msgspec.structs.replace(
        direct.summary, wall_s=sandboxed.summary.wall_s
    )


@pytest.mark.parametrize("task", ["scheduling", "autoscaling"])
def test_every_task_runs_exactly_as_in_process(task: str) -> None:
    t = glia.tasks.TASKS[task]
    _, source = t.example
    if task == "scheduling":  # read everything a scheduler can: order, victim, admitted
        source = (
            "from glia.policies import ReplicaScheduler\n"
            "class Picky(ReplicaScheduler):\n"
            "    skip_blocked = True\n"
            "    def setup(self, cluster, rng):\n"
            "        super().setup(cluster, rng)\n        self.seen = 0\n"
            "    def order(self, replica, now):\n"
            "        return sorted(replica.queue, key=lambda q: (q.num_prefill_tokens, q.id))\n"
            "    def admitted(self, replica, requests):\n        self.seen += len(requests)\n"
            "    def victim(self, replica, now):\n"
            "        return min(replica.running, key=lambda r: (r.num_generated_tokens,"
            " r.request.id)).request\n"
        )
    cluster, workload = glia.experiment_config(t.preset, duration_s=120.0)
    out = run_sandboxed(source, cluster, workload, 0, LIMITS, task=task)
    assert isinstance(out, glia.SimResult), out
    namespace: dict[str, object] = {}
    exec(source, namespace)
    cls = next(v for v in namespace.values() if isinstance(v, type) and issubclass(v, t.base)
               and v is not t.base)  # fmt: skip
    policies: dict[str, object] = {"router": glia.policies.resolve_router("llq"), t.slot: cls()}
    direct = glia.sim.simulate(cluster, workload, 0, **policies)  # type: ignore[arg-type]
    assert out.summary == msgspec.structs.replace(direct.summary, wall_s=out.summary.wall_s)


@pytest.mark.parametrize(("empty_calls", "duration_s"), [(1, 20.0), (127, 20.0), (300, 60.0)])
def test_routing_on_a_call_whose_answer_is_not_waited_for_is_still_refused(
    empty_calls: int, duration_s: float
) -> None:
    # Calls with an empty global queue are sent in batches and answered later: a pair returned
    # on one of them must still end the run, be it the first, the last of the run (127 on 20 s,
    # read at the end) or one past a full batch (300).
    late = design("seen = {'empty': 0, 'last': None}\n", f"""
        if not cluster.queue:
            seen['empty'] += 1
            if seen['empty'] == {empty_calls}:
                return [(0, seen['last'])]
        else:
            seen['last'] = cluster.queue[-1]
        return [(0, r) for r in cluster.queue]
    """)  # fmt: skip
    cluster, workload = glia.experiment_config("glia-routing", duration_s=duration_s)
    f = run_sandboxed(late, cluster, workload, 0, LIMITS)
    assert isinstance(f, DesignFailure), f
    assert f.kind == "invalid-decision"
    assert re.fullmatch(
        r"router 'Hostile' routed request \d+ at t=\d+\.\d{3}s, which is not in the global "
        r"queue: route only requests from cluster\.queue",
        f.message,
    ), f.message


def test_the_design_side_package_starts_from_bytecode() -> None:
    # The sandboxed interpreter cannot write bytecode (-B, read-only file system), so the
    # trusted side writes it beside the package; otherwise every start compiles it again.
    side = Path(_boundary.__file__).parent / "_side"
    shutil.rmtree(side / "__pycache__", ignore_errors=True)
    _boundary._compile_side.cache_clear()
    _boundary._file_system.cache_clear()  # it holds the libraries' paths, found once
    assert isinstance(run(design("")), glia.SimResult)
    tag = sys.implementation.cache_tag
    compiled = {p.name.split(".")[0] for p in (side / "__pycache__").glob(f"*.{tag}.pyc")}
    assert compiled >= {p.stem for p in side.glob("*.py")}
