"""Calling a policy: whatever it raises becomes a :class:`DesignError` that says which policy,
in which call, where and when (a design's bug must never look like the simulator's)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, TypeVarTuple

from glia._errors import DesignError

__all__ = ["call_policy", "policy_error"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


def call_policy(
    role: str,
    name: str,
    now: float,
    fn: Callable[[*Ts], T],
    *args: *Ts,
    call: str = "",
    replica: int = -1,
) -> T:
    """``fn(*args)`` for the policy called ``name`` (a router, scheduler or autoscaler: its
    ``role``) at simulated time ``now``; ``call`` names the policy's method and ``replica``
    the replica it was called for, when the policy is one replica's. A
    :class:`DesignError` (a rule the policy broke) passes as it is; any other exception is
    wrapped in one that names the policy, the call and the time."""
    try:
        return fn(*args)
    except DesignError:
        raise
    except Exception as e:
        raise policy_error(role, name, now, e, call=call, replica=replica) from e


def policy_error(
    role: str, name: str, now: float, e: Exception, *, call: str = "", replica: int = -1
) -> DesignError:
    """The :class:`DesignError` that :func:`call_policy` raises for ``e`` (for a hot path that
    calls its policy inline); raise it ``from e``."""
    where = f" in {call}() on replica {replica}" if replica >= 0 else ""
    return DesignError(f"{role} {name!r} raised {type(e).__name__}{where} at t={now:.3f}s: {e}")
