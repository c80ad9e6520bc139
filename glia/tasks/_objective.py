"""Routing objectives beyond the mean: a weighted sum of mean E2E, p99 E2E and mean slowdown.

The Glia paper's objective is the mean end-to-end latency alone, and a router that minimises it
can starve long prompts (shortest-prompt-first wins the mean and loses the tail). An
:class:`Objective` says what a routing design is scored on; it is written on the command line as
``mean``, ``p99``, ``slowdown`` or a ``+``-joined mix with optional weights, e.g.
``mean+p99:1,0.5`` (one weight per term, in order; without weights every term weighs 1).
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from glia._errors import InputError
from glia.sim import Summary

__all__ = ["OBJECTIVE_TERMS", "Objective", "parse_objective"]

OBJECTIVE_TERMS = ("mean", "p99", "slowdown")
"""The terms an objective may weigh, in the order its spec and cost list them."""

_EXAMPLE = "e.g. mean+p99:1,0.5"
_WORDS = {
    "mean": "the mean end-to-end latency",
    "p99": "the 99th-percentile E2E (s)",
    "slowdown": "the mean slowdown (each request's E2E over its latency alone on an idle replica)",
}
_SHORT = {"mean": "mean E2E (s)", "p99": "p99 E2E (s)", "slowdown": "mean slowdown"}


class Objective(msgspec.Struct, frozen=True, kw_only=True):
    """Weights of mean E2E, p99 E2E and mean slowdown in a routing cost (lower is better).

    The default is the Glia paper's objective: the mean E2E alone.
    """

    mean: float = 1.0
    p99: float = 0.0
    slowdown: float = 0.0

    def _terms(self) -> list[tuple[str, float]]:
        return [(t, w) for t in OBJECTIVE_TERMS if (w := getattr(self, t)) > 0]

    @property
    def spec(self) -> str:
        """The objective as written on the command line (``parse_objective(o.spec) == o``)."""
        terms = self._terms()
        names = "+".join(t for t, _ in terms)
        if all(w == 1.0 for _, w in terms):
            return names
        return f"{names}:" + ",".join(f"{w:g}" for _, w in terms)

    @property
    def is_mean(self) -> bool:
        """The objective is the mean E2E alone (the paper's, and the default)."""
        return self == Objective()

    @property
    def in_seconds(self) -> bool:
        """The cost is a latency in seconds (no slowdown term), so reports may show seconds."""
        return self.slowdown == 0

    @property
    def text(self) -> str:
        """The objective in words, for briefs and reports (lower case, no full stop)."""
        terms = self._terms()
        if len(terms) == 1:
            return f"minimise {_WORDS[terms[0][0]]}"
        return "minimise " + " + ".join(f"{w:g} x {_SHORT[t]}" for t, w in terms)

    def cost(self, s: Summary) -> float:
        """The objective's value for one simulation."""
        return self.mean * s.mean_e2e_s + self.p99 * s.p99_e2e_s + self.slowdown * s.mean_slowdown

    def pooled_cost(self, summaries: Sequence[Summary]) -> float:
        """The objective over several seeds. Means are pooled over every request (seeds
        weighted by their requests); a percentile cannot be pooled from summaries, so the
        p99 term is the request-weighted mean of each seed's p99."""
        n = sum(s.num_requests for s in summaries)

        def pooled(field: str) -> float:
            total: float = sum(getattr(s, field) * s.num_requests for s in summaries)
            return total / n

        # Terms with weight 0 are skipped, so the mean objective is exactly the pooled mean.
        cost = 0.0
        for term, weight in self._terms():
            field = {"mean": "mean_e2e_s", "p99": "p99_e2e_s", "slowdown": "mean_slowdown"}[term]
            cost += weight * pooled(field)  # 1.0 * x and 0.0 + x are exact
        return cost


def parse_objective(spec: str) -> Objective:
    """The objective written as ``spec`` (see the module docstring); a bad one raises an
    :class:`~glia.InputError` naming the bad part and the fix."""
    names_text, sep, weights_text = spec.strip().partition(":")
    names = [n.strip() for n in names_text.split("+")]
    for name in names:
        if name not in OBJECTIVE_TERMS:
            raise InputError(
                f"unknown objective term {name!r} in {spec!r}: join mean, p99 and slowdown "
                f"with '+' ({_EXAMPLE})"
            )
    if len(set(names)) != len(names):
        raise InputError(f"objective {spec!r} names a term twice: name each term once ({_EXAMPLE})")
    weights = [1.0] * len(names)
    if sep:
        parts = [p.strip() for p in weights_text.split(",")]
        if len(parts) != len(names):
            raise InputError(
                f"objective {spec!r} has {len(parts)} weight(s) for {len(names)} term(s): give "
                f"one weight per term, in order ({_EXAMPLE})"
            )
        for i, part in enumerate(parts):
            try:
                w = float(part)
            except ValueError:
                w = -1.0
            if not w > 0 or w == float("inf"):
                raise InputError(
                    f"bad weight {part!r} in objective {spec!r}: weights are positive finite "
                    f"numbers ({_EXAMPLE})"
                )
            weights[i] = w
    given = dict(zip(names, weights, strict=True))
    return Objective(**{t: given.get(t, 0.0) for t in OBJECTIVE_TERMS})
