"""Static rules a design's source must follow, checked before it runs.

A friendly first layer, not the boundary: the design runs in a process that holds nothing
worth reaching (see :mod:`glia.sandbox`), so these rules only turn the usual attempts into a
clear ``forbidden`` message before anything runs. A design may not read private attributes
(``x._name``) of anything but its own ``self``/``cls``, may not use the attributes that lead
from an object to interpreter internals (``__class__``, ``__globals__``, frames, ...), and may
not call the introspection and dynamic-code builtins.
"""

from __future__ import annotations

import ast

__all__ = ["FORBIDDEN_BUILTINS", "violations"]

FORBIDDEN_BUILTINS = frozenset(
    {
        "getattr", "setattr", "delattr", "vars", "globals", "locals", "eval", "exec",
        "compile", "__import__", "open", "breakpoint", "input", "help", "exit", "quit",
        "memoryview",
    }
)  # fmt: skip
_OWN = frozenset({"self", "cls"})
_INTROSPECTION = frozenset(
    {
        "__class__", "__bases__", "__base__", "__mro__", "__subclasses__", "__dict__",
        "__globals__", "__builtins__", "__code__", "__closure__", "__func__", "__self__",
        "__module__", "__getattribute__", "__getattr__", "__setattr__", "__delattr__",
        "__reduce__", "__reduce_ex__", "__loader__", "__spec__", "__import__", "__traceback__",
        "__objclass__", "__wrapped__", "__init_subclass__", "__class_getitem__", "__slots__",
        "__qualname__", "__annotations__", "__kwdefaults__", "__defaults__", "__weakref__",
        "tb_frame", "tb_next", "f_globals", "f_locals", "f_builtins", "f_back", "f_code",
        "gi_frame", "gi_code", "cr_frame", "cr_code", "ag_frame", "ag_code", "co_consts",
        "co_code", "co_names",
    }
)  # fmt: skip
"""Attributes that lead from an object to interpreter internals."""


def violations(tree: ast.AST) -> list[str]:
    """Each rule the design's syntax tree breaks, as ``line N: what; what to do``."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and (
            node.attr in _INTROSPECTION or node.attr.startswith("_")
        ):
            dunder = node.attr.startswith("__") and node.attr.endswith("__")
            own = isinstance(node.value, ast.Name) and node.value.id in _OWN
            if node.attr in _INTROSPECTION:
                out.append(
                    f"line {node.lineno}: attribute {node.attr!r} is off limits to designs "
                    "(introspection)"
                )
            elif not dunder and not own:
                out.append(
                    f"line {node.lineno}: private attribute {node.attr!r} of another object "
                    "is off limits: use the public fields of the cluster view"
                )
        elif isinstance(node, ast.Name) and node.id in FORBIDDEN_BUILTINS:
            out.append(f"line {node.lineno}: {node.id!r} is off limits to designs")
    return sorted(set(out), key=lambda s: int(s.split(":")[0].removeprefix("line ")))
