"""Turning a router given by name, class, instance or source file into a Router."""

from __future__ import annotations

import inspect
import itertools
import sys
from pathlib import Path
from types import ModuleType

from glia._errors import DesignError, InputError, unknown_name

from ._baselines import BASELINES
from ._router import Router

__all__ = ["RouterSpec", "load_design", "load_design_source", "resolve_router"]

RouterSpec = str | Path | type[Router] | Router
"""A baseline name, a ``.py`` design file, a :class:`Router` subclass or an instance."""

_module_ids = itertools.count()


def load_design(path: str | Path) -> type[Router]:
    """Import a design file in this process and return the one Router subclass it defines.

    The design runs with this process's privileges: use it for trusted code only (the sandbox
    runs untrusted designs in a separate, resource-limited process).
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"design file {str(p)!r} does not exist: give the path of a .py file")
    try:
        source = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"design file {str(p)!r} cannot be read: {e}") from None
    return load_design_source(source, str(p))


def load_design_source(source: str, filename: str = "<design>") -> type[Router]:
    """Execute design source code in this process; return the one Router subclass it defines."""
    name = f"glia_design_{next(_module_ids)}"
    module = ModuleType(name)
    module.__file__ = filename
    try:
        code = compile(source, filename, "exec")
    except SyntaxError as e:
        raise DesignError(f"{filename}:{e.lineno}: syntax error: {e.msg}") from e
    sys.modules[name] = module  # dataclasses and pickling look the module up while it runs
    try:
        exec(code, module.__dict__)
    except Exception as e:
        raise DesignError(f"{filename}: importing the design raised {type(e).__name__}: {e}") from e
    finally:
        sys.modules.pop(name, None)
    return _only_router(module, Path(filename))


def _only_router(module: ModuleType, path: Path) -> type[Router]:
    found = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and issubclass(obj, Router)
        and obj is not Router
        and obj.__module__ == module.__name__
    ]
    if len(found) != 1:
        names = ", ".join(c.__name__ for c in found) or "none"
        raise DesignError(
            f"{path}: a design must define exactly one subclass of glia.policies.Router "
            f"(found {names})"
        )
    return found[0]


def baseline_router(name: str) -> Router:
    """A fresh baseline router by name (case-insensitive); never a file. What crosses a
    process or machine boundary names routers this way: design code travels as source and
    runs only in the sandbox."""
    cls = BASELINES.get(name.lower())
    if cls is None:
        raise unknown_name(
            "router", name, BASELINES, hint="give a design file with --design (or as design_source)"
        )
    return cls()


def resolve_router(spec: RouterSpec) -> Router:
    """A fresh Router from a baseline name, a ``.py`` file, a Router subclass or an instance."""
    if isinstance(spec, Router):
        return spec
    if inspect.isclass(spec) and issubclass(spec, Router):
        return spec()
    if isinstance(spec, Path) or (isinstance(spec, str) and spec.endswith(".py")):
        return load_design(spec)()
    if isinstance(spec, str):
        cls = BASELINES.get(spec.lower())
        if cls is None:
            raise unknown_name("router", spec, BASELINES, hint="or give a .py design file")
        return cls()
    raise InputError(
        f"router {spec!r} is a {type(spec).__name__}: give a baseline name, a .py design file, "
        "a Router subclass or an instance"
    )
