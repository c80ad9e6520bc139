"""Every message on the bus: frozen msgspec Structs, one tagged union per subject.

Tags carry the schema version (``"result.v1"``); a new field gets a default and goes last, so
old readers keep working; an incompatible change gets a new tag. Messages are msgpack on the
bus and JSON at the edges (``glia monitor --json``). Decoding untrusted bytes gives a typed
message or a :class:`MessageError` naming what was wrong and where.
"""

from __future__ import annotations

import secrets
import time
from typing import Literal, get_args

import msgspec

from glia._errors import GliaError, InputError
from glia.experiment import DesignFailure, Experiment
from glia.sim import Summary

__all__ = [
    "AgentMessage",
    "Event",
    "ExperimentFailed",
    "ExperimentFailure",
    "ExperimentFinished",
    "ExperimentQueued",
    "ExperimentRequest",
    "ExperimentResult",
    "ExperimentStarted",
    "FailureKind",
    "MessageError",
    "ProviderRetry",
    "ResultMessage",
    "RunStatus",
    "Steer",
    "SteerGate",
    "SteerMessage",
    "SteerNote",
    "SteerPause",
    "SteerResume",
    "SteerStop",
    "Steered",
    "TrialFinished",
    "WorkerHeartbeat",
    "decode_event",
    "decode_request",
    "decode_result",
    "decode_steer",
    "encode",
    "steer_message",
    "to_json",
]

MAX_MESSAGE_BYTES = 8 << 20
"""Larger payloads are refused before decoding (NATS's own default limit is 1 MiB)."""

FailureKind = Literal["design", "input", "simulation", "crash", "timeout", "dead-letter"]


class MessageError(GliaError):
    """Bytes on the bus that are not a valid message of the subject's schema."""


class _Msg(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    pass


# -- glia.exp.submit -------------------------------------------------------------------------
class ExperimentRequest(_Msg, frozen=True, kw_only=True, tag="experiment.v1"):
    """Run this experiment for run ``run_id`` (``label`` names it in events and reports)."""

    run_id: str
    experiment: Experiment
    label: str = ""


# -- glia.result.<run_id> --------------------------------------------------------------------
class ExperimentResult(_Msg, frozen=True, kw_only=True, tag="result.v1"):
    """A finished experiment. ``artifact`` names its per-request CSV in the object store."""

    run_id: str
    key: str
    label: str
    router: str
    summary: Summary
    worker: str
    artifact: str | None = None
    cached: bool = False


class ExperimentFailure(_Msg, frozen=True, kw_only=True, tag="failure.v1"):
    """An experiment that could not produce a result, and why (``kind``)."""

    run_id: str
    key: str
    label: str
    kind: FailureKind
    message: str
    worker: str
    attempts: int = 1
    design: DesignFailure | None = None
    """For a design that could not be evaluated: kind, trimmed traceback, captured output."""


ResultMessage = ExperimentResult | ExperimentFailure


# -- glia.events.<run_id> --------------------------------------------------------------------
class ExperimentQueued(_Msg, frozen=True, kw_only=True, tag="queued.v1"):
    run_id: str
    key: str
    label: str
    at: float


class ExperimentStarted(_Msg, frozen=True, kw_only=True, tag="started.v1"):
    run_id: str
    key: str
    label: str
    worker: str
    attempt: int
    at: float


class ExperimentFinished(_Msg, frozen=True, kw_only=True, tag="finished.v1"):
    run_id: str
    key: str
    label: str
    worker: str
    mean_e2e_s: float
    wall_s: float
    cached: bool
    at: float


class ExperimentFailed(_Msg, frozen=True, kw_only=True, tag="failed.v1"):
    run_id: str
    key: str
    label: str
    worker: str
    kind: FailureKind
    message: str
    at: float


class WorkerHeartbeat(_Msg, frozen=True, kw_only=True, tag="heartbeat.v1"):
    """A worker is alive: its capacity and what it has done so far."""

    worker: str
    concurrency: int
    running: int
    done: int
    failed: int
    at: float


class AgentMessage(_Msg, frozen=True, kw_only=True, tag="agent.v1"):
    """A line of a design run's research log: a researcher's report, a supervisor's reply, a
    tool call, or a coordinator notice (``role``), in context ``context``."""

    run_id: str
    context: int
    role: str
    text: str
    at: float


class TrialFinished(_Msg, frozen=True, kw_only=True, tag="trial.v1"):
    """A researcher's simulation finished (``mean_e2e_s`` is ``None`` when the design failed)."""

    run_id: str
    context: int
    index: int
    budget: int
    mean_e2e_s: float | None
    best_e2e_s: float | None
    failure: str | None
    at: float
    cost: float | None = None
    """The task's objective (lower is better; for routing, the mean E2E)."""
    best_cost: float | None = None


class ProviderRetry(_Msg, frozen=True, kw_only=True, tag="provider-retry.v1"):
    """A model provider failed (rate limit, timeout, 5xx); retried after ``wait_s`` seconds."""

    run_id: str
    context: int
    model: str
    attempt: int
    wait_s: float
    error: str
    at: float


class RunStatus(_Msg, frozen=True, kw_only=True, tag="run.v1"):
    """A design run changed phase: ``searching``, ``validating``, ``finished``, ``stopped``,
    ``failed``; ``cost_usd`` and ``tokens`` are the metered totals so far."""

    run_id: str
    status: str
    message: str
    cost_usd: float
    tokens: int
    at: float


class Steered(_Msg, frozen=True, kw_only=True, tag="steered.v1"):
    """A person steered a design run and the coordinator applied it: ``action`` is ``note``,
    ``pause``, ``resume``, ``stop``, ``approve`` or ``pick`` (``context`` -1: the whole run);
    ``origin`` says where it came from (e.g. ``dashboard 127.0.0.1`` or ``api``)."""

    run_id: str
    context: int
    action: str
    text: str
    origin: str
    at: float


Event = (
    ExperimentQueued
    | ExperimentStarted
    | ExperimentFinished
    | ExperimentFailed
    | WorkerHeartbeat
    | AgentMessage
    | TrialFinished
    | ProviderRetry
    | RunStatus
    | Steered
)


# -- glia.steer.<run_id> ---------------------------------------------------------------------
class Steer(_Msg, frozen=True, kw_only=True):
    """A person's hand on design run ``run_id``, applied by its coordinator at the next turn
    boundary and recorded (with ``origin``) in the run's research log and checkpoint.

    ``id`` is unique per message: a message is applied once, even when replayed (on resume).
    ``context`` is the context it is for (``None``: the whole run).
    """

    run_id: str
    id: str
    origin: str
    at: float
    context: int | None = None


class SteerNote(Steer, frozen=True, kw_only=True, tag="steer-note.v1"):
    """A note to the supervisor, shown to it at its next turn."""

    text: str


class SteerPause(Steer, frozen=True, kw_only=True, tag="steer-pause.v1"):
    """Pause: no new turn starts until a :class:`SteerResume` (work in flight finishes)."""


class SteerResume(Steer, frozen=True, kw_only=True, tag="steer-resume.v1"):
    """Resume a paused context or run."""


class SteerStop(Steer, frozen=True, kw_only=True, tag="steer-stop.v1"):
    """Stop a context at its next turn boundary, or the whole run's search at once; a stopped
    run validates and reports the best design so far, as a budget stop does."""


class SteerGate(Steer, frozen=True, kw_only=True, tag="steer-gate.v1"):
    """At the gate of a run started with ``gate`` (before held-out validation): approve the
    chosen design (``trial`` ``None``) or pick trial ``trial`` instead."""

    trial: int | None = None


SteerMessage = SteerNote | SteerPause | SteerResume | SteerStop | SteerGate

SteerAction = Literal["note", "pause", "resume", "stop", "approve", "pick"]


def steer_message(
    run_id: str,
    action: str,
    *,
    text: str = "",
    context: int | None = None,
    trial: int | None = None,
    origin: str = "api",
) -> SteerMessage:
    """The steering message for ``action`` (one of :data:`SteerAction`) on run ``run_id``.

    ``note`` needs ``text``; ``pick`` needs ``trial``; ``context`` (``None``: the whole run)
    applies to notes, pauses, resumes and stops. Raises :class:`~glia.InputError` otherwise.
    """
    actions = get_args(SteerAction)
    if action not in actions:
        raise InputError(f"unknown steering action {action!r}: give one of {', '.join(actions)}")
    if context is not None and context < 0:
        raise InputError(f"context {context} is negative: give a context index from 0")
    if action in ("approve", "pick") and context is not None:
        raise InputError(f"{action} is for the whole run: leave out the context ({context})")
    common = {"run_id": run_id, "id": secrets.token_hex(8), "origin": origin, "at": time.time(),
              "context": context}  # fmt: skip
    if action == "note":
        if not text.strip():
            raise InputError("a note needs its text: give what the supervisor should hear")
        return SteerNote(text=text.strip(), **common)  # type: ignore[arg-type]
    if action == "pick":
        if trial is None:
            raise InputError("pick needs a trial: give the number of the trial to validate")
        return SteerGate(trial=trial, **common)  # type: ignore[arg-type]
    kind: dict[str, type[SteerMessage]] = {
        "pause": SteerPause, "resume": SteerResume, "stop": SteerStop, "approve": SteerGate,
    }  # fmt: skip
    return kind[action](**common)  # type: ignore[arg-type]


_encoder = msgspec.msgpack.Encoder()
_request = msgspec.msgpack.Decoder(ExperimentRequest)
_result: msgspec.msgpack.Decoder[ResultMessage] = msgspec.msgpack.Decoder(ResultMessage)
_event: msgspec.msgpack.Decoder[Event] = msgspec.msgpack.Decoder(Event)
_steer: msgspec.msgpack.Decoder[SteerMessage] = msgspec.msgpack.Decoder(SteerMessage)
_json = msgspec.json.Encoder()


def encode(msg: _Msg) -> bytes:
    """The msgpack encoding of a message."""
    return _encoder.encode(msg)


def to_json(msg: _Msg) -> bytes:
    """The JSON encoding of a message (for humans and other tools)."""
    return _json.encode(msg)


def _decode(decoder: msgspec.msgpack.Decoder[object], data: bytes, what: str) -> object:
    if len(data) > MAX_MESSAGE_BYTES:
        raise MessageError(f"{what} of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}: dropped")
    try:
        return decoder.decode(data)
    except msgspec.DecodeError as e:  # ValidationError is a DecodeError
        raise MessageError(f"invalid {what}: {e}") from None


def decode_request(data: bytes) -> ExperimentRequest:
    """Decode an experiment request; raises :class:`MessageError` on anything else."""
    msg = _decode(_request, data, "experiment request")  # type: ignore[arg-type]
    assert isinstance(msg, ExperimentRequest)
    return msg


def decode_result(data: bytes) -> ResultMessage:
    """Decode a result or failure; raises :class:`MessageError` on anything else."""
    return _decode(_result, data, "result")  # type: ignore[arg-type,return-value]


def decode_event(data: bytes) -> Event:
    """Decode an event; raises :class:`MessageError` on anything else."""
    return _decode(_event, data, "event")  # type: ignore[arg-type,return-value]


def decode_steer(data: bytes) -> SteerMessage:
    """Decode a steering message; raises :class:`MessageError` on anything else."""
    return _decode(_steer, data, "steering message")  # type: ignore[arg-type,return-value]
