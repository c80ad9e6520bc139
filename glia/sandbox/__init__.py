"""Running untrusted design code: a separate, limited process whose results are replayed.

Threat model (what is enforced, and what is not):

* **Enforced.** Each design runs in a fresh process with limits on CPU time, address space and
  file size, killed from outside after a wall-clock timeout; its environment is emptied (no
  inherited keys or credentials); an audit hook refuses process creation, sockets, native-code
  loading, file writes and reads outside the Python installation, and new imports outside an
  allow-list; the design's own imports pass the allow-list; a static check rejects private and
  dunder attribute access and the introspection builtins. The metrics come from replaying the
  design's routing decisions through the simulator in the *parent* process, so a design cannot
  report a score it did not earn.
* **Not enforced.** Python offers no true in-process isolation: a determined design may find
  an introspection path the static rules miss and read simulator state it should not see (such
  as true output lengths) to make better decisions. No seccomp filter or namespaces are used
  (they need privileges this tool does not assume). Run untrusted designs from unknown sources
  in a container or VM as well.
"""

from glia.experiment import DesignFailure, FailureKind, Limits

from ._child import BASES, SLOTS
from ._guard import ALLOWED_IMPORTS
from ._run import check_design, run_sandboxed
from ._script import AnalysisResult, run_analysis

__all__ = [
    "ALLOWED_IMPORTS",
    "BASES",
    "SLOTS",
    "AnalysisResult",
    "DesignFailure",
    "FailureKind",
    "Limits",
    "check_design",
    "run_analysis",
    "run_sandboxed",
]
