"""The agenda: events in time order, ties broken by kind and then by key, cancellations."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from glia.sim._agenda import Agenda, Kind


def drain(agenda: Agenda) -> list[tuple[float, int, int]]:
    out = []
    while (event := agenda.pop())[1] >= 0:
        out.append(event)
    return out


def test_at_one_instant_the_kinds_come_in_their_order_then_the_keys() -> None:
    agenda = Agenda(4)
    agenda.push(1.0, Kind.ARRIVAL)
    agenda.push(1.0, Kind.TICK)
    agenda.push(1.0, Kind.READY, 2)
    agenda.push(1.0, Kind.ITERATION_END, 3)
    agenda.push(1.0, Kind.ITERATION_END, 1)
    agenda.push(0.5, Kind.ARRIVAL)
    assert drain(agenda) == [
        (0.5, Kind.ARRIVAL, 0),
        (1.0, Kind.ITERATION_END, 1),
        (1.0, Kind.ITERATION_END, 3),
        (1.0, Kind.READY, 2),
        (1.0, Kind.TICK, 0),
        (1.0, Kind.ARRIVAL, 0),
    ]


def test_a_cancelled_event_never_comes_and_a_later_one_of_the_same_key_does() -> None:
    agenda = Agenda(2)
    agenda.push(2.0, Kind.ITERATION_END, 0)
    agenda.push(3.0, Kind.ITERATION_END, 1)
    agenda.cancel(Kind.ITERATION_END, 0)
    assert agenda.next_time() == 3.0
    agenda.push(5.0, Kind.ITERATION_END, 0)  # the replica's new iteration end
    assert drain(agenda) == [(3.0, Kind.ITERATION_END, 1), (5.0, Kind.ITERATION_END, 0)]
    assert agenda.pop() == (math.inf, -1, 0)
    assert agenda.next_time() == math.inf


events = st.lists(
    st.tuples(
        st.floats(0, 100, allow_nan=False),
        st.sampled_from(list(Kind)),
        st.integers(0, 3),
        st.booleans(),  # cancelled afterwards
    ),
    max_size=40,
)


@given(events)
def test_events_come_sorted_by_time_kind_and_key_and_cancelled_ones_never(
    given_events: list[tuple[float, Kind, int, bool]],
) -> None:
    agenda = Agenda(4)
    for t, kind, key, _ in given_events:
        agenda.push(t, kind, key)
    cancelled = {(kind, key) for _, kind, key, c in given_events if c}
    for kind, key in cancelled:
        agenda.cancel(kind, key)
    got = drain(agenda)
    want = sorted((t, k, key) for t, k, key, _ in given_events if (k, key) not in cancelled)
    assert got == want
