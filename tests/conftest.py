"""Fixtures and rules every test shares.

* Async tests run on anyio's asyncio backend (nats-py and pydantic-ai need asyncio).
* No test reaches a real model provider: pydantic-ai refuses model requests unless a test asks
  for :func:`allow_model_requests` (a scripted server on loopback is the only provider a test
  may talk to).
* Every test has a 30 s timeout; a test marked ``slow`` gets 300 s unless it sets its own.
  An async test's body is cancelled inside its event loop a little earlier, so a test that
  hangs fails with the traceback of the await it hangs in, and its fixtures are torn down.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from pydantic_ai import models

from glia.sim import LatencyModel, catalogue

models.ALLOW_MODEL_REQUESTS = False

SLOW_TIMEOUT_S = 300.0
IN_LOOP_SHARE = 0.95
"""The share of its timeout after which an async test's body is cancelled in its own loop.

pytest-timeout's own end is a last resort: its signal method raises wherever the main thread
is (inside the event loop's machinery or nats-py's reader task, it leaves the test waiting for
ever), and its thread method dumps threads' stacks, not the coroutines', and ends the process.
"""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT_S))


@pytest.hookimpl(hookwrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, Any, None]:
    test = pyfuncitem.obj
    marker = pyfuncitem.get_closest_marker("timeout")
    limit = float(marker.args[0] if marker and marker.args else pyfuncitem.config.getini("timeout"))
    if not inspect.iscoroutinefunction(test) or limit <= 0:
        yield
        return

    @functools.wraps(test)
    async def bounded(**kwargs: Any) -> None:
        within = IN_LOOP_SHARE * limit
        try:
            with anyio.fail_after(within) as scope:
                await test(**kwargs)
        except TimeoutError:
            if not scope.cancelled_caught:
                raise  # the test's own
            pytest.fail(
                f"the test ran past {within:g} s ({IN_LOOP_SHARE:.0%} of its {limit:g} s timeout) "
                "and was cancelled: the traceback above ends in the await it was waiting in"
            )

    pyfuncitem.obj = bounded
    try:
        yield
    finally:
        pyfuncitem.obj = test


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
