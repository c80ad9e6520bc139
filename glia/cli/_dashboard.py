"""``glia dashboard``: serve the runs under a folder to a browser; with ``--nats``, live ones."""

from __future__ import annotations

import contextlib
import secrets
import sys
from pathlib import Path
from typing import Annotated

import anyio
import typer
from aiohttp import web

from glia.bus import NatsBus
from glia.dashboard import Live, make_app, nats_probe

from ._app import CredsOpt, TlsCaOpt, _user_errors

__all__ = ["dashboard"]

_LOOPBACK = ("127.0.0.1", "::1", "localhost")


def dashboard(
    runs_dir: Annotated[
        Path, typer.Option("--runs", help="Folder of design runs, one per subfolder.")
    ] = Path("glia-runs"),
    host: Annotated[
        str, typer.Option("--host", help="Address to bind; off loopback a token is required.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port to listen on.")] = 8765,
    nats_url: Annotated[
        str | None,
        typer.Option(
            "--nats",
            help="Follow live runs on this NATS server or cluster (one subscription, replayed "
            "from each run's start) [default: finished runs from --runs only].",
            show_default=False,
            envvar="GLIA_NATS_URL",
        ),
    ] = None,
    creds: CredsOpt = None,
    tls_ca: TlsCaOpt = None,
) -> None:
    """Serve design runs to a browser (127.0.0.1 by default; other hosts need the token)."""
    # a fresh token per start, printed once: whoever can read this terminal may steer
    token = None if host in _LOOPBACK else secrets.token_urlsafe(24)

    async def serve() -> None:
        async with contextlib.AsyncExitStack() as stack, anyio.create_task_group() as tg:
            live, probe, steer = None, None, None
            if nats_url:
                bus = await stack.enter_async_context(
                    NatsBus.connect(
                        nats_url, name="glia-dashboard",
                        creds=str(creds) if creds else None,
                        tls_ca=str(tls_ca) if tls_ca else None,
                    )
                )  # fmt: skip
                live, probe, steer = Live(), nats_probe(bus), bus.publish_steer
                await tg.start(live.follow, bus)
            runner = web.AppRunner(
                make_app(runs_dir, host=host, token=token, live=live, probe=probe, steer=steer)
            )
            await runner.setup()
            try:
                await web.TCPSite(runner, host, port).start()
                suffix = f"/?token={token}" if token else "/"
                print(f"dashboard: http://{host}:{port}{suffix}", file=sys.stderr, flush=True)
                await anyio.sleep_forever()
            finally:
                with anyio.CancelScope(shield=True):
                    await runner.cleanup()

    with _user_errors(), contextlib.suppress(KeyboardInterrupt):
        anyio.run(serve)
