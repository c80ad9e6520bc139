"""Autoscaling: an autoscaler sets the number of replicas every few seconds (new ones start
after a cold start); the objective is GPU-hours, multiplied by ``1 + 10 x`` the relative
excess over the preset's SLO on p90 TTFT and on p90 TPOT (an SLO met costs nothing; 10 % over
doubles the cost)."""

from __future__ import annotations

from dataclasses import dataclass

from glia.policies import AUTOSCALERS, Autoscaler, ScalerMechanisms, compose_autoscaler
from glia.sim import Summary, WorkloadConfig

from ._setups import AUTOSCALED_CLUSTER
from ._task import SLO_PENALTY, Preset, Slo, Task, slo_excess

__all__ = ["AUTOSCALING"]

NAME = "autoscaling"

_AUTOSCALER_DESIGN = """\
A Python file defining one subclass of `glia.policies.Autoscaler`: `scale(self, load)` is called
every `interval_s` simulated seconds (class attribute, at least 1) and returns the number of
replicas wanted (clamped to `load.min_replicas`..`load.max_replicas`). A new replica serves only
after a cold start (3 minutes: loading the model) but costs GPU time from the start; a removed
one drains (finishes what it holds) first. `load` has `now`, `num_active`, `num_starting`,
`num_draining`, `num_replicas` (active + starting), `num_ongoing` (requests queued or running
anywhere), `arrivals` and `completions` since the previous call, `arrival_rate`, `window_s`,
and `cluster` (the active replicas, as a router sees them: `cluster.replicas[i].num_running`,
`num_queued`, `num_allocated_blocks`, `num_blocks`; `cluster.num_queued`). Keep your own history
in `self` (initialise it in `setup(self, cluster, rng)`, calling `super().setup`). Requests are
routed by least-loaded-queue. A working example is in `example_autoscaler.py`.
"""


@dataclass(frozen=True, kw_only=True)
class _Autoscaling(Task):
    def cost(self, s: Summary, slo: Slo | None = None) -> float:
        excess = 0.0 if slo is None else slo_excess(s, slo)
        return s.gpu_hours * (1.0 + SLO_PENALTY * excess)

    def objective_text(self, slo: Slo | None) -> str:
        if slo is None:
            return super().objective_text(slo)
        return (
            f"Minimise GPU-hours while p90 TTFT <= {slo.p90_ttft_s:g} s and p90 TPOT <= "
            f"{slo.p90_tpot_s * 1000:g} ms: the cost is GPU-hours x (1 + 10 x the relative "
            "excess over each SLO), so missing the SLO by 10% doubles the cost"
        )


PRESETS = (
    Preset(
        name="diurnal",
        description=(
            "A two-hour compressed day: ShareGPT first turns with bursty gamma arrivals "
            "(CV 2) whose rate swings from 1.2 QPS at night to 10.8 QPS at noon (mean 6); "
            "a pool of 8 x A10 (Llama-3-8B) starting with 2, 3-minute cold starts, least-"
            "loaded-queue routing; SLO p90 TTFT <= 0.5 s and p90 TPOT <= 50 ms"
        ),
        cluster=AUTOSCALED_CLUSTER,
        workload=WorkloadConfig(
            trace="sharegpt_first_turn",
            arrivals="gamma",
            cv=2.0,
            qps=6.0,
            duration_s=7200.0,
            diurnal=0.8,
            max_tokens=8192,
        ),
        slo=Slo(p90_ttft_s=0.5, p90_tpot_s=0.05),
        task=NAME,
    ),
    Preset(
        name="azure-autoscale",
        description=(
            "One hour of Azure's production conversation trace (long prompts, bursty, "
            "5.5 req/s) replayed on a pool of 8 x A10 starting with 2, 3-minute cold "
            "starts, least-loaded-queue routing; SLO p90 TTFT <= 2 s and p90 TPOT <= 100 ms"
        ),
        cluster=AUTOSCALED_CLUSTER,
        workload=WorkloadConfig(trace="azure_conv", arrivals="trace", max_tokens=8192),
        slo=Slo(p90_ttft_s=2.0, p90_tpot_s=0.1),
        task=NAME,
    ),
)

AUTOSCALING = _Autoscaling(
    name=NAME,
    preset="diurnal",
    presets=PRESETS,
    objective="minimise GPU-hours while p90 TTFT and p90 TPOT stay within the SLO",
    baselines=AUTOSCALERS,
    base=Autoscaler,
    slot="autoscaler",
    system="the autoscaler",
    design_text=_AUTOSCALER_DESIGN,
    example=("example_autoscaler.py", compose_autoscaler(ScalerMechanisms(), name="Reactive")),
    mechanisms=ScalerMechanisms,
    compose=compose_autoscaler,
    uses_slo=True,
)
"""Autoscaling against an SLO."""
