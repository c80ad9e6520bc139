"""The ``glia`` commands for running on a cluster.

``glia nats`` runs the bundled nats-server, ``glia worker`` serves experiments from it,
``glia monitor`` shows a run's (or every run's) event stream live.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import anyio
import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from glia._logging import configure_logging, get_logger
from glia.bus import (
    AgentMessage,
    Event,
    ExperimentFailed,
    ExperimentFinished,
    ExperimentQueued,
    ExperimentStarted,
    NatsBus,
    ProviderRetry,
    RunStatus,
    Steered,
    TrialFinished,
    WorkerHeartbeat,
    nats_server,
    redact,
    to_json,
)
from glia.runtime import SimWorker, supervise
from glia.sandbox import Limits, boundary

from ._app import CredsOpt, TlsCaOpt, TrustOpt, _user_errors

__all__ = ["monitor", "nats", "worker"]

NatsUrlOpt = Annotated[
    str,
    typer.Option(
        "--nats", help="NATS server or cluster URL(s), comma-separated.", envvar="GLIA_NATS_URL"
    ),
]


def nats(
    port: Annotated[int, typer.Option("--port", help="Client port (-1: any free).")] = 4222,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (0.0.0.0: all).")
    ] = "127.0.0.1",
    store: Annotated[
        Path,
        typer.Option("--store", help="JetStream storage directory.", file_okay=False),
    ] = Path(".glia/nats"),
) -> None:
    """Run the bundled nats-server with JetStream until Ctrl-C."""
    configure_logging()
    log = get_logger("glia.nats")

    async def serve() -> None:
        async with nats_server(port=port, host=host, store_dir=store) as server:
            log.info("nats_ready", url=server.url, store=str(store))
            print(server.url, flush=True)
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    break
            log.info("nats_stopping")

    with _user_errors():
        anyio.run(serve)


def trust_notice(trust_design: bool) -> str | None:
    """What a worker says at start about the designs it will run, or ``None`` (boundary up).

    Without the OS boundary a worker still serves, but refuses every untrusted design (each
    fails with the reason); ``--trust-design`` runs them without it, so it is said loudly.
    """
    why = boundary()
    if why is None:
        return None
    if trust_design:
        return (
            f"warning: {why}; --trust-design: this worker runs designs WITHOUT the OS sandbox "
            "(only for designs you wrote or trust)"
        )
    return (
        f"warning: {why}; this worker refuses untrusted designs (each fails with this reason); "
        "pass --trust-design to run designs you trust without the OS sandbox"
    )


def worker(
    nats_url: NatsUrlOpt,
    concurrency: Annotated[
        int | None,
        typer.Option("--concurrency", "-c", min=1, help="Experiments at once [default: cores]."),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Worker name [default: host-pid].")
    ] = None,
    creds: CredsOpt = None,
    tls_ca: TlsCaOpt = None,
    ack_wait: Annotated[
        float,
        typer.Option(
            "--ack-wait",
            min=1.0,
            help="Seconds without an in-progress ack before a running experiment is handed "
            "to another worker (set when the queue's consumer is first created).",
        ),
    ] = 30.0,
    stream_replicas: Annotated[
        int,
        typer.Option(
            "--stream-replicas",
            min=1,
            max=5,
            help="Copies of Glia's streams and buckets when this worker creates them "
            "(3 on a 3-node JetStream cluster); existing ones are left as they are.",
        ),
    ] = 1,
    design_timeout: Annotated[
        float,
        typer.Option(
            "--design-timeout",
            min=1.0,
            help="Seconds (wall clock and CPU) a design's simulation may take in the sandbox.",
        ),
    ] = 120.0,
    design_memory_mb: Annotated[
        int, typer.Option("--design-memory-mb", min=256, help="Memory of a design's sandbox.")
    ] = 4096,
    trust_design: TrustOpt = False,
) -> None:
    """Serve experiments from the NATS queue until SIGINT/SIGTERM (then drain)."""
    configure_logging()
    who = name or f"{socket.gethostname()}-{os.getpid()}"
    notice = trust_notice(trust_design)
    if notice:
        print(notice, file=sys.stderr, flush=True)  # said once at start, not per refused design
    limits = Limits(
        wall_s=design_timeout, cpu_s=design_timeout, memory_mb=design_memory_mb,
        trusted=trust_design,
    )  # fmt: skip

    async def serve() -> None:
        async with NatsBus.connect(
            nats_url,
            name=f"glia-worker-{who}",
            creds=str(creds) if creds else None,
            tls_ca=str(tls_ca) if tls_ca else None,
            replicas=stream_replicas,
        ) as bus:
            w = SimWorker(bus, name=who, concurrency=concurrency, ack_wait=ack_wait, limits=limits)
            await supervise([w])  # SIGINT/SIGTERM drain it; a second signal stops it now

    with _user_errors():
        anyio.run(serve)


@dataclass
class _View:
    """What the monitor has learned from the event stream."""

    workers: dict[str, WorkerHeartbeat] = field(default_factory=dict)
    queued: set[str] = field(default_factory=set)
    running: set[str] = field(default_factory=set)
    done: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    best: tuple[float, str] | None = None
    first_done_at: float | None = None
    last_done_at: float | None = None
    design: dict[str, str] = field(default_factory=dict)
    """A design run's progress: status, trials, best design, the latest agent message."""

    def apply(self, ev: Event) -> None:
        if isinstance(ev, WorkerHeartbeat):
            self.workers[ev.worker] = ev
            return
        if isinstance(ev, AgentMessage | TrialFinished | ProviderRetry | RunStatus):
            self._design(ev)
            return
        if isinstance(ev, Steered):
            self.design["steered"] = f"{ev.action} from {ev.origin}: {ev.text}"[:160]
            return
        key = f"{ev.run_id}/{ev.key}"
        if isinstance(ev, ExperimentQueued):
            self.queued.add(key)
        elif isinstance(ev, ExperimentStarted):
            self.queued.discard(key)
            self.running.add(key)
        elif isinstance(ev, ExperimentFinished):
            self.queued.discard(key)
            self.running.discard(key)
            self.done.add(key)
            self.first_done_at = self.first_done_at or ev.at
            self.last_done_at = ev.at
            if self.best is None or ev.mean_e2e_s < self.best[0]:
                self.best = (ev.mean_e2e_s, ev.label)
        elif isinstance(ev, ExperimentFailed):
            self.queued.discard(key)
            self.running.discard(key)
            self.failed.add(key)

    def _design(self, ev: AgentMessage | TrialFinished | ProviderRetry | RunStatus) -> None:
        d = self.design
        if isinstance(ev, RunStatus):
            d["status"] = f"{ev.status}: {ev.message}"
            d["cost"] = f"${ev.cost_usd:.4f}, {ev.tokens:,} tokens"
        elif isinstance(ev, TrialFinished):
            d["simulations"] = f"{ev.index} of {ev.budget}"
            if ev.best_e2e_s is not None:
                d["best design"] = f"{ev.best_e2e_s:.2f} s mean E2E"
        elif isinstance(ev, ProviderRetry):
            d["provider"] = f"{ev.error}, retry {ev.attempt} in {ev.wait_s:.0f} s"
        elif ev.role in ("researcher", "supervisor"):
            first = ev.text.strip().splitlines()[-1] if ev.text.strip() else ""
            d["latest"] = f"{ev.role} (context {ev.context}): {first[:120]}"

    def render(self, title: str) -> Group:
        now = time.time()
        workers = Table(title="workers", title_justify="left")
        for col in ("worker", "slots", "running", "done", "failed", "last seen"):
            workers.add_column(col, justify="left" if col == "worker" else "right")
        for w in sorted(self.workers.values(), key=lambda h: h.worker):
            workers.add_row(
                w.worker, str(w.concurrency), str(w.running), str(w.done), str(w.failed),
                f"{now - w.at:.0f} s ago",
            )  # fmt: skip
        span = (self.last_done_at or 0) - (self.first_done_at or 0)
        rate = f"{(len(self.done) - 1) / span:.2f}/s" if span > 0 else "-"
        best = f"{self.best[0]:.2f} s ({self.best[1]})" if self.best else "-"
        runs = Table(title=title, title_justify="left")
        for col in ("queued", "running", "done", "failed", "throughput", "best mean E2E"):
            runs.add_column(col, justify="right")
        runs.add_row(
            str(len(self.queued)), str(len(self.running)), str(len(self.done)),
            str(len(self.failed)), rate, best,
        )  # fmt: skip
        if not self.design:
            return Group(runs, workers)
        design = Table(title="design run", title_justify="left", show_header=False)
        for k, v in self.design.items():
            design.add_row(k, v)
        return Group(design, runs, workers)


def monitor(
    nats_url: NatsUrlOpt,
    run: Annotated[
        str | None, typer.Option("--run", help="Only this run [default: every run].")
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="One JSON object per event on stdout.")
    ] = False,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", help="Stop after this many seconds [default: at Ctrl-C]."),
    ] = None,
    creds: CredsOpt = None,
    tls_ca: TlsCaOpt = None,
) -> None:
    """Replay a run's events from its start, then follow them live."""
    configure_logging()
    view = _View()
    title = f"run {run}" if run else "all runs"

    async def follow() -> None:
        async with NatsBus.connect(
            nats_url,
            name="glia-monitor",
            creds=str(creds) if creds else None,
            tls_ca=str(tls_ca) if tls_ca else None,
        ) as bus:
            with anyio.move_on_after(timeout):
                async with bus.events(run or "*") as events:
                    if json_output:
                        async for ev in events:
                            sys.stdout.write(to_json(ev).decode() + "\n")
                            sys.stdout.flush()
                    else:
                        console = Console()
                        console.print(f"[dim]{redact(nats_url)}[/dim]")
                        with Live(view.render(title), console=console, auto_refresh=False) as live:
                            async for ev in events:
                                view.apply(ev)
                                live.update(view.render(title), refresh=True)

    with _user_errors(), contextlib.suppress(KeyboardInterrupt):
        anyio.run(follow)
