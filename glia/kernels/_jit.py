"""The one switch between numba-compiled kernels and their pure-Python source.

``GLIA_NO_JIT=1`` in the environment (read when a kernel is called) or ``jit=False`` at a call
site selects the Python function the kernel was compiled from, so both paths run the same code.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar, cast

from numba import njit

__all__ = ["jit_enabled", "kernel", "select"]

F = TypeVar("F", bound=Callable[..., Any])


def kernel(fn: F) -> F:
    """Compile ``fn`` with numba: no Python objects, GIL released, cached on disk."""
    return cast(F, njit(cache=True, nogil=True)(fn))


def jit_enabled() -> bool:
    """False when ``GLIA_NO_JIT`` is set to a true value."""
    return os.environ.get("GLIA_NO_JIT", "").strip().lower() not in {"1", "true", "yes", "on"}


def select(compiled: F, jit: bool | None = None) -> F:
    """The compiled kernel, or its Python source when JIT is off."""
    use = jit_enabled() if jit is None else jit
    if use:
        return compiled
    py: F = compiled.py_func  # type: ignore[attr-defined]
    return py
