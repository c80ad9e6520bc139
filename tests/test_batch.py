"""Experiments as data and the local process-pool batch runner."""

from __future__ import annotations

import multiprocessing
import pickle
import time
from pathlib import Path

import msgspec
import numpy as np
import pytest

import glia
from glia import Experiment, run_batch, run_experiment

DESIGN = """
from glia.policies import Router

class FirstReplica(Router):
    def schedule(self, cluster):
        return [(0, r) for r in cluster.queue]
"""


def _experiments() -> list[Experiment]:
    cluster, workload = glia.experiment_config("glia-routing", duration_s=40.0)
    return [
        Experiment(cluster=cluster, workload=workload, seed=seed, router=router)
        for seed in (0, 1)
        for router in ("llq", "hra", "round-robin")
    ]


def test_batch_on_processes_matches_serial_runs_in_order() -> None:
    exps = _experiments()
    serial = [run_experiment(e) for e in exps]
    parallel = run_batch(exps, jobs=2)
    assert [r.router for r in parallel] == [e.router for e in exps]
    assert [r.seed for r in parallel] == [e.seed for e in exps]
    for a, b in zip(serial, parallel, strict=True):
        assert np.array_equal(a.requests.completed_at, b.requests.completed_at)


def test_key_is_a_content_hash() -> None:
    a, b = _experiments()[:2]
    assert a.key() == Experiment(**{f: getattr(a, f) for f in a.__struct_fields__}).key()
    assert a.key() != b.key()
    assert len(a.key()) == 64


def test_design_source_runs_in_the_worker() -> None:
    cluster, workload = glia.experiment_config("glia-routing", duration_s=20.0)
    exp = Experiment(cluster=cluster, workload=workload, design_source=DESIGN)
    (result,) = run_batch([exp], jobs=1)
    assert set(result.requests.replica_id.tolist()) == {0}
    assert result.router == "FirstReplica"


def test_errors_cross_process_boundaries_intact() -> None:
    err = glia.TraceError("t.csv", 3, "num_decode_tokens is 0: token counts must be positive")
    back = pickle.loads(pickle.dumps(err))
    assert str(back) == "t.csv row 3: num_decode_tokens is 0: token counts must be positive"
    cluster, workload = glia.experiment_config("glia-routing", duration_s=20.0)
    bad = Experiment(cluster=cluster, workload=workload, design_source="x = (")
    with pytest.raises(glia.DesignFailed) as failed:
        run_batch([bad, bad], jobs=2)
    assert failed.value.failure.kind == "syntax"
    assert failed.value.failure.message == "design.py:1: '(' was never closed"


@pytest.mark.timeout(120)
def test_a_failure_stops_the_batch_at_once_without_waiting_for_running_experiments() -> None:
    cluster, workload = glia.experiment_config("glia-routing", duration_s=20.0)
    sleeper = "import time\ntime.sleep(50)\n" + DESIGN  # under the 60 s wall limit
    bad = Experiment(cluster=cluster, workload=workload, design_source="x = (")
    slow = [Experiment(cluster=cluster, workload=workload, seed=i, design_source=sleeper)
            for i in range(3)]  # fmt: skip
    started = time.monotonic()
    with pytest.raises(glia.DesignFailed):
        run_batch([bad, *slow], jobs=2)
    assert time.monotonic() - started < 20  # the running sleeper was stopped, not awaited
    assert multiprocessing.active_children() == []


def test_an_experiments_router_is_a_baseline_name_never_a_file_it_would_run(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "ran"
    design = tmp_path / "evil.py"
    design.write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('x')\n" + DESIGN,
        encoding="utf-8",
    )
    cluster, workload = glia.experiment_config("glia-routing", duration_s=20.0)
    exp = Experiment(cluster=cluster, workload=workload, router=str(design))
    with pytest.raises(glia.InputError) as err:
        run_experiment(exp)
    assert str(err.value).startswith(f"unknown router {str(design)!r}: choose one of ")
    assert str(err.value).endswith("; give a design file with --design (or as design_source)")
    assert not marker.exists()
    assert run_experiment(msgspec.structs.replace(exp, router="LLQ")).router == "llq"
