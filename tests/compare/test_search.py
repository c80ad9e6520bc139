"""The offline catalogue searches draw from the offline designer's catalogue, reproducibly."""

from __future__ import annotations

import msgspec
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from glia.actors._search import CATALOGUE, catalogue, crossover, mutate, one_shot, uniform
from glia.policies import Mechanisms, ScalerMechanisms, SchedulerMechanisms

SPECS = st.sampled_from([Mechanisms, SchedulerMechanisms, ScalerMechanisms])


def changed(a: object, b: object) -> set[str]:
    da, db = msgspec.to_builtins(a), msgspec.to_builtins(b)
    return {k for k in da if da[k] != db[k]}


@given(SPECS, st.integers(0, 2**32))
def test_samples_stay_in_the_catalogue_and_repeat_with_the_seed(kind: type, seed: int) -> None:
    a = uniform(kind, np.random.default_rng(seed))
    assert a == uniform(kind, np.random.default_rng(seed))  # a resumed run draws the same
    for field, values in CATALOGUE[kind].items():
        assert getattr(a, field) in values
    shot = one_shot(kind, np.random.default_rng(seed))
    assert 1 <= len(changed(shot, kind())) <= 3  # the example, with 1-3 mechanisms changed
    child = mutate(shot, np.random.default_rng(seed))
    assert 1 <= len(changed(child, shot)) <= 2
    mixed = crossover(a, shot, np.random.default_rng(seed))
    assert all(getattr(mixed, f) in (getattr(a, f), getattr(shot, f)) for f in CATALOGUE[kind])


@given(st.integers(0, 2**32))
def test_no_prefix_mechanisms_without_prefix_caching(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for m in (uniform(Mechanisms, rng, False), one_shot(Mechanisms, rng, False),
              mutate(Mechanisms(), rng, False)):  # fmt: skip
        assert isinstance(m, Mechanisms) and (m.affinity, m.slack) == (0.0, 2)
    assert set(CATALOGUE[Mechanisms]) - set(catalogue(Mechanisms, False)) == {"affinity", "slack"}


@given(st.integers(0, 2**32))
def test_a_numeric_mutation_moves_to_a_neighbouring_value(seed: int) -> None:
    parent = Mechanisms(headroom=0.05, decode_ratio=0.6, admission=True, score="kv")
    child = mutate(parent, np.random.default_rng(seed))
    grid = CATALOGUE[Mechanisms]
    for f in changed(child, parent):
        values = grid[f]
        if isinstance(getattr(parent, f), float):
            step = abs(values.index(getattr(child, f)) - values.index(getattr(parent, f)))
            assert step == 1
