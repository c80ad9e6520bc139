"""Design-run checkpoints: everything needed to continue a run after a crash or Ctrl-C.

A checkpoint pairs the run record with each context's conversations, taken at a point where
they agree (between two model requests), so a resumed run replays nothing twice: a tool call
that was in flight is asked again, and its simulation answers from the result cache.
Checkpoints go to ``checkpoint.json`` in the run directory and to the bus's KV bucket.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import msgspec
from pydantic_ai.messages import ModelMessage, ModelMessagesTypeAdapter

from glia._atomic import write_atomic
from glia._errors import InputError
from glia.bus import SteerMessage
from glia.report import Budget, RunRecord
from glia.tasks import DEFAULT_TASK

__all__ = [
    "Checkpoint",
    "ContextState",
    "DesignConfig",
    "dump_messages",
    "load_checkpoint",
    "load_messages",
    "restore_files",
    "save_checkpoint",
    "workspace_files",
]

Phase = Literal["researcher", "supervisor", "done"]


class DesignConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a design run was asked to do."""

    task: str = DEFAULT_TASK.name
    preset: str = "glia-routing"
    model: str = "offline"
    supervisor_model: str | None = None
    """Defaults to ``model`` (the offline supervisor for the offline designer)."""
    base_url: str | None = None
    budget: Budget = Budget()
    contexts: int = 1
    sequential: bool = False
    search_seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    holdout_seeds: tuple[int, ...] = (100, 101, 102, 103, 104)
    second_workload: str | None = None
    """Preset whose workload the best design is also validated on (default: per preset)."""
    settings: dict[str, Any] = {}
    """Overrides of the preset's cluster and workload fields (see glia.experiment_config),
    applied to both workloads."""
    objective: str = "mean"
    """The routing objective's spec (see :func:`glia.tasks.parse_objective`)."""
    secret_seeds: bool = False
    """The seeds were drawn from a per-run secret: no agent or design is told them, and
    ``run.json`` shows them only once the run has ended (for reproduction)."""
    gate: bool = False
    """Wait before held-out validation until a person approves the chosen design or picks
    another trial (a :class:`~glia.bus.SteerGate`)."""


class ContextState(msgspec.Struct, kw_only=True):
    """One research context: whose turn it is and both conversations (pydantic-ai JSON)."""

    index: int
    budget: int
    phase: Phase = "researcher"
    prompt: str | None = None
    """The researcher's next user prompt (``None`` when its conversation ends in a request)."""
    report: str = ""
    """The researcher's last report, for a supervisor turn that has not happened yet."""
    researcher: str = "[]"
    supervisor: str = "[]"
    turns: int = 0
    stop_reason: str = ""
    notes: list[str] = []
    """People's notes (with their origin) not yet shown to the supervisor."""


class Checkpoint(msgspec.Struct, kw_only=True):
    config: DesignConfig
    record: RunRecord
    contexts: list[ContextState]
    files: dict[str, str] = {}
    """The workspaces' designs and notes (path in the run directory -> text), so a run can be
    resumed from the bus alone on another machine (per-request CSVs are not included)."""
    steering: list[SteerMessage] = []
    """Every steering message applied, in order, with its origin (each is applied once)."""


KEPT = (".py", ".md", ".txt", ".json")
"""Workspace files a checkpoint carries (small text; results CSVs stay on disk)."""
MAX_KEPT = 256_000


def workspace_files(run_dir: Path) -> dict[str, str]:
    """The files :attr:`Checkpoint.files` keeps, read from the run directory."""
    out = {}
    for p in sorted(run_dir.glob("ctx-*/**/*")):
        if p.is_file() and p.suffix in KEPT and p.stat().st_size <= MAX_KEPT:
            out[str(p.relative_to(run_dir))] = p.read_text(encoding="utf-8", errors="replace")
    return out


def restore_files(cp: Checkpoint, run_dir: Path) -> None:
    """Write the checkpoint's workspace files that are missing from ``run_dir``."""
    for rel, text in cp.files.items():
        path = run_dir / rel
        if run_dir.resolve() not in path.resolve().parents:
            continue  # never write outside the run directory, whatever the checkpoint says
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")


def dump_messages(messages: list[ModelMessage]) -> str:
    return ModelMessagesTypeAdapter.dump_json(messages).decode()


def load_messages(text: str) -> list[ModelMessage]:
    return ModelMessagesTypeAdapter.validate_json(text)


def encode(cp: Checkpoint) -> bytes:
    return msgspec.json.encode(cp)


def save_checkpoint(cp: Checkpoint, run_dir: Path) -> bytes:
    """Write ``checkpoint.json`` atomically; returns the encoded checkpoint."""
    data = encode(cp)
    write_atomic(run_dir / "checkpoint.json", data)
    return data


def load_checkpoint(data: bytes, where: str) -> Checkpoint:
    """Decode a checkpoint; a clear :class:`InputError` if it is not one."""
    try:
        return msgspec.json.decode(data, type=Checkpoint)
    except msgspec.DecodeError as e:
        raise InputError(
            f"{where} is not a Glia design-run checkpoint ({e}): give the run directory (or "
            "run id) of a run started by `glia design`"
        ) from None
