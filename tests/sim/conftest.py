"""Helpers the simulator's tests share."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from glia.sim import Trace


def trace_of(arrivals: Sequence[float], prompts: Sequence[int], outputs: Sequence[int]) -> Trace:
    """A trace of the given arrival times (s), prompt and output lengths (tokens)."""
    return Trace(
        np.asarray(arrivals, dtype=np.float64),
        np.asarray(prompts, dtype=np.int64),
        np.asarray(outputs, dtype=np.int64),
    )
