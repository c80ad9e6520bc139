"""The message bus: schemas, subject names, and the NATS JetStream and in-memory buses."""

from ._bus import Bus, Delivery, WorkQueue
from ._memory import MemoryBus
from ._messages import (
    Event,
    ExperimentFailed,
    ExperimentFailure,
    ExperimentFinished,
    ExperimentQueued,
    ExperimentRequest,
    ExperimentResult,
    ExperimentStarted,
    FailureKind,
    MessageError,
    ResultMessage,
    WorkerHeartbeat,
    decode_event,
    decode_request,
    decode_result,
    encode,
    to_json,
)
from ._nats import MAX_DELIVER, NatsBus, redact
from ._server import BusError, NatsServer, find_nats_server, nats_server

__all__ = [
    "MAX_DELIVER",
    "Bus",
    "BusError",
    "Delivery",
    "Event",
    "ExperimentFailed",
    "ExperimentFailure",
    "ExperimentFinished",
    "ExperimentQueued",
    "ExperimentRequest",
    "ExperimentResult",
    "ExperimentStarted",
    "FailureKind",
    "MemoryBus",
    "MessageError",
    "NatsBus",
    "NatsServer",
    "ResultMessage",
    "WorkQueue",
    "WorkerHeartbeat",
    "decode_event",
    "decode_request",
    "decode_result",
    "encode",
    "find_nats_server",
    "nats_server",
    "redact",
    "to_json",
]
