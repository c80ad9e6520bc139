"""The exceptions Glia raises.

Every error Glia raises on purpose derives from :class:`GliaError`; the subclass says whose move it
is to fix it::

    GliaError
    ├── InputError          a bad argument, config, preset, name or file: caller fixes it
    │   └── TraceError      a malformed request trace (names the file and row)
    ├── DesignError         a policy (router) broke the rules of the design interface
    └── SimulationError     the simulation could not finish (carries what was computed so far)

Messages name the bad value, where it came from, and what to do instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = [
    "DesignError",
    "GliaError",
    "InputError",
    "SimulationError",
    "TraceError",
    "unknown_name",
]


class GliaError(Exception):
    """Root of every error Glia raises on purpose."""


class InputError(GliaError, ValueError):
    """A bad argument, configuration, name or file given by the caller."""


class TraceError(InputError):
    """A request trace that cannot be used; the message names the file and row."""

    def __init__(self, path: str, row: int | None, problem: str) -> None:
        self.path = path
        self.row = row
        self.problem = problem
        where = f"{path} row {row}" if row is not None else path
        super().__init__(f"{where}: {problem}")

    def __reduce__(self) -> tuple[type[TraceError], tuple[str, int | None, str]]:
        return (type(self), (self.path, self.row, self.problem))  # picklable across processes


class DesignError(GliaError):
    """A policy broke the rules of the design interface (e.g. routed a request twice).

    ``partial`` holds the summary of the requests completed before it did, when there were any.
    """

    partial: Any = None


class SimulationError(GliaError):
    """A simulation could not finish. ``partial`` holds what it computed before stopping."""

    def __init__(self, message: str, partial: Any = None) -> None:
        super().__init__(message)
        self.partial = partial

    def __reduce__(self) -> tuple[type[SimulationError], tuple[str, Any]]:
        return (type(self), (str(self), self.partial))


def unknown_name(kind: str, name: str, known: Iterable[str], hint: str = "") -> InputError:
    """An :class:`InputError` for a name not in a registry, listing the valid names."""
    choices = ", ".join(sorted(known))
    extra = f"; {hint}" if hint else ""
    return InputError(f"unknown {kind} {name!r}: choose one of {choices}{extra}")
