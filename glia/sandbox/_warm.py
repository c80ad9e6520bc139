"""Imported by the sandbox's fork server: load and warm the simulator once, for every child.

Importing this module runs one tiny simulation, so the numba kernels are loaded from their
on-disk cache in the fork server rather than in each sandbox process (hundreds of ms each),
and parses the shipped traces (tens of ms each).
"""

from glia.sim import builtin_traces, load_trace_csv

from ._child import warm_up

warm_up()
for _name in builtin_traces():
    load_trace_csv(_name)  # parsed once here, not in every sandbox process
