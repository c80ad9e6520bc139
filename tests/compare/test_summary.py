"""A comparison's statistics from hand-made run results: exact, hand-checkable CIs and T90."""

from __future__ import annotations

import pytest

from glia._errors import InputError
from glia.compare import RunResult, bootstrap_ci, sims_to_reach_cost, summarize
from glia.compare._compare import paired


def run(method: str, repeat: int, curve: list[float | None], score: float | None, *,
        sims: int = 4, valid: int = 4) -> RunResult:  # fmt: skip
    return RunResult(
        method=method, repeat=repeat, run_dir=f"runs/{method}/r{repeat:02d}/x",
        status="finished", stop_reason="search finished", budget=len(curve), simulations=sims,
        valid=valid, curve=curve, reference="llq", score=score, tokens=10, usd=0.5, cpu_s=2.0,
        mean_e2e_s=score, p99_e2e_s=None if score is None else 10 * score,
    )  # fmt: skip


RUNS = [
    # method a: median curve [1.0, 0.8, 0.5, 0.5]
    run("a", 0, [1.0, 0.8, 0.5, 0.45], 0.4),
    run("a", 1, [1.0, 0.6, 0.5, 0.5], 0.6),
    run("a", 2, [0.9, 0.9, 0.9, 0.5], 0.5),
    # method b: nothing valid yet in two repeats at first; median [None, 0.8, 0.6, 0.46]
    run("b", 0, [None, 0.7, 0.7, 0.46], 0.5, valid=3),
    run("b", 1, [None, None, 0.6, 0.46], 0.5, valid=2),
    run("b", 2, [0.8, 0.8, 0.46, 0.46], 0.5),
]


def test_t90_and_t95_are_read_off_the_median_curve() -> None:
    summaries, best = summarize(RUNS, ["a", "b"], budget=4)
    a, b = summaries
    assert best == 0.45  # the best final search cost of any run
    # each repeat's target: the best any method reached in it (repeat 0: 0.45, so T90 aims at
    # 0.45 / 0.9 = 0.5 and T95 at 0.4737; repeats 1 and 2: 0.46, T90 0.5111, T95 0.4842);
    # a method's T is when at least 2 of its 3 repeats got there. a: T90 per repeat (3, 3, 4),
    # T95 (4, never, never); b: T90 (4, 4, 3), T95 (4, 4, 3)
    assert a.curve_median == [1.0, 0.8, 0.5, 0.5]
    assert (a.t90_sims, a.t95_sims) == (3, None)
    assert b.curve_median == [None, 0.8, 0.6, 0.46]
    assert (b.t90_sims, b.t95_sims) == (4, 4)
    assert b.curve_lo[:2] == [None, None]  # no band while a repeat has nothing valid


def test_each_repeat_is_judged_against_its_own_best() -> None:
    # repeat 1 is a workload where nothing gains much: the best there is 0.9, not 0.5
    runs = [run("x", 0, [0.9, 0.5], 0.5), run("x", 1, [0.9, 0.9], 0.9),
            run("y", 0, [0.5, 0.5], 0.5), run("y", 1, [0.95, 0.9], 0.9)]  # fmt: skip
    (x, y), best = summarize(runs, ["x", "y"], budget=2)
    assert best == 0.5
    assert (x.t90_sims, y.t90_sims) == (1, 1)  # x: (2, 1) by repeat, y: (1, 2)
    assert (x.t95_sims, y.t95_sims) == (1, 1)


def test_scores_ci_valid_rate_and_ledger() -> None:
    (a, b), _ = summarize(RUNS, ["a", "b"], budget=4)
    # bootstrap means of (0.4, 0.6, 0.5) over 3 draws: the 5 % and 95 % quantiles of a
    # distribution on {0.4, 0.433, ..., 0.6} where each end has probability 1/27 < 5 %
    assert a.score_mean == pytest.approx(0.5)
    assert a.ci90 is not None and a.ci90[0] == pytest.approx(13.0 / 30.0)
    assert a.ci90[1] == pytest.approx(17.0 / 30.0)
    assert b.ci90 == (0.5, 0.5)
    assert (a.valid_rate, b.valid_rate) == (1.0, 9 / 12)
    assert (b.simulations, b.tokens, b.usd, b.cpu_s) == (12, 30, 1.5, 6.0)
    assert b.public()["ci90"] == [0.5, 0.5]


def test_two_values_give_their_own_ends() -> None:
    # means of 2 draws from (0.4, 0.6): 0.4 and 0.6 each with probability 1/4 > 5 %
    assert bootstrap_ci([0.4, 0.6]) == (0.4, 0.6)
    assert bootstrap_ci([0.4, 0.6], statistic="median") == (0.4, 0.6)


def test_a_run_without_a_valid_design_has_no_score() -> None:
    runs = [
        run("c", 0, [None, None], None, sims=2, valid=0),
        run("c", 1, [0.7, 0.7], 0.7, sims=2, valid=2),
    ]
    (c,), best = summarize(runs, ["c"], budget=2)
    assert (c.repeats, c.scored, c.score_mean, c.ci90) == (2, 1, 0.7, (0.7, 0.7))
    assert best == 0.7 and c.curve_median == [None, None]  # half the repeats have nothing
    assert c.valid_rate == 0.5


def test_sims_to_reach_cost() -> None:
    assert sims_to_reach_cost([None, 1.0, 0.6, 0.5], 0.45, 0.9) == 4
    assert sims_to_reach_cost([None, 1.0], 0.45, 0.9) is None
    with pytest.raises(InputError, match=r"^fraction must be in \(0, 1\]; got 0 \(use e.g. 0.9\)$"):
        sims_to_reach_cost([1.0], 1.0, 0)


def test_paired_differences_by_repeat() -> None:
    # a - b per repeat: 0.4 - 0.5, 0.6 - 0.5, 0.5 - 0.5 = (-0.1, 0.1, 0)
    mean, ci, better, n = paired(RUNS, "a", "b") or (None, None, None, None)
    assert mean == pytest.approx(0.0) and (better, n) == (1, 3)
    assert ci == pytest.approx((-1 / 15, 1 / 15))  # means of 3 draws; each end 1/27 < 5 %
    assert paired(RUNS, "a", "nope") is None
