"""The three design tasks: what a design is, its baselines, and the objective it is judged on.

Every task turns a simulation's summary into one *cost* (lower is better) and a *score*
``20 / cost`` that the agents maximise:

* ``routing`` - the mean end-to-end latency (s).
* ``scheduling`` - mean E2E plus a tenth of the p99 E2E (s): a minute of tail costs as much as
  six seconds of mean, so starving long requests does not pay.
* ``autoscaling`` - GPU-hours, multiplied by ``1 + 10 x`` the relative excess over the preset's
  SLO on p90 TTFT and on p90 TPOT (an SLO met costs nothing; 10 % over doubles the cost).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from glia._errors import InputError, unknown_name
from glia.policies import AUTOSCALERS, BASELINES, SCHEDULERS
from glia.presets import PRESETS, Preset, Slo
from glia.sandbox import SLOTS
from glia.sim import Summary

__all__ = ["TASKS", "Task", "resolve_task"]

SLO_PENALTY = 10.0


@dataclass(frozen=True)
class Task:
    """One kind of policy to design."""

    name: str
    preset: str
    """The default preset."""
    objective: str
    """The objective, in words, for briefs and reports."""
    baselines: Mapping[str, object]

    @property
    def base_label(self) -> str:
        """What a policy of this task is called: router, scheduler or autoscaler."""
        return SLOTS[self.name]

    def cost(self, s: Summary, slo: Slo | None = None) -> float:
        """The objective's value for one simulation (lower is better)."""
        if self.name == "routing":
            return s.mean_e2e_s
        if self.name == "scheduling":
            return s.mean_e2e_s + 0.1 * s.p99_e2e_s
        excess = 0.0 if slo is None else slo_excess(s, slo)
        return s.gpu_hours * (1.0 + SLO_PENALTY * excess)

    def check_preset(self, name: str) -> Preset:
        """The preset ``name``, which must be made for this task."""
        try:
            p = PRESETS[name]
        except KeyError:
            raise unknown_name("preset", name, PRESETS) from None
        if p.task != self.name:
            fits = ", ".join(n for n, q in PRESETS.items() if q.task == self.name)
            raise InputError(
                f"preset {name!r} is made for the {p.task} task, not {self.name}: choose one "
                f"of {fits}"
            )
        return p


def slo_excess(s: Summary, slo: Slo) -> float:
    """Relative excess of p90 TTFT and p90 TPOT over the SLO, summed (0 when it is met)."""
    return max(0.0, s.p90_ttft_s / slo.p90_ttft_s - 1.0) + max(
        0.0, s.p90_tpot_s / slo.p90_tpot_s - 1.0
    )


TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("routing", "glia-routing", "minimise the mean end-to-end latency",
             BASELINES),
        Task("scheduling", "glia-scheduling",
             "minimise mean E2E + 0.1 x p99 E2E", SCHEDULERS),
        Task("autoscaling", "diurnal",
             "minimise GPU-hours while p90 TTFT and p90 TPOT stay within the SLO", AUTOSCALERS),
    )
}  # fmt: skip
"""Every task by name."""


def resolve_task(name: str) -> Task:
    """The task called ``name``."""
    try:
        return TASKS[name]
    except KeyError:
        raise unknown_name("task", name, TASKS) from None
