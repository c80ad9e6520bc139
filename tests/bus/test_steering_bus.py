"""Steering messages on the bus: kept per run, replayed from the first to every subscriber,
a message sent twice (same id) kept once; NATS and the in-memory bus alike."""

from __future__ import annotations

import anyio
import pytest

from glia.bus import (
    MemoryBus,
    MessageError,
    NatsBus,
    NatsServer,
    SteerMessage,
    SteerNote,
    SteerStop,
    decode_steer,
    encode,
    steer_message,
)
from glia.bus._subjects import STEER_STREAM, steer_subject

pytestmark = pytest.mark.anyio


async def _first(bus: NatsBus | MemoryBus, run_id: str, n: int) -> list[SteerMessage]:
    got: list[SteerMessage] = []
    with anyio.fail_after(10):
        async with bus.steering(run_id) as messages:
            async for m in messages:
                got.append(m)
                if len(got) == n:
                    break
    return got


async def _exercise(bus: NatsBus | MemoryBus) -> None:
    note = steer_message("r1", "note", text="look at p99", origin="test")
    await bus.publish_steer(note)
    await bus.publish_steer(note)  # a retried publish: dropped by its id
    await bus.publish_steer(steer_message("r2", "pause", origin="test"))
    stop = steer_message("r1", "stop", context=0, origin="test")
    await bus.publish_steer(stop)
    assert await _first(bus, "r1", 2) == [note, stop]
    assert await _first(bus, "r1", 2) == [note, stop]  # replayed to a later subscriber too
    assert isinstance(note, SteerNote) and isinstance(stop, SteerStop)


async def test_steering_on_nats(nats: NatsServer) -> None:
    async with NatsBus.connect(nats.url, name="test") as bus:
        await _exercise(bus)
        info = await bus.js.stream_info(STEER_STREAM)
        assert info.state.messages == 3
        assert info.config.subjects == ["glia.steer.>"]
    assert steer_subject("r1") == "glia.steer.r1"


async def test_steering_in_memory() -> None:
    await _exercise(MemoryBus())


def test_a_steering_message_round_trips_and_garbage_is_refused() -> None:
    m = steer_message("r1", "pick", trial=3, origin="dashboard 127.0.0.1")
    assert decode_steer(encode(m)) == m
    with pytest.raises(MessageError, match=r"^invalid steering message: "):
        decode_steer(b"\x81\xa4type\xa4nope")
