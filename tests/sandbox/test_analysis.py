"""Analysis scripts: run in a fresh, limited process over the workspace, never raising."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import pytest

from glia._errors import InputError
from glia.sandbox import boundary, run_analysis

pytestmark = pytest.mark.anyio


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A workspace holding one per-request CSV (with a sibling directory outside it)."""
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "requests.csv").write_text("id,e2e\n0,1.5\n1,2.5\n2,4.0\n", encoding="utf-8")
    return ws


async def test_numpy_reads_a_csv_in_the_workspace(workdir: Path) -> None:
    script = (
        "import numpy as np\n"
        "e2e = np.loadtxt('requests.csv', delimiter=',', skiprows=1, usecols=1)\n"
        "print(f'mean={e2e.mean():.4f} n={e2e.size}')\n"
    )
    out = await run_analysis(script, workdir)
    assert (out.ok, out.output, out.error) == (True, "mean=2.6667 n=3\n", "")
    assert 0 < out.wall_s < 10
    assert sorted(p.name for p in workdir.iterdir()) == ["requests.csv"]  # no script left


async def test_the_standard_library_and_glob_work(workdir: Path) -> None:
    script = (
        "import csv, glob, json, math, statistics\n"
        "rows = list(csv.DictReader(open(glob.glob('*.csv')[0])))\n"
        "print(json.dumps({'median': statistics.median(float(r['e2e']) for r in rows)}))\n"
    )
    out = await run_analysis(script, workdir)
    assert (out.ok, out.output) == (True, '{"median": 2.5}\n')


async def test_a_script_larger_than_a_pipe_buffer_arrives_whole(workdir: Path) -> None:
    script = "total = 0\n" + "total += 1\n" * 20_000 + "print(total, 'café')\n"
    out = await run_analysis(script, workdir)
    assert (out.ok, out.output) == (True, "20000 café\n")


async def test_a_syntax_error_names_its_line(workdir: Path) -> None:
    out = await run_analysis("x = 1\ny = = 2\n", workdir)
    assert not out.ok
    assert "syntax error" in out.error and "line 2" in out.error and "y = = 2" in out.error


async def test_an_exception_reports_the_scripts_traceback_lines(workdir: Path) -> None:
    script = "def f(x):\n    raise ValueError(f'bad {x}')\n\nf(3)\n"
    out = await run_analysis(script, workdir)
    assert not out.ok
    assert out.error.startswith("the script raised ValueError: bad 3")
    assert "line 4, in <module>: f(3)" in out.error
    assert "line 2, in f: raise ValueError(f'bad {x}')" in out.error
    assert out.output.startswith("Traceback (most recent call last):")
    assert out.output.endswith("ValueError: bad 3\n") and "<string>" not in out.output


async def test_stdout_and_stderr_interleave_and_a_nonzero_exit_fails(workdir: Path) -> None:
    script = "import sys\nprint('a')\nprint('b', file=sys.stderr)\nprint('c')\nsys.exit(2)\n"
    out = await run_analysis(script, workdir)
    assert (out.ok, out.output, out.error) == (False, "a\nb\nc\n", "the script called sys.exit(2)")


async def test_a_script_past_its_deadline_is_stopped(workdir: Path) -> None:
    script = "print('started')\nwhile True:\n    pass\n"
    with anyio.fail_after(5):
        out = await run_analysis(script, workdir, timeout_s=1)
    assert not out.ok
    assert out.error.startswith("timed out after 1 s")
    assert "line 2" in out.error  # where it was stuck
    assert out.output == "started\n"  # what it printed before is kept
    assert out.wall_s < 3


async def test_a_script_ignoring_the_interrupt_is_killed(workdir: Path) -> None:
    script = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(60)\n"
    with anyio.fail_after(5):
        out = await run_analysis(script, workdir, timeout_s=0.5)
    assert not out.ok and out.error.startswith("timed out after 0.5 s")


async def test_a_memory_blow_up_is_reported(workdir: Path) -> None:
    # 8 GB in 80 MB steps: only the address-space limit stops it early.
    script = "import numpy as np\nkeep = [np.ones(10_000_000) for _ in range(100)]\n"
    out = await run_analysis(script, workdir, memory_mb=400)
    assert not out.ok
    assert out.error.startswith("exceeded 400 MB of memory at line 2")


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        (
            "import socket\nsocket.create_connection(('127.0.0.1', 9))\n",
            "forbidden: network access is not allowed in analysis scripts",
        ),
        (
            "import urllib.request\nurllib.request.urlopen('http://example.com')\n",
            "forbidden: network access is not allowed in analysis scripts",
        ),
        (
            "import subprocess\nsubprocess.run(['true'])\n",
            "forbidden: starting processes is not allowed in analysis scripts",
        ),
        ("import os\nos.system('true')\n", "forbidden: starting processes is not allowed"),
        ("import os\nos.fork()\n", "forbidden: starting processes is not allowed"),
        (
            "import os\nos.kill(os.getppid(), 0)\n",
            "forbidden: sending signals is not allowed in analysis scripts",
        ),
        ("import ctypes\nctypes.CDLL(None)\n", "forbidden: native code (ctypes) is not allowed"),
    ],
    ids=["socket", "urllib", "subprocess", "os.system", "fork", "kill", "ctypes"],
)
async def test_forbidden_operations_fail_with_a_clear_message(
    workdir: Path, script: str, expected: str
) -> None:
    out = await run_analysis(script, workdir)
    assert not out.ok
    assert out.error.startswith(expected), out.error
    assert "at line 2" in out.error


async def test_writing_only_in_the_scratch_directory(workdir: Path) -> None:
    outside = workdir.parent / "outside.txt"
    out = await run_analysis(f"open({str(outside)!r}, 'w').write('x')\n", workdir)
    assert not out.ok and out.error.startswith(f"forbidden: writing {str(outside)!r}")
    assert not outside.exists()

    escape = await run_analysis("open('../outside.txt', 'w')\n", workdir)
    assert not escape.ok and "forbidden: writing" in escape.error and not outside.exists()

    inside = await run_analysis("open('summary.txt', 'w')\n", workdir)
    if boundary() is None:  # the workspace's results are read-only inside the boundary
        assert not inside.ok and inside.error.startswith(
            f"forbidden: writing {str(workdir / 'summary.txt')!r}"
        ), inside.error
        assert not (workdir / "summary.txt").exists()
    else:
        assert inside.ok, inside.error

    script = (
        "import os, tempfile\nd = tempfile.mkdtemp()\n"
        "with open(os.path.join(d, 'summary.txt'), 'w') as f:\n    f.write('ok')\n"
        "print(open(os.path.join(d, 'summary.txt')).read())\n"
    )
    scratch = await run_analysis(script, workdir)
    assert (scratch.ok, scratch.output) == (True, "ok\n")


async def test_reading_outside_the_workspace_is_forbidden(workdir: Path) -> None:
    (workdir.parent / "other.csv").write_text("secret\n")
    for path in ["../other.csv", "/proc/{os.getppid()}/environ"]:
        out = await run_analysis(f"import os\nprint(open(f{path!r}).read())\n", workdir)
        assert not out.ok and out.error.startswith("forbidden: reading"), out.error
        assert "secret" not in out.output


async def test_the_parents_environment_is_not_visible(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-for-scripts")
    script = "import os\nprint(os.environ.get('OPENAI_API_KEY'), os.environ['OMP_NUM_THREADS'])\n"
    out = await run_analysis(script, workdir)
    assert (out.ok, out.output) == (True, "None 1\n")


async def test_long_output_is_cut_with_a_note(workdir: Path) -> None:
    out = await run_analysis("print('x' * 5000)\n", workdir, output_kb=1)
    assert out.ok
    assert out.output == "x" * 1024 + "\n... [3977 more bytes cut]"  # 5000 x's and a newline


async def test_undecodable_output_is_replaced(workdir: Path) -> None:
    script = "import sys\nsys.stdout.flush()\nsys.stdout.buffer.write(b'ok \\xff\\n')\n"
    out = await run_analysis(script, workdir)
    assert (out.ok, out.output) == (True, "ok \ufffd\n")


def _processes_over(workdir: Path) -> set[int]:
    """Our processes whose command line names ``workdir`` (bwrap's and the script's)."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if str(workdir).encode() in cmdline:
                found.add(int(entry))
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
async def test_cancelling_the_caller_kills_the_script(workdir: Path) -> None:
    script = "import time\ntime.sleep(60)\n"
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_analysis, script, workdir)
            while not any(
                Path(f"/proc/{pid}/cmdline").read_bytes().startswith(sys.executable.encode())
                for pid in _processes_over(workdir)
            ):
                await anyio.sleep(0.02)
            started = _processes_over(workdir)
            await anyio.sleep(0.3)  # into the script's sleep
            tg.cancel_scope.cancel()
    # run_analysis killed and reaped its child before its task finished; inside the boundary
    # the script's process follows as its stdin closes (its watchdog exits).
    with anyio.fail_after(10):
        while started & _processes_over(workdir):
            await anyio.sleep(0.02)


async def test_a_missing_workdir_is_the_callers_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        await run_analysis("print(1)\n", tmp_path / "missing")
