"""``glia bench`` against a real third-party engine: llama.cpp's OpenAI server, on loopback.

The server is ``python -m llama_cpp.server`` from ``llama-cpp-python`` (llama.cpp compiled from
source at install), serving a tiny random-weight llama GGUF written here with ``gguf``. Both come
with the ``engines`` extra (``pip install -e '.[engines]'``); where they are not installed the
tests are skipped with that reason, visibly (``-ra``), never silently.
"""

from __future__ import annotations

import csv
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from glia.cli import app
from glia.sim import COLUMNS
from tests.engines.tiny_gguf import SPECIAL, VOCAB, write_tiny_llama

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        find_spec("llama_cpp") is None or find_spec("gguf") is None,
        reason="llama.cpp's server is not installed: pip install -e '.[engines]' (builds "
        "llama.cpp from source, ~8 min on 2 busy cores)",
    ),
]

READY_S = 120.0  # bounded wait for the server to load the model and listen


def _http(url: str, body: object = None) -> tuple[int, object]:
    """GET (or POST ``body`` as JSON) ``url``; its status and JSON body (None when not JSON)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            status, text = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A llama.cpp server on a free loopback port with the tiny model; yields its base URL.

    ``--interrupt_requests False``: by default this server cuts a streaming request short when
    the next one arrives; without the flag it serves them in turn, each to its ``max_tokens``.
    """
    model = write_tiny_llama(tmp_path_factory.mktemp("model") / "tiny.gguf")
    port = _free_port()
    log = tmp_path_factory.mktemp("log") / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias",
             "tiny", "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "1024",
             "--n_threads", "1", "--seed", "0", "--interrupt_requests", "False"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama.cpp server exited {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if _http(f"{url}/v1/models")[0] == 200:
                    break
            except OSError:  # not listening yet
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama.cpp server not ready in {READY_S:.0f} s: {log.read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_bench_completes_every_request_with_the_simulators_columns(
    llama_server: str, tmp_path: Path
) -> None:
    workload = ["--concurrency", "2", "--isl", "24", "--osl", "6", "--num-requests", "20"]
    args = ["bench", "--endpoint", llama_server, *workload, "--text-prompts"]
    args += ["--out", str(tmp_path), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["num_requests"] == 20 and record["failed"] == 0
    assert record["model"] == "tiny"
    with open(tmp_path / "requests.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == COLUMNS
    assert sorted(int(r["request_id"]) for r in rows) == list(range(20))

    def col(name: str) -> np.ndarray:
        return np.array([float(r[name]) for r in rows])

    ttft, e2e = col("prefill_e2e_time"), col("request_e2e_time")
    assert np.all(ttft > 0) and np.all(e2e > ttft)
    assert np.all(col("completed_at") > col("prefill_completed_at"))
    assert np.all(col("prefill_completed_at") > col("arrived_at"))
    # max_tokens honoured exactly: the model never ends early (see tiny_gguf) nor runs over.
    assert set(col("request_num_decode_tokens")) == {6.0}
    # This server streams no usage: the prompt length is bench's own count of words sent.
    assert set(col("request_num_prefill_tokens")) == {24.0}


def test_the_engine_counts_one_token_per_bench_word(llama_server: str) -> None:
    # llama-cpp-python's server has its own tokenize route (/extras/tokenize, not vLLM's
    # /tokenize): BOS, then one token per word (w<i> is id SPECIAL + i in the tiny vocabulary).
    status, body = _http(f"{llama_server}/extras/tokenize", {"input": "w1 w12 w999"})
    assert status == 200 and isinstance(body, dict), body
    tokens = body["tokens"]
    assert tokens == [1, SPECIAL + 1, SPECIAL + 12, SPECIAL + 999] and tokens[-1] == VOCAB - 1
    assert _http(f"{llama_server}/extras/tokenize/count", {"input": "w1 w12 w999"}) == (
        200,
        {"count": 4},
    )
    # What a routing proxy could scrape: this server has no Prometheus /metrics and no /health.
    assert _http(f"{llama_server}/metrics")[0] == 404
    assert _http(f"{llama_server}/health")[0] == 404
    status, models = _http(f"{llama_server}/v1/models")
    assert isinstance(models, dict) and [m["id"] for m in models["data"]] == ["tiny"]
