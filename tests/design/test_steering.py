"""Steering a design run: notes to the supervisor, pause/resume/stop, the human gate.

The offline designer answers notes deterministically (a note naming a mechanism or a metric
changes what it tries next), so the whole path is tested without a model.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import msgspec
import pytest
from pydantic_ai.messages import ModelRequest, UserPromptPart

from glia import InputError
from glia._client import Client
from glia.actors._checkpoint import Checkpoint
from glia.actors._offline import (
    RELAYED,
    Seat,
    _next,
    _read,
    _State,
    _Trial,
    focus_of,
    offline_supervisor,
)
from glia.actors._supervisor import HUMAN_NOTES, supervisor_agent
from glia.bus import (
    Event,
    MemoryBus,
    RunStatus,
    Steered,
    SteerMessage,
    SteerNote,
    TrialFinished,
    steer_message,
)
from glia.policies import Mechanisms, SchedulerMechanisms
from glia.runtime import SimWorker, supervise
from glia.tasks import TASKS

from .test_design import cluster, small_run

pytestmark = pytest.mark.anyio

NOTE = "the long prompts starve; look at p99"


# -- the offline designer reads notes --------------------------------------------------------
def _one_trial(spec: Mechanisms | SchedulerMechanisms, **kw: object) -> _State:
    return _State(trials=[_Trial(index=1, path="designs/01.py", spec=spec, value=10.0,
                                 csv_paths=[])], **kw)  # type: ignore[arg-type]  # fmt: skip


def test_a_note_naming_a_metric_or_a_mechanism_changes_the_next_router_trial() -> None:
    r = msgspec.structs.replace
    plain = _one_trial(Mechanisms())
    assert _next(plain) == ("score", Mechanisms(score="kv"))
    tail = _one_trial(Mechanisms(), focus=focus_of(NOTE))
    admit = Mechanisms(score="kv", admission=True)
    assert _next(tail) == ("starve", r(admit, order="shortest-prompt", starve_s=120.0))
    prefix = _one_trial(Mechanisms(), focus=focus_of("replicas cache the prefix: use it"))
    assert _next(prefix) == ("affinity", Mechanisms(affinity=0.3, slack=4))
    # the same note steers the same way every time; an unrelated one changes nothing
    assert _next(_one_trial(Mechanisms(), focus=focus_of(NOTE))) == _next(tail)
    assert focus_of("nice work so far") == frozenset()
    assert _next(_one_trial(Mechanisms(), focus=focus_of("nice work"))) == _next(plain)


def test_a_note_on_starvation_changes_the_next_scheduler_trial() -> None:
    task = TASKS["scheduling"]
    plain = _one_trial(SchedulerMechanisms(), task=task)
    assert _next(plain) == (
        "sched-order", SchedulerMechanisms(order="shortest-prompt", backfill=True)
    )  # fmt: skip
    steered = _one_trial(SchedulerMechanisms(), task=task, focus=focus_of(NOTE))
    assert _next(steered) == ("starve", SchedulerMechanisms(
        order="shortest-prompt", backfill=True, starve_s=120.0))  # fmt: skip


async def test_the_offline_supervisor_relays_a_note_word_for_word_and_the_researcher_reads_it(
) -> None:  # fmt: skip
    agent = supervisor_agent(offline_supervisor())
    prompt = f"Report ...\n\n{HUMAN_NOTES}:\n- {NOTE} (from dashboard 127.0.0.1)"
    reply = (await agent.run(prompt)).output
    assert f"\n{RELAYED} {NOTE} (from dashboard 127.0.0.1)\n" in reply
    st = _read([ModelRequest(parts=[UserPromptPart(reply)])], Seat())
    assert st.focus == focus_of(NOTE) and "starve" in st.focus
    # without notes, the reply is the rule's alone
    assert RELAYED not in (await agent.run("Report ...")).output


def test_steering_messages_are_checked_before_they_are_sent() -> None:
    with pytest.raises(InputError) as e:
        steer_message("r", "jump")
    assert str(e.value) == (
        "unknown steering action 'jump': give one of note, pause, resume, stop, approve, pick"
    )
    with pytest.raises(InputError) as e:
        steer_message("r", "note", text="  ")
    assert str(e.value) == "a note needs its text: give what the supervisor should hear"
    with pytest.raises(InputError) as e:
        steer_message("r", "pick")
    assert str(e.value) == "pick needs a trial: give the number of the trial to validate"
    with pytest.raises(InputError) as e:
        steer_message("r", "approve", context=1)
    assert str(e.value) == "approve is for the whole run: leave out the context (1)"
    m = steer_message("r", "note", text=" look at p99 ", context=0, origin="api")
    assert isinstance(m, SteerNote) and m.text == "look at p99" and m.context == 0


# -- a live run on the bus -------------------------------------------------------------------
async def _when(events: list[Event], ok: Callable[[Event], bool], timeout: float = 120) -> str:
    """Wait (bounded) for an event of the run; returns the run id."""
    with anyio.fail_after(timeout):
        while not any(ok(e) for e in events):
            await anyio.sleep(0.02)
    return next(e.run_id for e in events if isinstance(e, RunStatus | TrialFinished))


def _trial(n: int) -> Callable[[Event], bool]:
    return lambda e: isinstance(e, TrialFinished) and e.index == n


async def test_a_note_reaches_the_supervisors_next_turn_and_a_stop_validates_the_best(
    tmp_path: Path,
) -> None:
    events: list[Event] = []
    async with cluster(tmp_path) as c, anyio.create_task_group() as tg:

        async def steer(c: Client) -> None:
            run_id = await _when(events, _trial(1))
            await c.steer(run_id, "note", text=NOTE)
            await _when(events, _trial(5))
            await c.steer(run_id, "stop")

        tg.start_soon(steer, c)
        run = await small_run(tmp_path, c, budget=12, on_event=events.append)
    rec = run.record
    assert (rec.status, rec.stop_kind) == ("stopped", "human")
    assert rec.stop_reason == "stopped by a person (api)"
    assert rec.validation and (run.run_dir / "report.md").is_file()
    assert len(rec.trials) < 12
    human = [e.text for e in rec.log if e.role == "human"]
    assert human == [f"note from api: {NOTE}", "stop from api"]
    # the supervisor's next turn passed it on; the researcher's next trial follows it
    supervisor = [e.text for e in rec.log if e.role == "supervisor"]
    assert f"{RELAYED} {NOTE} (from api)" in supervisor[0]
    assert "starve_s=120" in rec.trials[3].note
    assert not any("starve_s" in t.note for t in rec.trials[:3])
    steered = [e for e in events if isinstance(e, Steered)]
    assert [(e.action, e.text, e.origin, e.context) for e in steered] == [
        ("note", NOTE, "api", -1), ("stop", "", "api", -1)
    ]  # fmt: skip
    cp = msgspec.json.decode((run.run_dir / "checkpoint.json").read_bytes(), type=Checkpoint)
    assert [(type(m).__name__, m.origin) for m in cp.steering] == [
        ("SteerNote", "api"), ("SteerStop", "api")
    ]  # fmt: skip


async def test_pause_and_resume_hold_the_next_turn(tmp_path: Path) -> None:
    events: list[Event] = []
    async with cluster(tmp_path) as c, anyio.create_task_group() as tg:

        async def steer(c: Client) -> None:
            run_id = await _when(events, _trial(1))
            await c.steer(run_id, "pause", origin="test")
            await _when(events, lambda e: isinstance(e, RunStatus) and e.status == "paused")
            trials = sum(1 for e in events if isinstance(e, TrialFinished))
            await anyio.sleep(0.5)  # paused: no new turn, so no new trial
            assert sum(1 for e in events if isinstance(e, TrialFinished)) == trials
            await c.steer(run_id, "resume", origin="test")

        tg.start_soon(steer, c)
        run = await small_run(tmp_path, c, budget=4, on_event=events.append)
    rec = run.record
    assert rec.status == "finished" and len(rec.trials) == 4
    assert [e.text for e in rec.log if e.role == "human"] == ["pause from test", "resume from test"]
    statuses = [e.message for e in events if isinstance(e, RunStatus)]
    assert "context 0 paused until resumed" in statuses and "context 0 resumed" in statuses


async def test_the_gate_waits_for_a_person_who_may_pick_another_trial(tmp_path: Path) -> None:
    events: list[Event] = []
    async with cluster(tmp_path) as c, anyio.create_task_group() as tg:

        async def steer(c: Client) -> None:
            gate = lambda e: isinstance(e, RunStatus) and e.status == "awaiting approval"  # noqa: E731
            run_id = await _when(events, gate)
            await c.steer(run_id, "pick", trial=99, origin="test")
            await _when(events, lambda e: isinstance(e, Steered) and "99" in e.text)
            await c.steer(run_id, "pick", trial=1, origin="test")

        tg.start_soon(steer, c)
        run = await small_run(tmp_path, c, budget=3, gate=True, on_event=events.append)
    rec = run.record
    assert rec.status == "finished" and rec.best_trial == 1 and rec.validation
    human = [e.text for e in rec.log if e.role == "human"]
    assert human == [
        "pick from test: ignored: trial 99 does not exist; pick one of 1, 2, 3",
        "pick from test: trial 1",
    ]
    statuses = [e.status for e in events if isinstance(e, RunStatus)]
    assert statuses.index("awaiting approval") < statuses.index("validating")


async def test_stopping_one_context_leaves_the_others_running(tmp_path: Path) -> None:
    events: list[Event] = []
    async with cluster(tmp_path) as c, anyio.create_task_group() as tg:

        async def steer(c: Client) -> None:
            run_id = await _when(events, lambda e: isinstance(e, TrialFinished))
            await c.steer(run_id, "stop", context=1, origin="test")

        tg.start_soon(steer, c)
        run = await small_run(tmp_path, c, budget=10, contexts=2, on_event=events.append)
    rec = run.record
    assert rec.status == "finished" and rec.validation
    cp = msgspec.json.decode((run.run_dir / "checkpoint.json").read_bytes(), type=Checkpoint)
    reasons = {cs.index: cs.stop_reason for cs in cp.contexts}
    assert reasons[1] == "stopped by a person" and reasons[0] != reasons[1]
    assert [(e.context, e.text) for e in rec.log if e.role == "human"] == [(1, "stop from test")]
    assert (1, "context stopped by a person") in [(e.context, e.text) for e in rec.log]
    assert sum(1 for t in rec.trials if t.context == 1) < 5


class _NoSteering(MemoryBus):
    """A bus that refuses the steering subscription (a server whose permissions predate it)."""

    @asynccontextmanager
    async def steering(self, run_id: str) -> AsyncIterator[AsyncIterator[SteerMessage]]:
        raise RuntimeError("Permissions Violation for Subscription to glia.steer.r")
        yield  # pragma: no cover


@pytest.mark.timeout(120)  # every simulation in this process: slower than local workers
async def test_a_run_goes_on_without_steering_when_the_bus_refuses_it(tmp_path: Path) -> None:
    bus = _NoSteering()
    worker = SimWorker(bus, name="w", concurrency=2)
    async with anyio.create_task_group() as tg:
        await tg.start(lambda task_status: supervise([worker], task_status=task_status,
                                                     handle_signals=False))  # fmt: skip
        run = await small_run(tmp_path, Client(bus), budget=2)
        worker.drain()
        tg.cancel_scope.cancel()
    assert run.record.status == "finished" and len(run.record.trials) == 2
    notes = [e.text for e in run.record.log if e.role == "coordinator"]
    assert notes == [
        "steering is unavailable: RuntimeError('Permissions Violation for Subscription to "
        "glia.steer.r')"
    ]
