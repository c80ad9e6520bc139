"""The deployment files in ``infra/`` start ``glia serve`` with options it accepts, in front
of the engines they define (no docker or kubectl here: the files are read, the proxy's command
line parsed by the CLI itself)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer.core
import typer.main
import yaml

from glia.cli import app

INFRA = Path(__file__).resolve().parents[1] / "infra"


def _compose() -> tuple[list[str], list[str]]:
    """(the proxy's arguments, the engines' URLs) of the compose file."""
    doc = yaml.safe_load((INFRA / "compose.serve.yaml").read_text())
    services: dict[str, Any] = doc["services"]
    proxy = services["glia-serve"]
    assert proxy["entrypoint"] == ["glia", "serve"]
    engines = sorted(name for name in services if name.startswith("vllm-"))
    for name in engines:
        assert services[name]["command"][-2:] == ["--port", "8000"]
    assert proxy["depends_on"] == engines
    return proxy["command"], [f"http://{name}:8000" for name in engines]


def _kubernetes() -> tuple[list[str], list[str]]:
    """(the proxy's arguments, the engines' URLs) of the Kubernetes manifest."""
    docs = list(yaml.safe_load_all((INFRA / "k8s" / "serve.yaml").read_text()))
    kinds = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    engines = kinds[("StatefulSet", "vllm")]
    assert kinds[("Service", "vllm")]["spec"]["clusterIP"] == "None"  # a DNS name per pod
    proxy = kinds[("Deployment", "glia-serve")]["spec"]
    assert proxy["replicas"] == 1  # one global queue
    (container,) = proxy["template"]["spec"]["containers"]
    assert container["command"] == ["glia", "serve"]
    n = engines["spec"]["replicas"]
    return container["args"], [f"http://vllm-{i}.vllm:8000" for i in range(n)]


@pytest.mark.parametrize("read", [_compose, _kubernetes], ids=["compose", "kubernetes"])
def test_the_proxy_is_started_with_valid_options_in_front_of_every_engine(
    read: Any,
) -> None:
    args, engines = read()
    serve = typer.main.get_command(app)
    assert isinstance(serve, typer.core.TyperGroup)
    ctx = serve.commands["serve"].make_context("serve", list(args))
    assert list(ctx.params["engine"]) == engines
    assert ctx.params["design"] == Path("/etc/glia/best.py")
    assert (ctx.params["host"], ctx.params["port"]) == ("0.0.0.0", 9000)
