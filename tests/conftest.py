"""Shared fixtures for the simulator tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from glia.sim import LatencyModel, catalogue


@pytest.fixture
def a10() -> LatencyModel:
    """The latency model of Llama-3-8B on one A10 (the paper's replica)."""
    c = catalogue()
    return LatencyModel.build(c.gpu("A10")[1], c.model("llama-3-8b")[1], 1)


@pytest.fixture
def write_csv(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write ``text`` to ``tmp_path / name`` and return the path."""

    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write
