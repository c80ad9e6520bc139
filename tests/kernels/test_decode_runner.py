"""decode_runner: the engine's direct call of decode_run gives the dispatcher's answers."""

from __future__ import annotations

import numpy as np

from glia.kernels import decode_run, decode_runner


def test_the_entry_point_and_the_python_source_answer_as_the_dispatcher() -> None:
    coef = np.linspace(1.0, 2.0, 17)
    phases = np.zeros(16, dtype=np.int64)
    phases[3] = 2
    for horizon, inclusive in ((float("inf"), True), (40.0, False), (40.0, True)):
        args = (coef, 1.5, 100, 50, 10_000, 500, phases, 130, horizon, inclusive)
        want = decode_run(*args)
        assert decode_runner(True)(*args) == want
        assert decode_runner(False)(*args) == want


def test_no_jit_selects_the_python_source() -> None:
    assert decode_runner(False) is decode_run.py_func  # type: ignore[attr-defined]
