"""The search methods ``glia compare`` runs, behind one small interface.

A :class:`Method` says how to seat a design run: which researcher and supervisor, and how many
research contexts share the budget. Every method then runs as an ordinary design run (see
:func:`glia.design_async`): the same tools, simulation budget, bus, workers, checkpoints,
held-out validation and report. With ``model="offline"`` no language model is involved:

* ``glia``: the offline designer (researcher + supervisor, one context);
* ``glia-mcg``: the same with :data:`MCG_CONTEXTS` parallel contexts sharing the budget, and
  ``glia-mcg-sequential`` with them one after another (each from the best design so far);
* ``no-supervisor``: the offline researcher with a supervisor that only says "continue";
* ``best-of-n``: ``budget`` independent contexts of one simulation each, each writing one
  design from the example (offline: one to three catalogue mechanisms changed at random);
* ``evolve``: a population of the context's best designs; each step a prompt names two
  tournament-picked parents and their costs, the researcher writes and simulates one child
  (offline: a mutation or crossover of the parents over the catalogue);
* ``random``: uniform samples of the mechanism catalogue (model-independent: the floor).

The offline catalogue methods read nothing but their designs' scores: no analysis of the
per-request tables and no supervisor advice (see :mod:`glia.actors._search`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pydantic_ai.models import Model

from glia._errors import InputError, unknown_name
from glia.actors._search import CatalogueSearcher, EvolvePrompter, PassiveSupervisor

__all__ = ["MCG_CONTEXTS", "METHODS", "Method", "MethodSetup", "parse_methods"]

MCG_CONTEXTS = 2
"""Parallel research contexts of ``glia-mcg``."""


@dataclass(frozen=True)
class MethodSetup:
    """How one design run of a method is seated: its researcher and supervisor (a model name,
    ``"offline"``, or a pydantic-ai ``Model``; supervisor ``None``: the researcher's model) and
    the research contexts that share its budget."""

    researcher: str | Model
    supervisor: str | Model | None = None
    contexts: int = 1
    sequential: bool = False


@dataclass(frozen=True)
class Method:
    """A search method: ``setup(model, seed, budget)`` seats one of its design runs (``seed``
    drives its random choices, if any)."""

    name: str
    description: str
    setup: Callable[[str | Model, int, int], MethodSetup]


def _offline(model: str | Model) -> bool:
    return isinstance(model, str) and model == "offline"


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            "glia",
            "researcher + supervisor, one context (offline: the offline designer)",
            lambda model, seed, budget: MethodSetup(model),
        ),
        Method(
            "glia-mcg",
            f"researcher + supervisor, {MCG_CONTEXTS} parallel contexts sharing the budget",
            lambda model, seed, budget: MethodSetup(model, contexts=min(MCG_CONTEXTS, budget)),
        ),
        Method(
            "glia-mcg-sequential",
            f"researcher + supervisor, {MCG_CONTEXTS} contexts one after another, each starting "
            "from the best design so far",
            lambda model, seed, budget: MethodSetup(
                model, contexts=min(MCG_CONTEXTS, budget), sequential=True
            ),
        ),
        Method(
            "no-supervisor",
            "the researcher alone: a supervisor that only says 'continue' (the ablation)",
            lambda model, seed, budget: MethodSetup(model, PassiveSupervisor()),
        ),
        Method(
            "best-of-n",
            "N independent one-shot designs from the brief and the example, no feedback",
            lambda model, seed, budget: MethodSetup(
                CatalogueSearcher("one-shot", seed) if _offline(model) else model,
                PassiveSupervisor(),
                contexts=budget,
            ),
        ),
        Method(
            "evolve",
            "a population; parents and their costs in the prompt; mutate, evaluate, keep the best",
            lambda model, seed, budget: MethodSetup(
                CatalogueSearcher("evolve", seed) if _offline(model) else model,
                EvolvePrompter(seed),
            ),
        ),
        Method(
            "random",
            "uniform random samples of the offline mechanism catalogue (any --model: the floor)",
            lambda model, seed, budget: MethodSetup(
                CatalogueSearcher("random", seed), PassiveSupervisor()
            ),
        ),
    )
}
"""The methods by name, in the order reports list them."""


def parse_methods(spec: str | list[str]) -> list[str]:
    """Method names from ``"glia,best-of-n"`` (or a list); unknown or repeated names raise."""
    names = [n.strip() for n in spec.split(",")] if isinstance(spec, str) else list(spec)
    names = [n for n in names if n]
    if not names:
        raise InputError(f"no methods given: name one or more of {', '.join(METHODS)}")
    for n in names:
        if n not in METHODS:
            raise unknown_name("method", n, METHODS)
    if len(set(names)) != len(names):
        raise InputError(f"methods {','.join(names)} name a method twice: name each once")
    return names
