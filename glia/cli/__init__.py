"""The ``glia`` command: one module per command group, all on one Typer app.

``glia simulate`` runs one policy on a preset cluster and workload; ``glia baselines`` runs every
baseline of a task on the same setup, side by side; ``glia design`` lets the agents design a
policy; ``glia nats``, ``glia worker`` and ``glia monitor`` run and watch a cluster; ``glia
latency`` and ``glia calibrate`` hold the latency model against measured iterations and fit it;
``glia bench`` replays a workload against a real OpenAI-compatible endpoint, ``glia
emulate`` serves a preset's replicas as engines speaking vLLM's API, and ``glia serve`` runs a
design's router in front of real engines as an OpenAI-compatible proxy; ``glia transfer`` runs
policies both simulated and served, to check that the simulator ranks them right; ``glia
dashboard`` serves design runs to a browser.
Results go to stdout (a table, or JSON with ``--json``); progress, logs and errors go to stderr.
Any error Glia raises on purpose prints one line, ``error: <what to fix>``, and exits with
status 2.
"""

from __future__ import annotations

from ._app import app
from ._baselines import baselines
from ._bench import bench
from ._cluster import monitor, nats, worker
from ._compare import compare
from ._dashboard import dashboard
from ._design import design, report
from ._emulate import emulate
from ._latency import calibrate, latency
from ._serve import serve
from ._simulate import check, simulate
from ._steer import steer
from ._transfer import transfer

__all__ = ["app", "main"]

# Every command, in the order `glia --help` lists them.
for _command in (
    simulate,
    baselines,
    check,
    latency,
    calibrate,
    bench,
    emulate,
    serve,
    transfer,
    nats,
    worker,
    monitor,
    design,
    report,
    steer,
    compare,
    dashboard,
):
    app.command()(_command)


def main() -> None:
    """Entry point of the ``glia`` console script and of ``python -m glia``."""
    app(prog_name="glia")
