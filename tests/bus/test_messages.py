"""Message schemas: round trips, versioned tags, and decoding garbage."""

from __future__ import annotations

import contextlib

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import glia
from glia.bus import (
    ExperimentFailure,
    ExperimentFinished,
    ExperimentRequest,
    ExperimentResult,
    MessageError,
    WorkerHeartbeat,
    decode_event,
    decode_request,
    decode_result,
    encode,
    to_json,
)

from .conftest import small_experiments


def _result() -> ExperimentResult:
    summary = glia.simulate("llq", duration_s=3.0).summary
    return ExperimentResult(
        run_id="r1", key="k" * 64, label="llq", router="llq", summary=summary, worker="w"
    )


def test_every_message_round_trips_through_msgpack_and_json() -> None:
    (exp,) = small_experiments(1)
    request = ExperimentRequest(run_id="r1", experiment=exp, label="llq")
    assert decode_request(encode(request)) == request
    assert msgspec.json.decode(to_json(request), type=ExperimentRequest) == request
    result = _result()
    failure = ExperimentFailure(
        run_id="r1", key="k", label="x", kind="design", message="boom", worker="w"
    )
    for msg in (result, failure):
        assert decode_result(encode(msg)) == msg
    beat = WorkerHeartbeat(worker="w", concurrency=2, running=1, done=3, failed=0, at=1.0)
    finished = ExperimentFinished(
        run_id="r", key="k", label="l", worker="w", mean_e2e_s=1.0, wall_s=0.1, cached=False, at=2
    )
    for ev in (beat, finished):
        assert decode_event(encode(ev)) == ev


def test_the_tag_carries_the_schema_version() -> None:
    data = msgspec.msgpack.encode({"type": "result.v9", "run_id": "r"})
    with pytest.raises(MessageError) as err:
        decode_result(data)
    assert str(err.value) == "invalid result: Invalid value 'result.v9' - at `$.type`"


def test_a_message_of_another_subject_is_rejected() -> None:
    beat = WorkerHeartbeat(worker="w", concurrency=2, running=1, done=3, failed=0, at=1.0)
    with pytest.raises(MessageError, match=r"invalid experiment request: .*\$\.type"):
        decode_request(encode(beat))


def test_oversized_messages_are_refused_before_decoding() -> None:
    with pytest.raises(MessageError, match="exceeds"):
        decode_event(b"\x00" * (9 << 20))


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=2048))
def test_random_bytes_never_escape_as_anything_but_message_error(data: bytes) -> None:
    for decode in (decode_request, decode_result, decode_event):
        with contextlib.suppress(MessageError):
            decode(data)


@settings(max_examples=100, deadline=None)
@given(cut=st.integers(min_value=0, max_value=10_000))
def test_truncated_messages_give_message_error(cut: int) -> None:
    data = encode(_RESULT)
    cut = cut % len(data)
    with pytest.raises(MessageError):
        decode_result(data[:cut])


_RESULT = _result()
