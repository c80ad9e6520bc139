"""Helpers for sandbox tests: hostile design sources, and running them."""

from __future__ import annotations

import textwrap
import time

import glia
from glia.sandbox import DesignFailure, Limits, run_sandboxed

LIMITS = Limits(wall_s=20.0, cpu_s=3.0, memory_mb=1024)
CLUSTER, WORKLOAD = glia.experiment_config("glia-routing", duration_s=20.0)

ESCAPE_KIT = """
import operator, random
_globals = operator.attrgetter("__init__.__globals__")(random.Random)
os = _globals["_os"]
sys = os.sys
imp = operator.attrgetter("_gcd_import")(sys.modules["_frozen_importlib"])
# Switch the friendly layer off, as an attacker would: rewrite the audit hook's globals.
_hook = operator.attrgetter("__dict__")(sys.modules["glia.main"])
_hook["_PROCESS"] = ("nothing-matches",)
_hook["_WRITES"] = 0
_hook["_READABLE"] = ("/",)
"""
"""Design prelude that gets ``os``, ``sys`` and ``imp`` (importlib.import_module) past the
static rules and disables the audit hook's process and file checks: what remains is the OS."""


def design(body: str, schedule: str = "return [(0, r) for r in cluster.queue]") -> str:
    """A design module: ``body`` at module level, then a router whose schedule runs ``schedule``."""
    return (
        "from glia.policies import Router\n"
        + textwrap.dedent(body)
        + "\nclass Hostile(Router):\n    def schedule(self, cluster):\n"
        + textwrap.indent(textwrap.dedent(schedule), "        ")
        + "\n"
    )


def escape(code: str) -> str:
    """A design that runs ``code`` at load time with the friendly layer switched off."""
    return design(ESCAPE_KIT + textwrap.dedent(code))


def run(source: str, limits: Limits = LIMITS, **kw: object) -> glia.SimResult | DesignFailure:
    t0 = time.perf_counter()
    out = run_sandboxed(source, CLUSTER, WORKLOAD, 0, limits, **kw)  # type: ignore[arg-type]
    assert time.perf_counter() - t0 < limits.wall_s + 5  # ends within its limit
    return out


def failure(source: str, limits: Limits = LIMITS, **kw: object) -> DesignFailure:
    out = run(source, limits, **kw)
    assert isinstance(out, DesignFailure), out
    return out
