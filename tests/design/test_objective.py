"""Routing objectives: exact costs on hand-made summaries, the spec syntax and its errors."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from glia import InputError
from glia.sim import Summary
from glia.tasks import ROUTING, Objective, parse_objective, pooled_mean_e2e_s


def _summary(n: int, mean: float, p99: float, slowdown: float) -> Summary:
    """A summary whose only meaningful fields are the ones an objective reads."""
    zero: dict[str, float | int] = {f: 0.0 for f in Summary.__struct_fields__}
    zero |= {"num_requests": n, "restarts": 0, "requests_restarted": 0, "scale_events": 0}
    zero |= {"requests_capped": 0, "mean_e2e_s": mean, "p99_e2e_s": p99, "mean_slowdown": slowdown}
    return msgspec.convert(zero, Summary)


# Two seeds, hand-made: 100 requests (mean 2 s, p99 10 s, slowdown 1.5) and 300 requests
# (mean 4 s, p99 30 s, slowdown 2.5). Pooled: mean (200 + 1200) / 400 = 3.5 s,
# p99 (1000 + 9000) / 400 = 25 s, slowdown (150 + 750) / 400 = 2.25.
A = _summary(100, 2.0, 10.0, 1.5)
B = _summary(300, 4.0, 30.0, 2.5)


@pytest.mark.parametrize(
    ("spec", "one", "pooled"),
    [
        ("mean", 2.0, 3.5),
        ("p99", 10.0, 25.0),
        ("slowdown", 1.5, 2.25),
        ("mean+p99", 12.0, 28.5),
        ("mean+p99:1,0.5", 7.0, 16.0),
        ("p99+slowdown:0.25,4", 8.5, 15.25),
    ],
)
def test_costs_are_exact_on_hand_made_summaries(spec: str, one: float, pooled: float) -> None:
    goal = parse_objective(spec)
    assert goal.cost(A) == one
    assert goal.pooled_cost([A, B]) == pooled
    task = ROUTING.with_objective(goal)
    assert task.cost(A) == one
    assert task.pooled_cost([A, B]) == pooled


def test_the_default_is_the_paper_mean_and_bit_identical() -> None:
    assert parse_objective("mean") == Objective()
    assert ROUTING.goal == Objective()
    summaries = [_summary(7, 1.0 / 3.0, 9.0, 1.0), _summary(11, 2.0 / 7.0, 5.0, 1.0)]
    assert ROUTING.pooled_cost(summaries) == pooled_mean_e2e_s(summaries)
    assert ROUTING.cost_is_latency
    assert ROUTING.with_objective(Objective()) == ROUTING


def test_a_tail_objective_reaches_the_brief_and_reports() -> None:
    task = ROUTING.with_objective(parse_objective("mean+p99:1,0.5"))
    assert task.objective == "minimise 1 x mean E2E (s) + 0.5 x p99 E2E (s)"
    assert not task.cost_is_latency  # reports show the cost, not the mean E2E, as the objective
    brief = task.brief(
        preset="p", description="d", budget=5, seeds=[1], baselines={"llq": 12.5},
        previous="", slo=None,
    )  # fmt: skip
    assert "Minimise 1 x mean E2E (s) + 0.5 x p99 E2E (s). The tail counts" in brief
    assert "Baseline routers\non the same seeds (cost):\n  - llq: 12.50 s\n" in brief
    slow = ROUTING.with_objective(parse_objective("slowdown"))
    assert slow.objective == (
        "minimise the mean slowdown (each request's E2E over its latency alone on an idle replica)"
    )
    assert "  - llq: 3.00\n" in slow.brief(
        preset="p", description="d", budget=5, seeds=[1], baselines={"llq": 3.0},
        previous="", slo=None,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "p95",
            "unknown objective term 'p95' in 'p95': join mean, p99 and slowdown with '+' "
            "(e.g. mean+p99:1,0.5)",
        ),
        (
            "mean+",
            "unknown objective term '' in 'mean+': join mean, p99 and slowdown with '+' "
            "(e.g. mean+p99:1,0.5)",
        ),
        (
            "mean+mean",
            "objective 'mean+mean' names a term twice: name each term once (e.g. mean+p99:1,0.5)",
        ),
        (
            "mean+p99:1",
            "objective 'mean+p99:1' has 1 weight(s) for 2 term(s): give one weight per term, in "
            "order (e.g. mean+p99:1,0.5)",
        ),
        (
            "mean+p99:1,x",
            "bad weight 'x' in objective 'mean+p99:1,x': weights are positive finite numbers "
            "(e.g. mean+p99:1,0.5)",
        ),
        (
            "mean+p99:1,-2",
            "bad weight '-2' in objective 'mean+p99:1,-2': weights are positive finite numbers "
            "(e.g. mean+p99:1,0.5)",
        ),
        (
            "p99:nan",
            "bad weight 'nan' in objective 'p99:nan': weights are positive finite numbers "
            "(e.g. mean+p99:1,0.5)",
        ),
        (
            "p99:inf",
            "bad weight 'inf' in objective 'p99:inf': weights are positive finite numbers "
            "(e.g. mean+p99:1,0.5)",
        ),
    ],
)
def test_bad_specs_say_what_is_wrong_and_how_to_fix_it(spec: str, message: str) -> None:
    with pytest.raises(InputError) as err:
        parse_objective(spec)
    assert str(err.value) == message


_WEIGHT = st.floats(min_value=1e-3, max_value=1e3, allow_nan=False).map(lambda w: float(f"{w:g}"))


@given(
    st.lists(st.sampled_from(["mean", "p99", "slowdown"]), min_size=1, max_size=3, unique=True),
    st.lists(_WEIGHT, min_size=3, max_size=3),
)
def test_spec_round_trips(terms: list[str], weights: list[float]) -> None:
    spec = "+".join(terms) + ":" + ",".join(f"{w:g}" for w in weights[: len(terms)])
    goal = parse_objective(spec)
    assert parse_objective(goal.spec) == goal
    assert sorted(t for t in ("mean", "p99", "slowdown") if getattr(goal, t) > 0) == sorted(terms)


@given(
    st.floats(0.0, 1e4), st.floats(0.0, 1e4), st.floats(1.0, 1e3),
    st.floats(0.0, 10.0), st.floats(0.0, 10.0),
)  # fmt: skip
def test_a_weighted_cost_is_monotone_in_the_tail(
    mean: float, p99: float, slowdown: float, w_mean: float, w_p99: float
) -> None:
    goal = Objective(mean=w_mean, p99=w_p99, slowdown=0.0)
    worse_tail = _summary(10, mean, p99 + 1.0, slowdown)
    assert goal.cost(worse_tail) >= goal.cost(_summary(10, mean, p99, slowdown))
