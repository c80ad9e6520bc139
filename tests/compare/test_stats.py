"""The comparison statistics are exact on hand-checkable inputs and keep their invariants."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from glia._errors import InputError
from glia.compare import bootstrap_ci, sims_to_reach


def test_constant_scores_give_a_point_interval() -> None:
    assert bootstrap_ci([2.0, 2.0, 2.0]) == (2.0, 2.0)


def test_single_repeat_is_its_own_interval() -> None:
    assert bootstrap_ci([3.5]) == (3.5, 3.5)


def test_empty_scores_are_refused() -> None:
    msg = r"^bootstrap_ci needs at least one score; got none \(run repeats >= 1\)$"
    with pytest.raises(InputError, match=msg):
        bootstrap_ci([])


def test_sims_to_reach_counts_best_so_far() -> None:
    assert sims_to_reach([1.0, 5.0, 3.0, 9.0], 4.5) == 2
    assert sims_to_reach([1.0, 5.0, 3.0, 9.0], 9.0) == 4
    assert sims_to_reach([1.0, 2.0], 3.0) is None


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@given(st.lists(finite, min_size=1, max_size=20))
def test_ci_is_ordered_and_within_the_data(scores: list[float]) -> None:
    lo, hi = bootstrap_ci(scores, resamples=200)
    assert min(scores) - 1e-6 <= lo <= hi <= max(scores) + 1e-6


@given(st.lists(finite, min_size=1, max_size=20), st.floats(0.0, 1.0))
def test_t90_never_after_t95(curve: list[float], frac: float) -> None:
    best = max(curve)
    lo_target = min(curve) + 0.90 * frac * (best - min(curve))
    hi_target = min(curve) + 0.95 * frac * (best - min(curve))
    t90, t95 = sims_to_reach(curve, lo_target), sims_to_reach(curve, hi_target)
    assert t90 is not None and t95 is not None and t90 <= t95
