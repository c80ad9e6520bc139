"""The packages of ``glia`` form layers that only import downwards, with no import cycles.

Each top-level module or package of ``glia`` is a *unit*; :data:`LAYERS` lists them from the
bottom up. A unit may import from units on its own layer or below, never above, and the
imports between units must not form a cycle. Every import counts, including those inside
functions and under ``TYPE_CHECKING`` (a cycle that only type checkers see is still a cycle
for readers). ``from glia import name`` imports the unit ``name`` when it is a module or
package of ``glia``, else the package's face (``__init__``).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path

GLIA = Path(__file__).resolve().parents[1] / "glia"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("_atomic", "_errors", "_logging", "_tempstore"),
    ("_reaper",),
    ("_lifeline",),
    ("kernels",),
    ("sim",),
    ("policies",),
    ("tasks",),
    ("presets", "report"),
    ("experiment",),
    ("sandbox", "engines"),
    ("_batch",),
    ("bus",),
    ("_client",),
    ("runtime",),
    ("actors",),
    ("_design",),
    ("compare",),
    ("dashboard",),
    ("api",),
    ("__init__",),
    ("cli",),
    ("__main__",),
)
"""Units from the bottom up (see the module docstring)."""

LEVEL = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}


def sources(root: Path = GLIA) -> dict[str, str]:
    """Dotted module name -> source, for every module of the package at ``root``."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = ("glia", *path.relative_to(root).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path.read_text(encoding="utf-8")
    return out


def unit_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports(modules: Mapping[str, str]) -> dict[str, set[str]]:
    """Unit -> the other units its modules import."""
    units = {unit_of(m) for m in modules}
    edges: dict[str, set[str]] = {u: set() for u in units}
    for module, source in modules.items():
        is_pkg = any(m.startswith(module + ".") for m in modules)
        package = module if is_pkg else module.rpartition(".")[0]
        here = unit_of(module)
        for node in ast.walk(ast.parse(source)):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, *([node.module] if node.module else [])])
                if base == "glia":
                    targets = [
                        f"glia.{a.name}" if f"glia.{a.name}" in modules else "glia"
                        for a in node.names
                    ]
                else:
                    targets = [base]
            for target in targets:
                if target == "glia" or target.startswith("glia."):
                    there = unit_of(target)
                    if there != here:
                        edges[here].add(there)
    return edges


def violations(modules: Mapping[str, str]) -> list[str]:
    """What breaks the layering: unknown units, upward imports and cycles."""
    edges = imports(modules)
    out = [f"{u}: not in LAYERS (place it)" for u in sorted(edges) if u not in LEVEL]
    for u in sorted(edges):
        for v in sorted(edges[u]):
            if u in LEVEL and v in LEVEL and LEVEL[v] > LEVEL[u]:
                out.append(f"{u} imports {v}, which is above it")
    # A cycle: some unit reaches itself.
    for start in sorted(edges):
        seen: set[str] = set()
        todo = list(edges[start])
        while todo:
            v = todo.pop()
            if v == start:
                out.append(f"{start} is in an import cycle")
                break
            if v not in seen:
                seen.add(v)
                todo.extend(edges.get(v, ()))
    return out


def test_glia_imports_only_point_down_and_never_in_a_circle() -> None:
    assert violations(sources()) == []


def test_a_planted_upward_import_or_cycle_is_caught() -> None:
    modules = sources()
    planted = {**modules, "glia.sim._planted": "from glia.bus import NatsBus\n"}
    found = violations(planted)
    # The upward import, then every unit on the cycle it closes (sim -> bus -> ... -> sim).
    assert found[0] == "sim imports bus, which is above it"
    assert {"sim is in an import cycle", "bus is in an import cycle"} <= set(found[1:])
    assert all(v.endswith(" is in an import cycle") for v in found[1:])
    relative = {**modules, "glia.kernels._planted": "from ..sim import Trace\n"}
    assert violations(relative) == [
        "kernels imports sim, which is above it",
        "kernels is in an import cycle",
        "sim is in an import cycle",
    ]
    unplaced = {**modules, "glia._new": "import glia.sim\n"}
    assert violations(unplaced) == ["_new: not in LAYERS (place it)"]
