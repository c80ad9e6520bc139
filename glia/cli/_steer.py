"""``glia steer``: a person's hand on a design run, sent over the bus to its coordinator."""

from __future__ import annotations

import getpass
import socket
from typing import Annotated

import anyio
import typer

from glia._errors import InputError
from glia.bus import NatsBus, steer_message

from ._app import CredsOpt, TlsCaOpt, _user_errors
from ._cluster import NatsUrlOpt

__all__ = ["steer"]


def steer(
    run_id: Annotated[str, typer.Argument(help="The design run's id.")],
    action: Annotated[
        str,
        typer.Argument(help="note, pause, resume, stop, approve (at the gate) or pick (a trial)."),
    ],
    arg: Annotated[
        str | None,
        typer.Argument(help="The note's text, or the trial to pick.", show_default=False),
    ] = None,
    nats_url: NatsUrlOpt = "nats://127.0.0.1:4222",
    context: Annotated[
        int | None,
        typer.Option("--context", help="Only this context [default: the whole run].", min=0),
    ] = None,
    creds: CredsOpt = None,
    tls_ca: TlsCaOpt = None,
) -> None:
    """Steer a design run: a note to the supervisor, pause, resume or stop it, or approve or
    pick the design to validate at its gate (glia design --gate). Applied at the next turn
    boundary and recorded in the run's log with this user and host as origin."""
    with _user_errors():
        trial = None
        if action == "pick" and arg is not None:
            if not arg.isdigit():
                raise InputError(f"pick needs a trial number, not {arg!r}: e.g. pick 4")
            trial = int(arg)
        origin = f"cli {getpass.getuser()}@{socket.gethostname()}"
        msg = steer_message(
            run_id, action, text=arg if action == "note" and arg else "", context=context,
            trial=trial, origin=origin,
        )  # fmt: skip

        async def send() -> None:
            async with NatsBus.connect(
                nats_url, name="glia-steer", creds=str(creds) if creds else None,
                tls_ca=str(tls_ca) if tls_ca else None,
            ) as bus:  # fmt: skip
                await bus.publish_steer(msg)

        anyio.run(send)
    typer.echo(f"sent {action} to run {run_id}")
