"""Invariants of the dashboard's live state (:class:`glia.dashboard.Live`) under any order of
events, checked with hypothesis."""

from __future__ import annotations

import json

import anyio
from hypothesis import given
from hypothesis import strategies as st

from glia.bus import (
    AgentMessage,
    Event,
    ExperimentFailed,
    ExperimentFinished,
    ExperimentQueued,
    ExperimentStarted,
    TrialFinished,
)
from glia.dashboard import Live

_KEYS = st.sampled_from(["a", "b", "c"])
_RUNS = st.sampled_from(["r1", "r2"])


def _lifecycle(kind: int, run: str, key: str) -> Event:
    if kind == 0:
        return ExperimentQueued(run_id=run, key=key, label=key, at=0.0)
    if kind == 1:
        return ExperimentStarted(run_id=run, key=key, label=key, at=0.0, worker="w", attempt=1)
    if kind == 2:
        return ExperimentFinished(run_id=run, key=key, label=key, at=0.0, worker="w",
                                  mean_e2e_s=1.0, wall_s=1.0, cached=False)  # fmt: skip
    return ExperimentFailed(run_id=run, key=key, label=key, at=0.0, worker="w", kind="crash",
                            message="x")  # fmt: skip


def _trial(run: str, i: int) -> Event:
    return TrialFinished(
        run_id=run, context=0, index=i, budget=9, mean_e2e_s=float(i), best_e2e_s=None,
        failure=None, at=0.0, cost=float(i),
    )  # fmt: skip


def _message(run: str, text: str) -> Event:
    return AgentMessage(run_id=run, context=0, role="researcher", text=text, at=0.0)


_EVENTS = st.lists(
    st.one_of(
        st.builds(_lifecycle, st.integers(0, 3), _RUNS, _KEYS),
        st.builds(_trial, _RUNS, st.integers(1, 9)),
        st.builds(_message, _RUNS, st.text(max_size=5)),
    ),
    max_size=40,
)


@given(_EVENTS)
def test_an_experiment_is_queued_or_running_never_both(events: list[Event]) -> None:
    live = Live()
    for ev in events:
        live.apply(ev)
        assert not live.queued & set(live.running)
    last: dict[str, str] = {}
    for ev in events:
        if isinstance(ev, ExperimentQueued | ExperimentStarted | ExperimentFinished
                      | ExperimentFailed):  # fmt: skip
            last[f"{ev.run_id}/{ev.key}"] = type(ev).__name__
    assert live.queued == {k for k, v in last.items() if v == "ExperimentQueued"}
    assert set(live.running) == {k for k, v in last.items() if v == "ExperimentStarted"}


@given(_EVENTS, st.integers(0, 40))
def test_a_tab_opened_at_any_moment_sees_its_run_whole_and_in_order(
    events: list[Event], opened_after: int
) -> None:
    async def main() -> list[bytes]:
        live = Live()
        for ev in events[:opened_after]:
            live.apply(ev)
        async with live.watch("r1") as tab:
            for ev in events[opened_after:]:
                live.apply(ev)
            live.close()
            return [data async for data in tab]

    seen = anyio.run(main)
    shown = [e for e in events if isinstance(e, TrialFinished | AgentMessage) and e.run_id == "r1"]
    assert [json.loads(d)["type"] for d in seen] == [
        "trial.v1" if isinstance(e, TrialFinished) else "agent.v1" for e in shown
    ]
    assert all(json.loads(d)["run_id"] == "r1" for d in seen)
