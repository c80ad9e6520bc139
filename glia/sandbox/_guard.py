"""Inside the sandbox process: what a design may not do.

Two layers, installed after the simulator is loaded and before the design's code runs:

* the design's module gets its own ``__import__``, which admits only an allow-list of
  computation modules (so ``import os`` fails even though ``os`` is already loaded);
* an audit hook, which cannot be removed, refuses for the rest of the process's life: creating
  processes, sockets, loading native code, changing or writing files, reading files outside the
  Python installation, and loading any new module outside the allow-list by any route.

Breaking a rule raises :class:`Forbidden` (:class:`ForbiddenImport` for imports), naming the
operation; the run ends as a ``forbidden`` or ``import`` failure.
"""

from __future__ import annotations

import builtins
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["ALLOWED_IMPORTS", "Forbidden", "ForbiddenImport", "arm", "design_builtins"]

ALLOWED_IMPORTS = frozenset(
    {
        "math", "cmath", "random", "statistics", "itertools", "functools", "operator",
        "collections", "heapq", "bisect", "dataclasses", "enum", "typing", "abc", "numbers",
        "decimal", "fractions", "copy", "string", "re", "time", "numpy", "glia", "__future__",
    }
)  # fmt: skip
"""Top-level modules a design may import."""

_PROCESS = ("os.system", "os.fork", "os.forkpty", "os.posix_spawn", "os.exec", "os.spawn",
            "subprocess.Popen", "pty.spawn", "os.kill", "os.killpg")  # fmt: skip
_NETWORK = ("socket.__new__", "socket.connect", "socket.bind", "socket.getaddrinfo")
_NATIVE = ("ctypes.dlopen", "ctypes.dlsym")
_FILES = ("os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.link",
          "os.symlink", "os.truncate", "shutil.rmtree", "os.listdir", "os.scandir",
          "os.chdir", "os.putenv", "os.unsetenv")  # fmt: skip


class Forbidden(Exception):
    """The design attempted an operation the sandbox refuses."""


class ForbiddenImport(Forbidden):
    """The design imported a module outside the allow-list."""


def _refuse_import(name: str) -> ForbiddenImport:
    allowed = ", ".join(sorted(m for m in ALLOWED_IMPORTS if m != "__future__"))
    return ForbiddenImport(f"import of {name!r} is not allowed: a design may import {allowed}")


def design_builtins() -> dict[str, Any]:
    """The builtins a design's module runs with: an ``__import__`` that checks the allow-list."""
    real: Callable[..., Any] = builtins.__import__

    def guarded_import(
        name: str,
        globals: Mapping[str, object] | None = None,
        locals: Mapping[str, object] | None = None,
        fromlist: Sequence[str] = (),
        level: int = 0,
    ) -> Any:
        private = any(part.startswith("_") for part in name.split(".")[1:])
        if level != 0 or private or name.partition(".")[0] not in ALLOWED_IMPORTS:
            raise _refuse_import(name if level == 0 else "." * level + name)
        return real(name, globals, locals, fromlist, level)

    table = dict(vars(builtins))
    table["__import__"] = guarded_import
    return table


def arm(readable_roots: Sequence[str]) -> None:
    """Install the audit hook for the rest of this process's life."""
    roots = tuple(r.rstrip("/") + "/" for r in readable_roots)

    def hook(event: str, args: tuple[object, ...]) -> None:
        if event == "import":
            name = str(args[0])
            if name.partition(".")[0] not in ALLOWED_IMPORTS:
                raise _refuse_import(name)
        elif event.startswith(_PROCESS):
            raise Forbidden(f"{event} is not allowed: a design may not start processes")
        elif event in _NETWORK:
            raise Forbidden(f"{event} is not allowed: a design has no network access")
        elif event in _NATIVE:
            raise Forbidden(f"{event} is not allowed: a design may not load native code")
        elif event in _FILES:
            raise Forbidden(f"{event} is not allowed: a design has no file-system access")
        elif event == "open":
            path, mode = args[0], args[1]
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(mode, int) and bool(mode & 0o3)
            )
            where = str(path)
            if writing or not isinstance(path, str) or not where.startswith(roots):
                raise Forbidden(f"open({where!r}) is not allowed: a design has no file access")

    sys.addaudithook(hook)
