"""Analysis scripts past the friendly first layer: the kernel boundary still holds.

Each script first switches the audit hook off through ``gc`` and the hook's closure (the
documented way past PEP 578 hooks), then tries one escape; the boundary must stop it with a
plain OS error the agent is shown, and no secret may reach the output.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from glia.sandbox import boundary, run_analysis

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(boundary() is not None, reason=f"no OS sandbox: {boundary()}"),
]

SECRET = "s3cret-value-of-the-parent"

HOOK_OFF = """\
import gc
off = 0
for obj in gc.get_objects():
    if getattr(obj, '__name__', None) == 'hook' and getattr(obj, '__closure__', None):
        for name, cell in zip(obj.__code__.co_freevars, obj.__closure__):
            if name in ('check', 'refuse'):
                cell.cell_contents = lambda *a, **k: None
                off += 1
print('hook off:', off)
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A workspace with a result file, next to a secret file, in a parent with a secret env."""
    monkeypatch.setenv("GLIA_TEST_SECRET", SECRET)
    (tmp_path / "secret.txt").write_text(SECRET, encoding="utf-8")
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "requests.csv").write_text("id,e2e\n0,1.5\n", encoding="utf-8")
    return ws


async def escape(workdir: Path, attempt: str) -> tuple[bool, str, str]:
    out = await run_analysis(HOOK_OFF + attempt, workdir)
    assert out.output.startswith("hook off: 2\n"), out.output  # the first layer is gone
    assert SECRET not in out.output and SECRET not in out.error
    return out.ok, out.output, out.error


async def test_the_hook_switched_off_still_reads_only_the_workspace(workdir: Path) -> None:
    ok, output, _ = await escape(workdir, "print(open('requests.csv').read())\n")
    assert ok and "0,1.5" in output
    ok, _, error = await escape(
        workdir, f"print(open({str(workdir.parent / 'secret.txt')!r}).read())\n"
    )
    assert not ok and error.startswith(
        "the script raised FileNotFoundError: [Errno 2] No such file or directory"
    ), error


async def test_the_parents_environment_is_out_of_reach(workdir: Path) -> None:
    ok, output, _ = await escape(workdir, "import os\nprint(sorted(os.environ))\n")
    assert ok and "GLIA_TEST_SECRET" not in output
    ok, _, error = await escape(
        workdir, "import os\nprint(open(f'/proc/{os.getppid()}/environ').read())\n"
    )
    assert not ok and error.startswith(
        "the script raised FileNotFoundError: [Errno 2] No such file or directory: '/proc/"
    ), error


async def test_proc_is_not_there(workdir: Path) -> None:
    ok, _, error = await escape(workdir, "import os\nprint(os.listdir('/proc'))\n")
    assert not ok and error.startswith(
        "the script raised FileNotFoundError: [Errno 2] No such file or directory: '/proc'"
    ), error


async def test_the_workspace_stays_read_only(workdir: Path) -> None:
    ok, _, error = await escape(workdir, "open('requests.csv', 'w').write('forged')\n")
    assert not ok and error.startswith(
        "the script raised OSError: [Errno 30] Read-only file system: 'requests.csv'"
    ), error
    assert (workdir / "requests.csv").read_text(encoding="utf-8") == "id,e2e\n0,1.5\n"


async def test_no_process_or_socket(workdir: Path) -> None:
    ok, _, error = await escape(workdir, "import os\nos.posix_spawn('/bin/sh', ['sh'], {})\n")
    assert not ok and error.startswith(
        "the script raised PermissionError: [Errno 1] Operation not permitted"
    ), error
    ok, _, error = await escape(workdir, "import socket\nsocket.socket()\n")
    assert not ok and error.startswith(
        "the script raised PermissionError: [Errno 1] Operation not permitted"
    ), error
