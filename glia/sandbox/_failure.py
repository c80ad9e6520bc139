"""What a design that cannot be evaluated produces: a failure the researcher can act on."""

from __future__ import annotations

from typing import Literal

import msgspec

from glia.sim import Summary

__all__ = ["DesignFailure", "FailureKind", "Limits"]

FailureKind = Literal[
    "syntax", "import", "exception", "timeout", "memory", "invalid-decision", "forbidden"
]


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """Resources a design's simulation may use."""

    wall_s: float = 60.0
    cpu_s: float = 60.0
    memory_mb: int = 2048
    output_kb: int = 64
    """Captured stdout/stderr of the design, kept up to this size (the rest is counted)."""


class DesignFailure(msgspec.Struct, frozen=True, kw_only=True):
    """A design that could not be evaluated.

    ``message`` says what went wrong and what to change; ``traceback`` is trimmed to the
    design's own lines (``design.py:LINE``); ``output`` is what the design printed (truncated);
    ``partial`` summarizes the requests it completed before failing, if any.
    """

    kind: FailureKind
    message: str
    traceback: str = ""
    output: str = ""
    partial: Summary | None = None
    """Metrics of the requests completed before the failure, as the design's own process
    computed them (informative only: not verified by a replay)."""

    def one_line(self) -> str:
        """Kind, message and the design's innermost line, on one line."""
        where = [
            ln.split(" in ")[0].strip() for ln in self.traceback.splitlines() if "design.py:" in ln
        ]
        return f"{self.kind}: {self.message}" + (f" (at {where[-1]})" if where else "")

    def __str__(self) -> str:
        tail = f"\n{self.traceback}" if self.traceback else ""
        return f"{self.kind}: {self.message}{tail}"
