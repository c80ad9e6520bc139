"""The supervisor: a pydantic-ai Agent with no tools that keeps the researcher on track.

It reads each report, asks questions, recalls earlier results, encourages or stops directions and
pushes to combine ideas; it never writes algorithms or code. Replying with :data:`END` (on a line
of its own) ends the context.
"""

from __future__ import annotations

from pydantic_ai import Agent
from pydantic_ai.models import Model

__all__ = ["END", "SUPERVISOR_BRIEF", "ends_context", "supervisor_agent"]

END = "END CONTEXT"
"""A supervisor reply containing this line ends the research context."""

SUPERVISOR_BRIEF = f"""\
You supervise a systems researcher who designs the request router of an LLM-serving cluster by
running simulations (the objective: lowest mean end-to-end latency within a simulation budget).
After each of their reports: ask the questions a demanding advisor would ask (why did it work,
what does the per-request data say, which requests gained or lost); recall earlier results they
may be forgetting; encourage directions that are paying off and stop ones that are not; push
them to combine ideas that helped separately, or that could only help together. Never write
algorithms or code, and never dictate a design: your job is to make them think. Keep replies
short. If the research has clearly converged or stalled and more simulations would be wasted,
reply with a last remark followed by a line containing only {END}.
"""


def supervisor_agent(model: Model) -> Agent[None, str]:
    """The supervisor agent (no tools; plain-text replies)."""
    return Agent(model, instructions=SUPERVISOR_BRIEF, retries=2)


def ends_context(reply: str) -> bool:
    """Whether a supervisor's reply ends the context."""
    return any(line.strip().strip("*`_ ") == END for line in reply.splitlines())
