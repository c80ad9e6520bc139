"""Fitting the latency model to measurements."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import glia
from glia.sim import Efficiency, LatencyModel, Measurement, calibrate, catalogue, load_measurements

SHAPES = [
    (1, 128, 0),
    (8, 512, 0),
    (32, 512, 0),
    (64, 1024, 0),
    (128, 700, 0),
    (0, 0, 512),
    (0, 0, 2048),
    (0, 0, 8192),
    (16, 300, 1024),
]


def _synthetic(
    eff: Efficiency, noise: float, seed: int = 0, gpu: str = "A100"
) -> list[Measurement]:
    c = catalogue()
    lm = LatencyModel.build(c.gpu(gpu)[1], c.model("llama-3-8b")[1], 1, eff)
    rng = np.random.default_rng(seed)
    out = []
    for b, k, p in SHAPES:
        t = lm.iteration_time(p, b, b + (p > 0), b * k, b * k + p * (p + 1) // 2) * 1e3
        out.append(Measurement(b, k, p, t * (1 + rng.normal(0, noise))))
    return out


def test_recovers_the_factors_of_noise_free_measurements() -> None:
    true = Efficiency(0.55, 0.7, 2.0, 0.1)
    fit = calibrate(_synthetic(true, 0.0), "a100", "llama-3-8b")
    assert fit.gpu == "A100-80"
    assert fit.efficiency.compute_eff == pytest.approx(0.55, abs=0.002)
    assert fit.efficiency.mem_eff == pytest.approx(0.7, abs=0.002)
    assert fit.max_rel_error < 0.005
    assert fit.points == len(SHAPES)


def test_fit_error_reflects_measurement_noise() -> None:
    fit = calibrate(_synthetic(Efficiency(0.55, 0.7, 2.0, 0.1), 0.02), "A100", "llama-3-8b")
    assert 0.005 < fit.max_rel_error < 0.08


def test_a_fitted_profile_drives_the_simulator() -> None:
    measured = _synthetic(Efficiency(0.3, 0.5, 3.0, 0.2), 0.0, gpu="A10")
    fit = calibrate(measured, "A10", "llama-3-8b")
    fast = glia.simulate("llq", duration_s=30.0)
    slow = glia.simulate("llq", duration_s=30.0, efficiency=fit.efficiency)
    assert slow.summary.mean_e2e_s > fast.summary.mean_e2e_s


def test_measurement_file_errors_name_the_row(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("batch_size,context_tokens,prefill_tokens,time_ms\n1,10,0,30\n1,10,0,-2\n")
    with pytest.raises(glia.TraceError) as err:
        load_measurements(path)
    assert str(err.value) == f"{path} row 3: time_ms is -2.0: it must be a positive duration"
    path.write_text("batch,time\n1,2\n")
    with pytest.raises(glia.TraceError, match="needs the columns batch_size"):
        load_measurements(path)


def test_too_few_points_and_bad_efficiency_are_input_errors() -> None:
    with pytest.raises(glia.InputError, match="at least 2 measurements, got 1"):
        calibrate([Measurement(1, 10, 0, 30.0)], "A10", "llama-3-8b")
    with pytest.raises(glia.InputError, match=r"efficiency mem_eff is 1.5: it must be in \(0, 1\]"):
        glia.simulate("llq", duration_s=5.0, efficiency=Efficiency(0.5, 1.5, 1.0, 0.0))
