"""Every message on the bus: frozen msgspec Structs, one tagged union per subject.

Tags carry the schema version (``"result.v1"``); a new field gets a default and goes last, so
old readers keep working; an incompatible change gets a new tag. Messages are msgpack on the
bus and JSON at the edges (``glia monitor --json``). Decoding untrusted bytes gives a typed
message or a :class:`MessageError` naming what was wrong and where.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from glia._errors import GliaError
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
    "TrialFinished",
    "WorkerHeartbeat",
    "decode_event",
    "decode_request",
    "decode_result",
    "encode",
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
)

_encoder = msgspec.msgpack.Encoder()
_request = msgspec.msgpack.Decoder(ExperimentRequest)
_result: msgspec.msgpack.Decoder[ResultMessage] = msgspec.msgpack.Decoder(ResultMessage)
_event: msgspec.msgpack.Decoder[Event] = msgspec.msgpack.Decoder(Event)
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
