"""The README's shell examples, run as a reader would: in a fresh directory, verbatim.

Every command of every ```bash block runs, except those listed in :data:`NOT_HERE` with the
reason (they install, need a key, a cluster or minutes, or are CI itself). Files the README asks
the reader to create come from the README: the Python block after "Save this as NAME" becomes
NAME. A README change that adds a command either runs here or must say why not.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"

NOT_HERE: dict[str, str] = {
    r"^python3 -m venv .* pip install": "installs the project: .ci/run runs the quick start "
    "and the test command on a clean clone",
    r"^pip install": "installs the project (this test runs in the installed project)",
    r"^bash \.ci/run": "is CI itself",
    r"^python -m pytest": "is this test suite",
    r"^(ruff check|mypy)\b": "a static check: .ci/run runs it",
    r"^glia design( --resume|\b)": "a design run takes minutes: .ci/run runs the quick start, "
    "tests/cli/test_cli_design_exits.py a small one from a relative directory",
    r"^glia compare\b": "a comparison is many design runs (minutes to hours): tests/compare/ "
    "run small ones, through the CLI too",
    r"^glia report glia-runs/": "needs that run: tests/cli/test_cli_design_exits.py rewrites the "
    "report of a fresh run by a relative path",
    r"--nats nats://": "needs a running NATS cluster: tests/bus/ start real ones",
    r"^glia nats\b": "a server that runs until stopped: tests/bus/ start real ones",
    r"^glia baselines --seeds 10\b": "110 simulations: over a minute on 2 cores",
    r"^glia dashboard\b": "a server that runs until stopped: "
    "tests/test_dashboard_live.py starts one as a subprocess and asks it over HTTP",
    r"^glia steer\b": "needs a live design run on a NATS server: tests/cli/test_cli_steer.py "
    "steers one",
    r"^glia emulate\b": "servers that run until stopped: tests/engines/ start emulated engines",
    r"^glia serve\b": "a proxy that runs until stopped, in front of engines: "
    "tests/engines/test_serve.py and tests/engines/test_transfer.py start one",
    r"^glia simulate --design best\.py": "needs a designed best.py: glia design writes one",
    r"^glia bench --endpoint http://(localhost|127\.0\.0\.1)": "needs a running engine: "
    "tests/engines/ run glia bench against a fake engine on loopback",
    r"^glia transfer\b": "about a minute on 2 cores: tests/engines/test_transfer.py runs a "
    "smaller one",
}
"""Command pattern -> why this test does not run it."""

TRACE = "arrived_at,num_prefill_tokens,num_decode_tokens\n" + "".join(
    f"{i * 0.5},{20 + 7 * i % 300},{30 + 11 * i % 400}\n" for i in range(400)
)
"""``my_trace.csv``: the README names the columns, the reader brings the file."""


def shell_examples() -> list[tuple[int, str]]:
    """(line number, command) for each command of the README's bash blocks; a block with a
    here-document is one command."""
    out: list[tuple[int, str]] = []
    lines = README.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() != "```bash":
            i += 1
            continue
        start = i + 1
        end = lines.index("```", start)
        block = lines[start:end]
        if any("<<" in line for line in block):
            out.append((start + 1, "\n".join(block)))
        else:
            joined = ""
            for k, line in enumerate(block):
                joined += line.removesuffix("\\")
                if line.endswith("\\"):
                    continue
                if command := re.sub(r"\s+#.*$", "", joined).strip():
                    out.append((start + k + 1, command))
                joined = ""
        i = end + 1
    return out


def saved_files() -> dict[str, str]:
    """Files the README asks the reader to save: "Save this as `NAME`:" then a code block."""
    text = README.read_text(encoding="utf-8")
    found = re.findall(r"[Ss]ave this as `([^`]+)`:\s*\n+```\w*\n(.*?)\n```", text, re.S)
    return {name: body + "\n" for name, body in found}


def why_not(command: str) -> str | None:
    return next((why for pattern, why in NOT_HERE.items() if re.search(pattern, command)), None)


EXAMPLES = shell_examples()
RUN = [(n, c) for n, c in EXAMPLES if why_not(c) is None]


def test_the_readme_has_examples_and_every_exception_still_applies() -> None:
    assert len(RUN) >= 8, RUN
    unused = [p for p in NOT_HERE if not any(re.search(p, c) for _, c in EXAMPLES)]
    assert not unused, f"NOT_HERE patterns that match no README command: {unused}"
    assert "my_router.py" in saved_files()


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize(("line", "command"), RUN, ids=[f"README.md:{n}" for n, _ in RUN])
def test_readme_example(line: int, command: str, tmp_path: Path) -> None:
    for name, body in saved_files().items():
        (tmp_path / name).write_text(body, encoding="utf-8")
    (tmp_path / "my_trace.csv").write_text(TRACE, encoding="utf-8")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("GLIA_BUDGET", None)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", command], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, f"README.md:{line}: {command}\n{done.stderr[-3000:]}"
