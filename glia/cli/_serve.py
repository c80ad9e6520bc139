"""``glia serve``: a design's router (or a baseline) in front of real engines."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated

import anyio
import typer

from glia._logging import configure_logging, get_logger
from glia.engines import serve as serve_proxy

from ._app import TrustOpt, _design_source, _user_errors

__all__ = ["serve"]

log = get_logger("glia.serve")


def serve(
    engine: Annotated[
        list[str],
        typer.Option("--engine", help="An engine's base URL (http://host:8000); once per engine."),
    ],
    design: Annotated[
        Path | None,
        typer.Option("--design", help="A design file (a Router subclass), run in its sandbox."),
    ] = None,
    router: Annotated[
        str | None, typer.Option("--router", help="A baseline router by name (e.g. hra, llq).")
    ] = None,
    fallback: Annotated[
        str, typer.Option("--fallback", help="The baseline that takes over if the design fails.")
    ] = "llq",
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, help="Port (0: any free).")] = 9000,
    max_queue: Annotated[
        int, typer.Option("--max-queue", min=1, help="Requests the global queue holds (then 429).")
    ] = 1024,
    scrape_interval: Annotated[
        float, typer.Option("--scrape-interval", help="Seconds between scrapes of /metrics.")
    ] = 0.5,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds an engine may stay silent on a request.")
    ] = 60.0,
    drain: Annotated[
        float, typer.Option("--drain", help="Seconds SIGTERM waits for requests in the proxy.")
    ] = 30.0,
    num_blocks: Annotated[
        int,
        typer.Option("--num-blocks", min=1, help="Engines' KV blocks where /metrics does not say."),
    ] = 1000,
    block_size: Annotated[
        int, typer.Option("--block-size", min=1, help="Tokens per KV block, likewise.")
    ] = 16,
    trust_design: TrustOpt = False,
) -> None:
    """Route OpenAI API requests to ENGINEs with a design's Router, until Ctrl-C or SIGTERM.

    Serves /v1/completions and /v1/chat/completions (streaming or not), /v1/models, /health and
    its own /metrics. The router sees what a real router can know: the requests it sent to each
    engine, and each engine's scraped /metrics with its age. Prints its URL once it listens;
    SIGTERM stops taking requests and waits up to --drain seconds for those in flight.
    """
    configure_logging()
    with _user_errors():
        source = _design_source(design, router)

        async def run() -> None:
            async with serve_proxy(
                engine, router=router or "llq", design=source, fallback=fallback,
                trust_design=trust_design, host=host, port=port, max_queue=max_queue,
                scrape_interval_s=scrape_interval, read_timeout_s=timeout,
                num_blocks=num_blocks, block_size=block_size,
            ) as proxy:  # fmt: skip
                print(proxy.url, flush=True)
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for _ in signals:
                        break
                drained = await proxy.drain(drain)
                log.info("serve_stopped", drained=drained, **_counts(proxy.statistics()))

        anyio.run(run)


def _counts(s: object) -> dict[str, object]:
    keys = ("completed", "failed", "cancelled", "rejected", "holds")
    return {k: getattr(s, k) for k in keys}
