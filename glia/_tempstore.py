"""Temporary directories that a hard-killed Glia cannot leave behind for good.

A store is a directory in the temporary folder, named by a recognisable prefix
(``glia-nats-``, ``glia-analysis-``), locked (``flock`` on the directory itself) by every
process that uses it and marked as Glia's with a :data:`MARKER` file, written once the lock is
held. Normally its owner removes it; when the owner was killed outright, a helper that outlives
it removes it (see :mod:`glia._reaper` and :mod:`glia._lifeline`), and otherwise the next Glia
process that creates a store reclaims it: a marked directory whose lock no live process holds
is stale. Directories without the marker (made by something else, or still being created) are
never touched.

``flock`` is available on Linux and macOS; where ``fcntl`` is missing nothing is reclaimed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover (Windows)
    fcntl = None  # type: ignore[assignment]

__all__ = ["MARKER", "PREFIXES", "TempStore", "lock_dir", "reclaim", "temp_store"]

MARKER = ".glia-store"
"""The file that marks a directory as a lockable Glia store (written after the lock is taken)."""
PREFIXES = ("glia-nats-", "glia-analysis-", "pymp-")
"""Names of the stores Glia makes in the temporary folder (``pymp-``: multiprocessing's)."""


@dataclass(frozen=True)
class TempStore:
    """A locked temporary directory; ``lock_fd`` holds the lock (pass it on to share it)."""

    path: Path
    lock_fd: int


def lock_dir(path: str | Path) -> int:
    """Lock the existing directory ``path`` for this process and mark it as a Glia store.

    Returns the descriptor holding the lock (not inherited by programs this process runs;
    pass it explicitly to share the lock). Close it to release the lock.
    """
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        Path(path, MARKER).touch()
    except BaseException:
        os.close(fd)
        raise
    return fd


def reclaim(
    prefixes: str | tuple[str, ...] = PREFIXES, root: str | Path | None = None
) -> list[Path]:
    """Remove the stale stores named ``<prefix>*`` in ``root`` (default: the temporary folder).

    Stale: marked, and its lock is free (the processes that held it are gone). Returns what was
    removed.
    """
    removed: list[Path] = []
    if fcntl is None:
        return removed
    base = Path(root) if root is not None else Path(tempfile.gettempdir())
    try:
        entries = list(os.scandir(base))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(prefixes) or not entry.is_dir(follow_symlinks=False):
            continue
        if not os.path.exists(os.path.join(entry.path, MARKER)):
            continue  # not ours, or its creator has not locked it yet
        try:
            fd = os.open(entry.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            continue  # someone else's (mode 0700), or gone
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # a live process holds it
        try:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
        finally:
            os.close(fd)
    return removed


@contextlib.contextmanager
def temp_store(prefix: str) -> Iterator[TempStore]:
    """A fresh, locked store ``<tmp>/<prefix>XXXXXXXX`` for the duration of the block.

    Stale stores (of any of Glia's :data:`PREFIXES`) are reclaimed first. The store is removed,
    and its lock released, when the block exits.
    """
    reclaim()
    path = tempfile.mkdtemp(prefix=prefix)
    try:
        fd = lock_dir(path)
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise
    try:
        yield TempStore(Path(path), fd)
    finally:
        shutil.rmtree(path, ignore_errors=True)
        os.close(fd)
