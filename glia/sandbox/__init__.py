"""Running untrusted design code: the simulator here, the design in a sealed process.

Threat model. A design is code written by a language model that is rewarded for a low score,
so assume it tries everything: reading hidden state (true output lengths, future arrivals,
the trace), rebuilding the workload, reporting its own score, attacking the process that
judges it, or escaping to the machine. CPython has no in-process isolation, so the boundary
is the operating system and the protocol; Python-level rules are only a friendly first layer.

* **Trusted simulator, untrusted policy.** The simulator, the trace and every object with
  hidden fields stay in the caller's process (:mod:`._run`). The design's process holds the
  design and the design-side package (:mod:`._side`: the policy bases and view types) and
  nothing else. At each policy call it receives a plain-data snapshot of exactly the public
  view fields (those a router in front of real engines can know) and answers with plain-data
  decisions, which the simulator validates and applies. Nothing it sends is unpickled: each
  message is decoded against a schema and capped in size; anything else ends the run as a
  ``protocol`` failure. The metrics are computed here.
* **A fresh, empty process** (:mod:`._boundary`): spawned, never forked from a worker or the
  coordinator; ``python -I -S -B``; no inherited descriptor but its channel; an empty
  environment and working directory; the simulator, the API and the shipped traces are not
  in its file system, so not importable or readable.
* **A kernel-enforced boundary** (:mod:`._boundary`): bubblewrap puts it in new user, PID,
  network, IPC, UTS, cgroup and mount namespaces as an unprivileged user with no
  capabilities, dying with its parent, on a read-only file system holding only ``/usr``, the
  Python installation (its site-packages hidden), the design-side libraries and a minimal
  ``/dev``; no ``/proc``, ``/etc``, ``/tmp`` or home; no network interface. Before the
  design's code runs, the process limits its CPU time, address space, file size (0),
  descriptors and processes, and installs a seccomp filter that refuses new processes and
  programs, tracing, sockets and every signal syscall.
* **Friendly first layer** (inside the boundary, not relied on): static rules on the
  source (:mod:`._side.rules`), an import allow-list, an audit hook naming refused operations.
* **Where the boundary cannot be set up** (not Linux, no user namespaces, no bubblewrap),
  untrusted designs are refused with :class:`SandboxUnavailable`; ``Limits(trusted=True)``
  (``--trust-design``) runs designs one trusts in the same fresh, empty process without it.
* **Judged on secret seeds** (see :mod:`glia.actors`): a design run's search and held-out
  seeds come from a per-run secret, so no design can rebuild the workload it is judged on.

Not covered: bugs in the kernel, bubblewrap or the interpreter; timing side channels within
a run; the CPU and memory a design uses up to its limits.

:func:`run_analysis` (an agent's analysis scripts) runs inside the same kernel boundary
(bubblewrap namespaces, the same seccomp filter, rlimits, an emptied environment, no ``/proc``):
its workspace is mounted read-only, a private scratch directory is the only writable place, and
its audit hook stays as the friendly first layer (see :mod:`._script`). Where the boundary
cannot be set up it falls back to that process, limits and hook alone, which a determined
script can get around.
"""

from glia.experiment import DesignFailure, FailureKind, Limits
from glia.policies import Policy
from glia.tasks import TASKS

from ._boundary import SandboxUnavailable, boundary
from ._run import SLOTS, SandboxedRouter, check_design, run_sandboxed
from ._script import AnalysisResult, run_analysis
from ._side.main import ALLOWED_IMPORTS

BASES: dict[str, type[Policy]] = {t.name: t.base for t in TASKS.values()}
"""The policy base class a design subclasses, by task."""

__all__ = [
    "ALLOWED_IMPORTS",
    "BASES",
    "SLOTS",
    "AnalysisResult",
    "DesignFailure",
    "FailureKind",
    "Limits",
    "SandboxUnavailable",
    "SandboxedRouter",
    "boundary",
    "check_design",
    "run_analysis",
    "run_sandboxed",
]
