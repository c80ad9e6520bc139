"""Scripted agents of the simpler search methods ``glia compare`` sets against Glia.

Each plays a seat in an ordinary design run (same tools, budget, bus, workers, checkpoints,
validation), as pydantic-ai ``FunctionModel`` s like the offline designer (:mod:`._offline`):

* :class:`CatalogueSearcher` is the researcher of the offline ``best-of-n``, ``evolve`` and
  ``random`` methods. It writes designs composed from the same mechanism catalogue as the
  offline designer, and reads nothing but the simulations' scores (no analysis of the
  per-request tables, no supervisor advice): ``"one-shot"`` samples one design a designer
  could write from the example alone (the example with one to three catalogue mechanisms
  changed at random), ``"random"`` samples the whole catalogue uniformly, ``"evolve"`` mutates
  (or crosses over) the parents its prompt names.
* :class:`PassiveSupervisor` is the supervisor of the ablation and of the feedback-free
  methods: it tells the researcher to go on, without a question, a recall or a push, and ends
  the context when a turn ran no simulation.
* :class:`EvolvePrompter` is the supervisor of ``evolve``, with any researcher: it picks
  parents from the context's population (its best designs so far) by tournament and writes
  the prompt that names them with their scores, in the FunSearch/OpenEvolve manner.

Every random choice is drawn from a generator seeded by the method's seed, the context and
the trial number, so a resumed run makes the same choices.
"""

from __future__ import annotations

import re
from functools import partial
from typing import Any, Literal

import msgspec
import numpy as np
from pydantic_ai.messages import ModelMessage, ModelRequest, UserPromptPart
from pydantic_ai.models.function import AgentInfo

from glia.policies import Mechanisms as RouterMechanisms
from glia.policies import ScalerMechanisms, SchedulerMechanisms

from ._bench import trial_cost
from ._offline import Seat, SeatedModel, Spec, _call, _read, _say, _source
from ._supervisor import END

__all__ = [
    "CATALOGUE",
    "CatalogueSearcher",
    "EvolvePrompter",
    "PassiveSupervisor",
    "SearchKind",
    "catalogue",
    "crossover",
    "mutate",
    "one_shot",
    "uniform",
]

SearchKind = Literal["one-shot", "random", "evolve"]

CATALOGUE: dict[type[Any], dict[str, tuple[Any, ...]]] = {
    RouterMechanisms: {
        "score": ("outstanding", "queued", "kv"),
        "order": ("arrival", "shortest-prompt"),
        "decode_ratio": (0.0, 0.3, 0.6, 1.0, 1.5),
        "admission": (False, True),
        "headroom": (0.0, 0.01, 0.02, 0.03, 0.05, 0.1, 0.15),
        "hold": (True, False),
        "affinity": (0.0, 0.1, 0.3, 0.5, 0.7),
        "slack": (1, 2, 4, 8, 16),
        "starve_s": (0.0, 30.0, 60.0, 120.0, 240.0, 480.0),
        "deadline_s": (0.0, 5.0, 10.0, 20.0, 30.0, 40.0, 60.0, 100.0),
    },
    SchedulerMechanisms: {
        "order": ("arrival", "shortest-prompt"),
        "aging": (0.0, 12.5, 25.0, 50.0, 100.0, 200.0, 400.0),
        "starve_s": (0.0, 30.0, 60.0, 120.0, 240.0, 480.0),
        "backfill": (False, True),
        "token_budget": (0, 512, 1024, 2048, 4096),
        "victim": ("youngest", "most-blocks"),
    },
    ScalerMechanisms: {
        "target": (16.0, 24.0, 32.0, 40.0, 48.0, 56.0, 64.0, 80.0),
        "window_s": (15.0, 30.0, 60.0, 120.0, 240.0),
        "boost": (1.0, 1.1, 1.25, 1.5),
        "down_delay_s": (0.0, 30.0, 60.0, 120.0, 300.0, 600.0),
        "trend": (False, True),
        "interval_s": (5.0, 15.0, 30.0),
    },
}
"""Each mechanism field's values: the grids the offline designer moves along (see
:mod:`._offline`), here as the space the catalogue methods sample."""

_PER_TURN = {"one-shot": 1, "random": 10, "evolve": 1}
"""Simulations a searcher runs before it reports (the turns only bound a model's requests)."""
_TRIES = 50
"""Draws a searcher makes to find a design it has not evaluated yet."""
POPULATION = 8
"""The evolve population: the context's best designs so far."""


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng([abs(k) for k in key])


_PREFIX_ONLY = ("affinity", "slack")
"""Router mechanisms that do nothing on a cluster without prefix caching (left out there, as
the offline designer leaves them out)."""


def catalogue(spec_type: type[Any], prefix_caching: bool = True) -> dict[str, tuple[Any, ...]]:
    """The mechanism fields of ``spec_type`` a search varies, with their values."""
    grid = CATALOGUE[spec_type]
    if spec_type is RouterMechanisms and not prefix_caching:
        return {f: v for f, v in grid.items() if f not in _PREFIX_ONLY}
    return grid


def uniform(spec_type: type[Any], rng: np.random.Generator, prefix_caching: bool = True) -> Spec:
    """A design drawn uniformly from the catalogue: every field at a random grid value."""
    grid = catalogue(spec_type, prefix_caching)
    spec: Spec = spec_type(**{f: g[int(rng.integers(len(g)))] for f, g in grid.items()})
    return spec


def one_shot(spec_type: type[Any], rng: np.random.Generator, prefix_caching: bool = True) -> Spec:
    """One design written from the example alone: the example (the catalogue's defaults, i.e.
    the baseline) with one to three of its mechanisms changed to random other values."""
    base: Spec = spec_type()
    return _change(base, rng, int(rng.integers(1, 4)), catalogue(spec_type, prefix_caching))


def mutate(parent: Spec, rng: np.random.Generator, prefix_caching: bool = True) -> Spec:
    """``parent`` with one mechanism changed: a numeric one to a neighbouring grid value, a
    categorical one to another value (and now and then a second change)."""
    grid = catalogue(type(parent), prefix_caching)
    return _change(parent, rng, 1 + int(rng.random() < 0.25), grid, neighbour=True)


def crossover(a: Spec, b: Spec, rng: np.random.Generator) -> Spec:
    """Each mechanism from parent ``a`` or parent ``b`` at random."""
    mixed = {f: getattr(a if rng.random() < 0.5 else b, f) for f in CATALOGUE[type(a)]}
    return msgspec.structs.replace(a, **mixed)


def _change(
    spec: Spec, rng: np.random.Generator, n: int, grid: dict[str, tuple[Any, ...]],
    neighbour: bool = False,
) -> Spec:  # fmt: skip
    names = list(grid)
    picked = rng.choice(len(names), size=min(n, len(names)), replace=False)
    changes: dict[str, Any] = {}
    for i in sorted(int(k) for k in picked):
        name, values = names[i], grid[names[i]]
        now = getattr(spec, name)
        here = values.index(now) if now in values else 0
        numeric = not isinstance(now, (str, bool))
        if neighbour and numeric:
            steps = [k for k in (here - 1, here + 1) if 0 <= k < len(values)]
            changes[name] = values[steps[int(rng.integers(len(steps)))]]
        else:
            others = [v for v in values if v != now]
            changes[name] = others[int(rng.integers(len(others)))]
    return msgspec.structs.replace(spec, **changes)


def _parents(messages: list[ModelMessage]) -> list[int]:
    """The trial numbers the last prompt names as parents (``parent: trial N`` lines)."""
    for msg in reversed(messages):
        if isinstance(msg, ModelRequest):
            for part in msg.parts:
                if isinstance(part, UserPromptPart) and isinstance(part.content, str):
                    return [int(n) for n in re.findall(r"^parent: trial (\d+)", part.content, re.M)]
    return []


def _searcher(
    kind: SearchKind, seed: int, seat: Seat, messages: list[ModelMessage], info: AgentInfo
) -> Any:
    st = _read(messages, seat)
    last = st.last
    if last is not None and last.tool_name == "write_file":
        path = last.args_as_dict()["path"]
        if path.startswith("designs/") and path not in {t.path for t in st.trials}:
            return _call("run_simulation", design_path=path, note=f"{kind} candidate")
    ok = [t for t in st.trials if t.value is not None and t.spec is not None]
    best = min(ok, key=lambda t: (t.value or 0.0, t.index)) if ok else None
    summary = (
        f"best so far: trial {best.index} ({best.spec.describe() if best.spec else ''}), "
        f"{st.label} {best.value:.3f}{st.unit}"
        if best
        else "no design has run successfully yet"
    )
    if st.left == 0:
        return _say(f"Final report ({kind} search, no simulations left): {summary}.")
    if st.turn_trials >= _PER_TURN[kind]:
        return _say(f"{kind} search: {len(st.trials)} design(s) evaluated; {summary}.")
    n = len(st.trials) + 1
    spec_type = st.task.mechanisms
    # Designs that differ only in mechanisms that are off (a head-room without admission)
    # are the same program: a searcher does not spend a simulation on one again.
    seen = {s.describe() for s in st.evaluated()}
    rng = _rng(seed, seat.context, n)
    spec: Spec | None = None
    for _ in range(_TRIES):
        if kind == "random":
            spec = uniform(spec_type, rng, seat.prefix_caching)
        elif kind == "one-shot":
            spec = one_shot(spec_type, rng, seat.prefix_caching)
        elif not st.trials:  # evolve starts from the example, as FunSearch does
            spec = spec_type()
        else:
            by_index = {t.index: t.spec for t in ok}
            parents = [s for i in _parents(messages) if (s := by_index.get(i)) is not None]
            if not parents:
                parents = [best.spec] if best and best.spec else [spec_type()]
            child = parents[0]
            if len(parents) > 1 and rng.random() < 0.3:
                child = crossover(parents[0], parents[1], rng)
            spec = mutate(child, rng, seat.prefix_caching)
        if spec.describe() not in seen:
            break
    assert spec is not None
    content = _source(st.task, spec, kind, n)
    return _call("write_file", path=f"designs/{n:02d}.py", content=content)


def _status_used(text: str) -> int | None:
    m = re.search(r"Status: (\d+) of \d+ simulations used", text)
    return int(m.group(1)) if m else None


def _prompts(messages: list[ModelMessage]) -> list[str]:
    return [
        p.content
        for m in messages
        if isinstance(m, ModelRequest)
        for p in m.parts
        if isinstance(p, UserPromptPart) and isinstance(p.content, str)
    ]


def _passive(seat: Seat, messages: list[ModelMessage], info: AgentInfo) -> Any:
    # The coordinator's status line says how many simulations the context has used; a turn
    # that added none means the researcher has stopped by itself.
    prompts = _prompts(messages)
    used = [u for p in prompts if (u := _status_used(p)) is not None]
    if len(used) >= 2 and used[-1] == used[-2]:
        return _say(f"No simulation in this turn: the context ends.\n{END}")
    return _say("Continue your research.")


def _evolve(seed: int, seat: Seat, messages: list[ModelMessage], info: AgentInfo) -> Any:
    trials = seat.trials()
    ok = sorted(
        (t for t in trials if t.mean_e2e_s is not None), key=lambda t: (trial_cost(t), t.index)
    )
    if not ok:
        return _say(
            "No design has run successfully yet. Write a new design from the example, save it "
            "under designs/, run it once with run_simulation and reply with one line."
        )
    population = ok[:POPULATION]
    rng = _rng(seed, seat.context, len(trials), 7)

    def tournament() -> int:
        a, b = (int(rng.integers(len(population))) for _ in range(2))
        return min(a, b)  # the population is sorted best first

    first = tournament()
    second = tournament()
    picks = [first] if second == first else [first, second]
    lines = [
        f"parent: trial {population[i].index} (file "
        f"{population[i].design_path.split('/', 1)[-1]}): cost {trial_cost(population[i]):.3f}"
        for i in picks
    ]
    return _say(
        f"Evolve step {len(trials) + 1}. Parents from the population of your best designs so "
        "far, with their costs (lower is better):\n"
        + "\n".join(lines)
        + "\nWrite one child design that changes the first parent (or combines the parents) to "
        "lower the cost, save it as a new file under designs/, run it once with run_simulation "
        "and reply with one line saying what you changed. No analysis, no other experiments."
    )


class CatalogueSearcher(SeatedModel):
    """The researcher of an offline catalogue method (``kind``; see the module docstring)."""

    def __init__(self, kind: SearchKind, seed: int, seat: Seat | None = None) -> None:
        seat = seat or Seat()
        super().__init__(partial(_searcher, kind, seed, seat), model_name=f"offline-{kind}-search")
        self.kind, self.seed, self.seat = kind, seed, seat

    def seated(self, seat: Seat) -> CatalogueSearcher:
        return CatalogueSearcher(self.kind, self.seed, seat)


class PassiveSupervisor(SeatedModel):
    """A supervisor that gives no feedback (see the module docstring)."""

    def __init__(self, seat: Seat | None = None) -> None:
        seat = seat or Seat()
        super().__init__(partial(_passive, seat), model_name="passive-supervisor")

    def seated(self, seat: Seat) -> PassiveSupervisor:
        return PassiveSupervisor(seat)


class EvolvePrompter(SeatedModel):
    """The evolve method's prompter (see the module docstring), seeded by ``seed``."""

    def __init__(self, seed: int, seat: Seat | None = None) -> None:
        seat = seat or Seat()
        super().__init__(partial(_evolve, seed, seat), model_name="evolve-prompter")
        self.seed = seed

    def seated(self, seat: Seat) -> EvolvePrompter:
        return EvolvePrompter(self.seed, seat)
