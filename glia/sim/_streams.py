"""Every random stream of a simulation, allocated in one place.

A run's randomness comes from independent streams of one ``SeedSequence(seed)``: child ``k``
is ``SeedSequence(seed, spawn_key=(k,))`` (what ``SeedSequence(seed).spawn(n)[k]`` gives for
any ``n > k``). Each purpose owns one index here, so no two purposes can share a stream by
accident: the workload's lengths and arrivals are fixed by the seed whatever a randomised
router draws, and the other way round. Indices are never reused or renumbered (that would
change every result): a new purpose takes the next free one.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

__all__ = ["Stream", "generator"]


class Stream(IntEnum):
    """The purposes that draw random numbers, each with its own stream."""

    ARRIVALS = 0
    """Inter-arrival times of generated workloads."""
    PICK = 1
    """Which trace rows a generated workload samples."""
    PROMPT = 2
    """Which prompts are inflated."""
    OUTPUT = 3
    """Which outputs are inflated."""
    CHAT = 4
    """How requests are threaded into conversations."""
    SCHEDULER = 5
    """The replica scheduler's ``rng``."""
    AUTOSCALER = 6
    """The autoscaler's ``rng``."""
    ROUTER = 7
    """The router's ``rng`` (until 2026-12 it was index 4, shared with ``CHAT`` by mistake)."""


def generator(seed: int, stream: Stream) -> np.random.Generator:
    """The generator of ``stream`` for ``seed``."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(int(stream),)))
