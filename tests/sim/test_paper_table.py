"""The Glia paper's routing result reproduces on the glia-routing preset (means over seeds)."""

from __future__ import annotations

import numpy as np
import pytest

import glia
from glia import Experiment, run_batch

SEEDS = range(5)
ROUTERS = ("random", "round-robin", "llq", "expert", "hra")


@pytest.mark.slow
def test_the_papers_ordering_and_hra_at_most_half_of_llq() -> None:
    cluster, workload = glia.experiment_config("glia-routing")
    exps = [
        Experiment(cluster=cluster, workload=workload, seed=s, router=r)
        for r in ROUTERS
        for s in SEEDS
    ]
    results = run_batch(exps, jobs=2)
    mean = {
        r: float(np.mean([res.summary.mean_e2e_s for res in results if res.router == r]))
        for r in ROUTERS
    }
    # Paper (mean E2E, s): random 65.5, round-robin 63.4, LLQ 54.6, expert ~25.6, HRA 24.1.
    assert mean["random"] > mean["llq"]
    assert mean["round-robin"] > mean["llq"]
    assert mean["expert"] < 0.6 * mean["llq"]
    assert mean["hra"] <= 0.5 * mean["llq"]
