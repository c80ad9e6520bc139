"""``glia dashboard``: serve the runs under a folder to a browser (finished runs, from disk)."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path
from typing import Annotated

import typer
from aiohttp import web

from glia.dashboard import make_app

from ._app import _user_errors

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
) -> None:
    """Serve design runs to a browser (127.0.0.1 by default; other hosts need the token)."""
    with _user_errors():
        # a fresh token per start, printed once: whoever can read this terminal may steer
        token = None if host in _LOOPBACK else secrets.token_urlsafe(24)
        app = make_app(runs_dir, host=host, token=token)
        suffix = f"/?token={token}" if token else "/"
        print(f"dashboard: http://{host}:{port}{suffix}", file=sys.stderr, flush=True)
        web.run_app(app, host=host, port=port, print=None)
