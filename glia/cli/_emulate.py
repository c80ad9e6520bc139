"""``glia emulate``: a preset's replicas served as engines that speak vLLM's API."""

from __future__ import annotations

import json
import signal
from typing import Annotated

import anyio
import typer

from glia._logging import configure_logging
from glia.engines import emulate as serve_emulated

from ._app import GpuOpt, JsonOpt, ModelOpt, PresetOpt, ProfileOpt, ReplicasOpt, TpOpt, _user_errors
from ._setup import experiment_setup

__all__ = ["emulate"]


def emulate(
    preset: PresetOpt = "glia-routing",
    replicas: ReplicasOpt = None,
    gpu: GpuOpt = None,
    model: ModelOpt = None,
    tp: TpOpt = None,
    profile: ProfileOpt = None,
    speed: Annotated[
        float, typer.Option("--speed", help="Simulated seconds per wall second.")
    ] = 1.0,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, help="Replica i listens on PORT + i (0: any free).")
    ] = 8100,
    json_output: JsonOpt = False,
) -> None:
    """Serve the preset's replicas as emulated engines until Ctrl-C or SIGTERM.

    Each speaks vLLM's OpenAI API (/v1/completions, /v1/chat/completions, streaming or not;
    /v1/models, /health) and vLLM's metric names at /metrics, with batching, KV memory,
    preemptions and timing from the simulator's replica model. Prints one URL per line (a JSON
    list with --json) once they listen.
    """
    configure_logging()
    with _user_errors():
        cluster, _ = experiment_setup(
            preset, replicas=replicas, gpu=gpu, model=model, tp=tp, profile=profile
        )

        async def serve() -> None:
            async with serve_emulated(cluster, speed=speed, host=host, port=port) as running:
                if json_output:
                    print(json.dumps(running.urls), flush=True)
                else:
                    print("\n".join(running.urls), flush=True)
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for _ in signals:
                        break

        anyio.run(serve)
