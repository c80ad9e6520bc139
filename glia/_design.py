"""``glia.design``: run the agents on a design task, from Python or from ``glia design``.

Everything that can be wrong with the request (task, preset, model, key, budget, output
directory) is checked before any model is called or any simulation is queued.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import numpy as np
from pydantic_ai.models import Model

from glia._client import Client, connect, new_run_id
from glia._errors import InputError, unknown_name
from glia.actors._checkpoint import Checkpoint, DesignConfig, load_checkpoint, restore_files
from glia.actors._coordinator import Coordinator, new_checkpoint
from glia.actors._lab import Lab
from glia.actors._models import resolve_models
from glia.actors._offline import OFFLINE_LABEL
from glia.bus import Event
from glia.experiment import Limits, experiment_config
from glia.presets import PRESETS, for_task
from glia.report import Budget, RunRecord
from glia.report._records import StopKind
from glia.runtime import local_cluster

__all__ = ["TASKS", "DesignRun", "DesignStop", "design", "design_async"]

from glia.tasks import DEFAULT_TASK, TASKS, parse_objective, task_for


@dataclass(frozen=True)
class DesignRun:
    """The outcome of a design run (everything is also in ``run_dir``)."""

    run_id: str
    run_dir: Path
    record: RunRecord

    @property
    def best_design_path(self) -> Path | None:
        best = self.record.best
        return self.run_dir / best.design_path if best else None

    @property
    def best_mean_e2e_s(self) -> float | None:
        """The best design's mean E2E on held-out seeds (on the search seeds if the run
        stopped before validation)."""
        v = self.record.validation
        if v and "design" in v[0].mean_e2e_s:
            return v[0].mean_e2e_s["design"]
        best = self.record.best
        return best.mean_e2e_s if best else None

    @property
    def baselines(self) -> dict[str, float]:
        """Every baseline's mean E2E on the same seeds as :attr:`best_mean_e2e_s`."""
        v = self.record.validation
        if v:
            return {k: e for k, e in v[0].mean_e2e_s.items() if k != "design"}
        return dict(self.record.baselines)

    @property
    def best_cost(self) -> float | None:
        """The best design's objective (see :mod:`glia.tasks`), like :attr:`best_mean_e2e_s`."""
        v = self.record.validation
        if v and "design" in v[0].cost:
            return v[0].cost["design"]
        best = self.record.best
        return best.cost if best else None

    @property
    def baseline_costs(self) -> dict[str, float]:
        """Every baseline's objective on the same seeds as :attr:`best_cost`."""
        v = self.record.validation
        if v and v[0].cost:
            return {k: c for k, c in v[0].cost.items() if k != "design"}
        return dict(self.record.baseline_costs)

    @property
    def simulations_used(self) -> int:
        return len(self.record.trials)

    @property
    def report_path(self) -> Path | None:
        rp = self.record.report_path
        return self.run_dir / rp if rp else None

    def summary(self) -> dict[str, Any]:
        """The JSON object ``glia design --json`` prints."""
        return {
            "run_id": self.run_id,
            "status": self.record.status,
            "stop_reason": self.record.stop_reason,
            "stop_kind": self.record.stop_kind,
            "best_design_path": str(self.best_design_path) if self.best_design_path else None,
            "best_mean_e2e_s": self.best_mean_e2e_s,
            "baselines": self.baselines,
            "task": self.record.task,
            "objective": self.record.objective,
            "best_cost": self.best_cost,
            "baseline_costs": self.baseline_costs,
            "simulations_used": self.simulations_used,
            "cost_usd": self.record.cost_usd,
            "report_path": str(self.report_path) if self.report_path else None,
        }


class DesignStop:
    """A handle to stop a design run early from outside it (a signal handler, a UI): call it
    with the reason. The run's search is cancelled, everything recorded is kept, validation is
    skipped, the report is written and the run stays resumable (its status is
    ``interrupted``). Create it inside the event loop that runs the design."""

    def __init__(self) -> None:
        self.reason = ""
        self._event = anyio.Event()

    def __call__(self, reason: str = "stopped by the caller") -> None:
        self.reason = self.reason or reason
        self._event.set()

    async def wait(self) -> str:
        """Wait until the stop is asked for; returns its reason."""
        await self._event.wait()
        return self.reason


EXIT_CODES: dict[StopKind, int] = {"provider": 3, "model": 4}
"""``glia design``'s exit status per way a run ends (0 for the rest; an interrupted run exits
with 128 + the signal's number, 2 is bad input)."""


def design(**kwargs: Any) -> DesignRun:
    """Run a design task to its end; the arguments are those of :func:`design_async`."""
    result: list[DesignRun] = []

    async def main() -> None:
        result.append(await design_async(**kwargs))

    anyio.run(main)
    return result[0]


async def design_async(
    task: str = DEFAULT_TASK.name,
    *,
    preset: str | None = None,
    model: str | Model = "offline",
    supervisor_model: str | Model | None = None,
    base_url: str | None = None,
    budget: int | Budget = 15,
    contexts: int = 1,
    sequential: bool = False,
    out: str | Path = "glia-runs",
    nats: str | None = None,
    creds: str | None = None,
    workers: int | None = None,
    resume: str | None = None,
    search_seeds: tuple[int, ...] | None = None,
    holdout_seeds: tuple[int, ...] | None = None,
    seeds: int = 5,
    second_workload: str | None = None,
    settings: dict[str, Any] | None = None,
    on_event: Callable[[Event], None] | None = None,
    client: Client | None = None,
    stop: DesignStop | None = None,
    trust_design: bool = False,
    objective: str = "mean",
    gate: bool = False,
) -> DesignRun:
    """Let the agents design a ``task`` policy on ``preset`` within ``budget`` simulations.

    ``model`` is ``"offline"`` (the deterministic non-LLM designer: no key, no network), any
    pydantic-ai model string, or a pydantic-ai ``Model`` object (e.g. a ``FunctionModel``;
    give it again on resume); ``base_url`` serves a named model from an OpenAI-compatible
    server (vLLM, Ollama, llama.cpp). With ``contexts`` > 1 several research contexts share
    the budget, in parallel or ``sequential``.
    Experiments run on the workers of the NATS server at ``nats``, or on a private server and
    local workers (``workers`` processes) whose state lives in the run directory
    ``out/<run id>``. ``resume`` (a run directory or run id) continues a run that was
    interrupted. Each simulation evaluates a design on ``search_seeds``; the best design and
    every baseline are compared on ``holdout_seeds`` of the preset's workload and of
    ``second_workload`` (a preset name); ``settings`` override single fields of the preset's
    cluster and workload (e.g. ``{"qps": 9.0}``, see :func:`glia.experiment_config`).
    Seeds not given are drawn (``seeds`` of each) from a secret made for this run, so that no
    design can rebuild the workload it is judged on; they are written to ``run.json`` when the
    run ends, for reproduction. ``on_event`` sees every event the run publishes; ``client``
    uses an existing
    connection instead of ``nats``; ``stop`` ends the run early when called (see
    :class:`DesignStop`). ``trust_design`` lets the local workers run designs without the
    OS sandbox where it cannot be set up (see :mod:`glia.sandbox`). ``objective`` is what a
    routing design is scored on: ``mean`` (the paper's), ``p99``, ``slowdown`` or a weighted
    mix such as ``mean+p99:1,0.5`` (see :func:`glia.tasks.parse_objective`); held-out
    validation shows mean and p99 E2E and the mean slowdown whatever it is. With ``gate``,
    the run waits before held-out validation until a person approves the chosen design or
    picks another trial (:meth:`glia.Client.steer`, ``glia steer`` or the dashboard); the run
    can be steered meanwhile too (notes to the supervisor, pause, resume, stop).
    """
    # Absolute from here on: workspaces resolve their paths, and results are stored relative
    # to the run directory, so a relative --out must not reach them as it is.
    out = Path(out).expanduser().resolve()
    cp: Checkpoint | None = None
    if resume is not None:
        run_dir, cp_data = await _find_run(resume, out, nats, creds, client)
        cp = load_checkpoint(cp_data, resume)
        restore_files(cp, run_dir)  # when resuming from the bus on another machine
        config = cp.config
    else:
        b = budget if isinstance(budget, Budget) else Budget(simulations=budget)
        drawn = secret_seeds(2 * seeds)
        config = DesignConfig(
            task=task, model=_name(model), base_url=base_url,
            preset=preset or (TASKS[task].preset if task in TASKS else "glia-routing"),
            supervisor_model=None if supervisor_model is None else _name(supervisor_model),
            budget=b, contexts=contexts, sequential=sequential,
            search_seeds=tuple(search_seeds) if search_seeds is not None else drawn[:seeds],
            holdout_seeds=tuple(holdout_seeds) if holdout_seeds is not None else drawn[seeds:],
            second_workload=second_workload, settings=dict(settings or {}),
            secret_seeds=search_seeds is None or holdout_seeds is None,
            objective=parse_objective(objective).spec, gate=gate,
        )  # fmt: skip
        _check(config)
    # An unknown model or a missing key fails here, before anything is created.
    researcher = _model(model, config.model, config.base_url)
    supervisor = _model(supervisor_model or model, _supervisor_name(config),
                        config.base_url)  # fmt: skip
    if cp is None:
        run_id = new_run_id()
        run_dir = _make_run_dir(out, run_id)
        record = RunRecord(
            run_id=run_id, task=task, preset=config.preset, model=_label(config.model),
            supervisor_model=_label(_supervisor_name(config)), contexts=contexts,
            sequential=sequential, budget=config.budget, search_seeds=list(config.search_seeds),
            started_at=time.time(), objective=config.objective,
        )  # fmt: skip
        cp = new_checkpoint(config, record)
    run_dir.mkdir(parents=True, exist_ok=True)
    async with _client(client, nats, creds, run_dir, workers, trust_design) as c:

        async def publish(ev: Event) -> None:
            await c.bus.publish_event(ev)
            if on_event is not None:
                on_event(ev)

        coordinator = Coordinator(
            cp, run_dir, Lab(c, cp.record.run_id, run_dir, hide_seeds=cp.config.secret_seeds),
            publish,
            researcher=researcher, supervisor=supervisor,
        )  # fmt: skip
        async with AsyncExitStack() as models:  # closes the providers' HTTP clients
            for m in {id(researcher): researcher, id(supervisor): supervisor}.values():
                await models.enter_async_context(m)
            async with anyio.create_task_group() as tg:
                if stop is not None:

                    async def relay(stop: DesignStop) -> None:
                        coordinator.interrupt(await stop.wait())

                    tg.start_soon(relay, stop)
                record = await coordinator.run()
                tg.cancel_scope.cancel()
    return DesignRun(record.run_id, run_dir, record)


def secret_seeds(n: int) -> tuple[int, ...]:
    """``n`` seeds drawn from a fresh 128-bit secret (non-negative, below 2**63)."""
    if n < 1:
        raise InputError(f"seeds is {n}: give at least 1 seed per set")
    state = np.random.SeedSequence(secrets.randbits(128)).generate_state(n, dtype=np.uint64)
    return tuple(int(x) >> 1 for x in state)


def _name(model: str | Model) -> str:
    return model if isinstance(model, str) else model.model_name


def _label(name: str) -> str:
    return OFFLINE_LABEL if name.startswith("offline") else name


def _model(given: str | Model | None, name: str, base_url: str | None) -> Model:
    """A model given as an object is used as it is (e.g. a pydantic-ai ``FunctionModel``);
    a name is resolved (on resume, names come from the checkpoint)."""
    return given if isinstance(given, Model) else resolve_models(name, base_url)


def _supervisor_name(config: DesignConfig) -> str:
    name = config.supervisor_model or config.model
    return "offline-supervisor" if name == "offline" else name


def _check(config: DesignConfig) -> None:
    if config.task not in TASKS:
        raise unknown_name("task", config.task, TASKS)
    for_task(task_for(config.task, config.objective), config.preset)
    if config.budget.simulations < 1:
        raise InputError(
            f"a budget of {config.budget.simulations} simulations leaves nothing to do: give "
            "--budget 1 or more (the paper used 15 per context)"
        )
    if not 1 <= config.contexts <= config.budget.simulations:
        raise InputError(
            f"--contexts {config.contexts} must be between 1 and the budget "
            f"({config.budget.simulations}): each context needs at least one simulation"
        )
    for what, v in (("tokens", config.budget.tokens), ("usd", config.budget.usd),
                    ("wall_s", config.budget.wall_s)):  # fmt: skip
        if v is not None and v <= 0:
            raise InputError(f"the {what} budget must be positive, not {v}")
    if not config.search_seeds or not config.holdout_seeds:
        raise InputError("give at least one search seed and one held-out seed")
    experiment_config(config.preset, **config.settings)  # bad settings fail now
    if config.second_workload is not None and config.second_workload not in PRESETS:
        raise unknown_name("second workload", config.second_workload, PRESETS)


def _make_run_dir(out: Path, run_id: str) -> Path:
    run_dir = out / run_id
    try:
        run_dir.mkdir(parents=True, exist_ok=False)
        probe = run_dir / ".writable"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise InputError(
            f"cannot write the run directory {str(run_dir)!r} ({e.strerror}): give --out a "
            "directory you can write to"
        ) from None
    return run_dir


async def _find_run(
    resume: str, out: Path, nats: str | None, creds: str | None, client: Client | None
) -> tuple[Path, bytes]:
    for d in (Path(resume).expanduser().resolve(), out / resume):
        if (d / "checkpoint.json").is_file():
            return d, (d / "checkpoint.json").read_bytes()
    run_id = Path(resume).name
    if client is not None or nats is not None:
        async with _client(client, nats, creds, out / run_id, None, False) as c:
            data = await c.bus.load_checkpoint(run_id)
        if data is not None:
            return out / run_id, data
    raise InputError(
        f"no design run {resume!r}: give a run directory containing checkpoint.json (e.g. "
        f"{out}/<run id>) or, with --nats, the id of a run checkpointed on that server"
    )


@asynccontextmanager
async def _client(
    client: Client | None, nats: str | None, creds: str | None, run_dir: Path,
    workers: int | None, trust_design: bool,
) -> AsyncIterator[Client]:  # fmt: skip
    if client is not None:
        yield client
    elif nats is not None:
        async with connect(nats, name="glia-design", creds=creds) as c:
            yield c
    else:
        # The private server keeps its JetStream state in the run directory, so a resumed
        # run finds its queue, its cached results and its checkpoints again.
        store = run_dir / "nats"
        limits = Limits(trusted=True) if trust_design else None
        async with local_cluster(
            workers=workers or os.cpu_count(), store_dir=str(store), limits=limits
        ) as c:
            yield c
