"""Fixtures and rules every test shares.

* Async tests run on anyio's asyncio backend (nats-py and pydantic-ai need asyncio).
* No test reaches a real model provider: pydantic-ai refuses model requests unless a test asks
  for :func:`allow_model_requests` (a scripted server on loopback is the only provider a test
  may talk to).
* Every test has a 30 s timeout; a test marked ``slow`` gets 300 s unless it sets its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic_ai import models

from glia.sim import LatencyModel, catalogue

models.ALLOW_MODEL_REQUESTS = False

SLOW_TIMEOUT_S = 300.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT_S))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def allow_model_requests() -> Iterator[None]:
    """Let this test's agents call their models (a scripted OpenAI-compatible server)."""
    with models.override_allow_model_requests(True):
        yield


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
