"""The researcher: a pydantic-ai Agent that designs a policy by experiment.

Its tools work on its own workspace (list/read/write/edit files), run analysis scripts over its
results in a limited process, run simulations of a design on the cluster's workers, and publish
findings. It ends each turn with a report to its supervisor. Everything outside the agent (the
budget, the bus, checkpoints) sits behind :class:`Bench`, which the coordinator implements.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import msgspec
from pydantic_ai import Agent, RunContext
from pydantic_ai.models import Model

from glia.sandbox import run_analysis as run_script
from glia.tasks import DEFAULT_TASK, Slo, Task

from ._answers import SimulationAnswer
from ._workspace import Workspace, WorkspaceError

__all__ = ["Bench", "ResearchDeps", "brief", "researcher_agent"]


class Bench(Protocol):
    """What a researcher's tools need from the run (implemented by the coordinator)."""

    async def run_simulation(
        self, context: int, design_path: str, note: str, seeds: list[int] | None
    ) -> SimulationAnswer: ...

    async def publish(self, context: int, text: str) -> None: ...


@dataclass
class ResearchDeps:
    """A researcher's context: which one it is, its files, and the run it works for."""

    context: int
    workspace: Workspace
    bench: Bench


def brief(
    *,
    preset: str,
    description: str,
    budget: int,
    seeds: list[int],
    baselines: dict[str, float],
    previous: str = "",
    task: Task = DEFAULT_TASK,
    slo: Slo | None = None,
) -> str:
    """The researcher's instructions for ``task``: the brief a colleague would give."""
    return task.brief(
        preset=preset, description=description, budget=budget, seeds=seeds,
        baselines=baselines, previous=previous, slo=slo,
    )  # fmt: skip


def researcher_agent(model: Model) -> Agent[ResearchDeps, str]:
    """The researcher agent with its tools (its instructions come with each run)."""
    agent: Agent[ResearchDeps, str] = Agent(model, deps_type=ResearchDeps, retries=3)

    @agent.tool
    async def list_files(ctx: RunContext[ResearchDeps]) -> str:
        """List the files in your workspace with their sizes."""
        return "\n".join(ctx.deps.workspace.list()) or "(empty)"

    @agent.tool
    async def read_file(ctx: RunContext[ResearchDeps], path: str, offset: int = 0) -> str:
        """Read a file of your workspace (up to 64,000 characters from `offset`)."""
        try:
            return ctx.deps.workspace.read(path, offset)
        except WorkspaceError as e:
            return f"error: {e}"

    @agent.tool
    async def write_file(ctx: RunContext[ResearchDeps], path: str, content: str) -> str:
        """Create or replace a file of your workspace (e.g. a design, or notes)."""
        try:
            return ctx.deps.workspace.write(path, content)
        except WorkspaceError as e:
            return f"error: {e}"

    @agent.tool
    async def edit_file(ctx: RunContext[ResearchDeps], path: str, old: str, new: str) -> str:
        """Replace the one occurrence of `old` in a file by `new`."""
        try:
            return ctx.deps.workspace.edit(path, old, new)
        except WorkspaceError as e:
            return f"error: {e}"

    @agent.tool
    async def run_analysis(ctx: RunContext[ResearchDeps], script: str) -> str:
        """Run a Python analysis script in your workspace directory (numpy available; 30 s,
        1 GB; no network; your files are read-only to it, use tempfile for its own files).
        Returns what it prints."""
        out = await run_script(script, ctx.deps.workspace.root)
        if out.ok:
            return out.output or "(no output: print what you want to see)"
        return f"error: {out.error}\n{out.output}".rstrip()

    @agent.tool
    async def run_simulation(
        ctx: RunContext[ResearchDeps],
        design_path: str,
        note: str = "",
        seeds: list[int] | None = None,
    ) -> dict[str, Any]:
        """Simulate the design in `design_path` (uses one simulation of your budget).

        `note` says what this experiment tests (it goes into the research log); `seeds`
        overrides the default seeds. Returns the score (20 / mean E2E), metrics, the
        experiment id and the per-request CSV paths in your workspace — or the failure with
        its traceback if the design could not run.
        """
        answer = await ctx.deps.bench.run_simulation(ctx.deps.context, design_path, note, seeds)
        return msgspec.to_builtins(answer)  # type: ignore[no-any-return]

    @agent.tool
    async def report(ctx: RunContext[ResearchDeps], findings: str) -> str:
        """Record a finding in the research log (visible to your team live)."""
        await ctx.deps.bench.publish(ctx.deps.context, findings)
        return "recorded"

    return agent
