"""A fake inference engine on loopback: OpenAI's streaming completions API with known timing.

``POST /v1/completions`` (streaming only) waits ``ttft_s`` plus ``per_prompt_token_s`` for each
prompt token, then streams ``max_tokens`` one-token chunks ``tpot_s`` apart, then a usage chunk
and ``data: [DONE]``; ``GET /v1/models`` lists ``model``. Requests numbered in ``fail`` (1 for
the first) are answered with a 500 in OpenAI's error format. The stub records each request's
body and the peak number of requests in flight. Used as a context manager, it serves from a
daemon thread and stops within a bounded time.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

__all__ = ["EngineStub"]


class EngineStub:
    """A streaming completions server on ``127.0.0.1`` (see the module docstring)."""

    def __init__(
        self,
        *,
        ttft_s: float = 0.02,
        tpot_s: float = 0.005,
        per_prompt_token_s: float = 0.0,
        model: str = "stub-model",
        fail: frozenset[int] = frozenset(),
    ) -> None:
        self.ttft_s, self.tpot_s, self.per_prompt_token_s = ttft_s, tpot_s, per_prompt_token_s
        self.model = model
        self.fail = fail
        self.requests: list[dict[str, Any]] = []
        self.authorization: set[str] = set()
        """The ``Authorization`` headers received."""
        self.in_flight = self.peak = 0
        self._lock = threading.Lock()
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    async def __aenter__(self) -> Self:
        return self.__enter__()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5.0)

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(et, e, tb)

    def _begin(self, body: dict[str, Any], authorization: str | None) -> int:
        with self._lock:
            self.requests.append(body)
            if authorization is not None:
                self.authorization.add(authorization)
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            return len(self.requests)

    def _end(self) -> None:
        with self._lock:
            self.in_flight -= 1


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, stub: EngineStub) -> None:
        self.stub = stub
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.rstrip("/") != "/v1/models":
            self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
            return
        model = {"id": self.server.stub.model, "object": "model", "created": 0, "owned_by": "x"}
        self._json(200, {"object": "list", "data": [model]})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        stub = self.server.stub
        number = stub._begin(body, self.headers.get("Authorization"))
        try:
            if number in stub.fail:
                error = {"message": "stub engine failure", "type": "server_error", "code": None}
                self._json(500, {"error": error}, {"x-should-retry": "false"})
                return
            self._stream(body, stub)
        finally:
            stub._end()

    def _stream(self, body: dict[str, Any], stub: EngineStub) -> None:
        prompt = body.get("prompt", [])
        n_prompt = len(prompt) if isinstance(prompt, list) else max(1, len(str(prompt)) // 4)
        tokens = int(body.get("max_tokens") or 16)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        time.sleep(stub.ttft_s + stub.per_prompt_token_s * n_prompt)
        for k in range(tokens):
            if k:
                time.sleep(stub.tpot_s)
            last = k == tokens - 1
            choice = {"index": 0, "text": "x", "logprobs": None,
                      "finish_reason": "length" if last else None}  # fmt: skip
            self._event({"id": "cmpl-1", "object": "text_completion", "created": 0,
                         "model": stub.model, "choices": [choice]})  # fmt: skip
        usage = {"prompt_tokens": n_prompt, "completion_tokens": tokens,
                 "total_tokens": n_prompt + tokens}  # fmt: skip
        self._event({"id": "cmpl-1", "object": "text_completion", "created": 0,
                     "model": stub.model, "choices": [], "usage": usage})  # fmt: skip
        self._chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _event(self, data: dict[str, Any]) -> None:
        self._chunk(f"data: {json.dumps(data)}\n\n".encode())

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _json(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
