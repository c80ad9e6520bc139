"""A design run's seeds come from a per-run secret and stay out of run.json until it ends."""

from __future__ import annotations

from glia._design import secret_seeds
from glia.actors._coordinator import _without_seeds
from glia.report import Budget, RunRecord, Trial
from glia.tasks import TASKS


def test_seeds_are_fresh_large_and_distinct_per_run() -> None:
    a, b = secret_seeds(10), secret_seeds(10)
    assert a != b
    assert len(set(a)) == 10
    assert all(0 <= s < 2**63 for s in a + b)
    assert not set(a) & set(range(1000))  # not the small seeds a design could guess


def test_run_json_shows_no_seed_while_the_run_goes_on() -> None:
    seeds = list(secret_seeds(3))
    trial = Trial(index=0, context=0, design_path="", seeds=seeds, note="", at=0.0)
    record = RunRecord(
        run_id="r", task="routing", preset="glia-routing", model="offline",
        supervisor_model="offline", contexts=1, sequential=False, budget=Budget(),
        search_seeds=seeds, started_at=0.0, trials=[trial],
    )  # fmt: skip
    hidden = _without_seeds(record)
    assert hidden.search_seeds == [] and hidden.trials[0].seeds == []
    assert record.search_seeds == seeds  # the record itself (checkpointed) keeps them


def test_the_brief_does_not_tell_secret_seeds() -> None:
    brief = TASKS["routing"].brief(
        preset="glia-routing", description="d", budget=3, seeds=[], baselines={}, previous="",
        slo=None,
    )  # fmt: skip
    assert "(the run's secret search seeds)" in " ".join(brief.split())
