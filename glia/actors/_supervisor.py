"""The supervisor: a pydantic-ai Agent with no tools that keeps the researcher on track.

It reads each report, asks questions, recalls earlier results, encourages or stops directions and
pushes to combine ideas; it never writes algorithms or code. Replying with :data:`END` (on a line
of its own) ends the context.
"""

from __future__ import annotations

from pydantic_ai import Agent
from pydantic_ai.models import Model

from glia.tasks import DEFAULT_TASK, Task

__all__ = ["END", "HUMAN_NOTES", "ends_context", "supervisor_agent"]

END = "END CONTEXT"
"""A supervisor reply containing this line ends the research context."""
HUMAN_NOTES = "Notes from a person watching the run (pass them on to the researcher)"
"""Heads the list of people's notes the coordinator adds to the supervisor's prompt."""


def supervisor_agent(model: Model, task: Task = DEFAULT_TASK) -> Agent[None, str]:
    """The supervisor agent of a ``task``'s research (no tools; plain-text replies)."""
    return Agent(model, instructions=task.supervisor_brief(END), retries=2)


def ends_context(reply: str) -> bool:
    """Whether a supervisor's reply ends the context."""
    return any(line.strip().strip("*`_ ") == END for line in reply.splitlines())
