"""A researcher's workspace: the one directory its file tools may read and write.

Paths the agent gives are relative to the workspace; anything that resolves outside it (``..``,
absolute paths, symlinks pointing out) is refused with a message the agent can act on.
"""

from __future__ import annotations

import os
from pathlib import Path

from glia._errors import GliaError

__all__ = ["Workspace", "WorkspaceError"]

MAX_READ = 64_000
"""Characters a read returns at most (the agent pages with ``offset``)."""
MAX_WRITE = 256_000
"""Characters a write may store (designs and notes are far smaller)."""


class WorkspaceError(GliaError):
    """A file operation the workspace refuses; the message tells the agent what to do."""


class Workspace:
    """Files under ``root`` (created if missing)."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve()

    def path(self, name: str) -> Path:
        """The absolute path of ``name``, which must stay inside the workspace."""
        if not name or name.strip() in (".", ""):
            raise WorkspaceError("empty path: give a file name such as 'design.py'")
        p = (self.root / name).resolve()
        if p != self.root and self.root not in p.parents:
            raise WorkspaceError(
                f"{name!r} is outside your workspace: use a relative path such as 'design.py'"
            )
        return p

    def list(self) -> list[str]:
        """Every file, as relative paths with sizes (``design.py (1,234 bytes)``), sorted."""
        out = []
        for dirpath, _dirs, files in os.walk(self.root):
            for f in files:
                p = Path(dirpath) / f
                out.append(f"{p.relative_to(self.root)} ({p.stat().st_size:,} bytes)")
        return sorted(out)

    def read(self, name: str, offset: int = 0) -> str:
        """Up to :data:`MAX_READ` characters of ``name`` from ``offset``."""
        p = self.path(name)
        if not p.is_file():
            files = ", ".join(self.list()[:20]) or "none yet"
            raise WorkspaceError(f"no file {name!r} in your workspace (files: {files})")
        text = p.read_text(encoding="utf-8", errors="replace")
        chunk = text[offset : offset + MAX_READ]
        if offset + MAX_READ < len(text):
            rest = len(text) - offset - MAX_READ
            chunk += f"\n... [{rest:,} more characters: read again with offset={offset + MAX_READ}]"
        return chunk

    def write(self, name: str, content: str) -> str:
        """Create or replace ``name``; returns a one-line confirmation."""
        if len(content) > MAX_WRITE:
            raise WorkspaceError(
                f"{len(content):,} characters is over the {MAX_WRITE:,} limit: write less"
            )
        p = self.path(name)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content, encoding="utf-8")
        return f"wrote {name} ({len(content):,} characters, {content.count(chr(10)) + 1} lines)"

    def edit(self, name: str, old: str, new: str) -> str:
        """Replace the one occurrence of ``old`` in ``name`` by ``new``."""
        p = self.path(name)
        if not p.is_file():
            raise WorkspaceError(f"no file {name!r} to edit: write it first")
        text = p.read_text(encoding="utf-8")
        n = text.count(old) if old else 0
        if n != 1:
            what = "does not occur" if n == 0 else f"occurs {n} times"
            raise WorkspaceError(
                f"the text to replace {what} in {name}: give an exact snippet that occurs once "
                "(read the file to copy it)"
            )
        return self.write(name, text.replace(old, new, 1))
