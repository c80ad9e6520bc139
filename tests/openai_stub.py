"""A scripted OpenAI-compatible chat-completions server on loopback, for tests.

Tests start it themselves, so the real OpenAI provider code path (the ``openai`` client, HTTP, tool
calls, error mapping) runs against a "model" that is a plain Python function::

    def script(request: dict[str, Any]) -> Reply:
        if not tool_messages(request):
            return ToolCalls([("add", {"a": 1, "b": 2})])
        return Text("3")

    async with ChatStub(script) as stub:
        provider = OpenAIProvider(base_url=stub.base_url, api_key="sk-test")
        ...
    assert len(stub.requests) == 2

Only ``POST /v1/chat/completions`` is served, non-streaming and streaming (SSE ``data:`` chunks
ending with ``data: [DONE]``, plus a usage chunk when ``stream_options.include_usage`` is set);
every other path gets a 404 in OpenAI's error format. The server is a standard-library
``ThreadingHTTPServer`` in a daemon thread: the script runs on a server thread, not the event
loop's, so it should be quick. Leaving the context shuts the server down, closes any connection a
client still holds open and joins the threads, all within a bounded time. An exception raised by
the script is answered with a 500 and raised again when the context exits.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self, TypeAlias

__all__ = [
    "CREATED",
    "ChatStub",
    "Fail",
    "Reply",
    "Script",
    "Text",
    "ToolCalls",
    "error_body",
    "replies",
    "tool_messages",
]

CREATED = 1_700_000_000
"""The fixed ``created`` timestamp of every response."""

CHAT_PATH = "/v1/chat/completions"

_POLL_INTERVAL = 0.05
_JOIN_TIMEOUT = 5.0
_SOCKET_TIMEOUT = 30.0
"""A connection idle this long is dropped, so a handler thread never waits forever."""


@dataclass(frozen=True)
class Text:
    """Answer with an assistant message holding ``content``."""

    content: str
    finish_reason: str = "stop"


@dataclass(frozen=True)
class ToolCalls:
    """Answer with tool calls: ``(name, arguments)`` pairs, optionally with some text too.

    Arguments given as a mapping are sent JSON-encoded; a string is sent verbatim, so a test can
    send malformed JSON.
    """

    calls: Sequence[tuple[str, Mapping[str, Any] | str]]
    content: str | None = None
    finish_reason: str = "tool_calls"


@dataclass(frozen=True)
class Fail:
    """Answer with HTTP ``status``.

    ``body`` defaults to an OpenAI-style error (see :func:`error_body`); a string is sent
    verbatim, anything else JSON-encoded. ``headers`` are added to the response, e.g.
    ``{"retry-after": "1"}`` or ``{"x-should-retry": "false"}``.
    """

    status: int
    body: object = None
    headers: Mapping[str, str] = field(default_factory=dict)


Reply: TypeAlias = Text | ToolCalls | Fail
Script: TypeAlias = Callable[[dict[str, Any]], Reply]

_ERROR_KINDS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
}


def error_body(
    status: int, message: str | None = None, *, type: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """An error body in OpenAI's format: ``{"error": {"message", "type", "param", "code"}}``."""
    default_type, default_code = _ERROR_KINDS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None)
    )
    return {
        "error": {
            "message": message if message is not None else f"stub error {status}",
            "type": type if type is not None else default_type,
            "param": None,
            "code": code if code is not None else default_code,
        }
    }


def replies(*answers: Reply) -> Script:
    """A script giving ``answers`` in order, whatever the request; one more request fails."""
    pending = list(answers)
    lock = threading.Lock()

    def script(request: dict[str, Any]) -> Reply:
        with lock:
            if not pending:
                raise AssertionError(f"unexpected request #{len(answers) + 1}: {request!r}")
            return pending.pop(0)

    return script


def tool_messages(request: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``role: tool`` messages of a request: the tool results the model has been sent."""
    messages: list[dict[str, Any]] = request.get("messages", [])
    return [m for m in messages if m.get("role") == "tool"]


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # `join_handlers` joins them, with a deadline

    def __init__(self, stub: ChatStub) -> None:
        self.stub = stub
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        self.handlers: list[threading.Thread] = []
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Runs on the serving thread, so once `shutdown()` returns no connection is added.
        with self.connections_lock:
            self.connections.add(request)
        thread = threading.Thread(
            target=self.process_request_thread, args=(request, client_address), daemon=True
        )
        self.handlers = [t for t in self.handlers if t.is_alive()]
        self.handlers.append(thread)
        thread.start()

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """Make every handler thread's pending read or write return, so it can be joined."""
        with self.connections_lock:
            connections = list(self.connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def join_handlers(self, deadline: float) -> None:
        for thread in self.handlers:
            thread.join(max(0.0, deadline - time.monotonic()))

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client hanging up mid-response is normal; don't print tracebacks to stderr.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the openai client pools connections
    timeout = _SOCKET_TIMEOUT
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self._read_body()
        if self.path.split("?", 1)[0] != CHAT_PATH:
            self._send_json(404, error_body(404, f"Invalid URL (POST {self.path})"))
            return
        try:
            request = json.loads(body)
            if not isinstance(request, dict):
                raise ValueError("not a JSON object")
        except ValueError as e:
            self._send_json(400, error_body(400, f"invalid JSON body: {e}"))
            return
        stub = self.server.stub
        number = stub._record(request, {k.lower(): v for k, v in self.headers.items()})
        try:
            reply = stub.script(request)
            if isinstance(reply, Fail):
                self._send_fail(reply)
                return
            if not isinstance(reply, Text | ToolCalls):
                raise TypeError(f"a script must return Text, ToolCalls or Fail, not {reply!r}")
            usage = _usage(request, reply)
            if request.get("stream"):
                chunks = list(_chunks(request, reply, number, usage))
            else:
                completion = _completion(request, reply, number, usage)
        except Exception as e:
            stub._script_errors.append(e)
            # Tell the openai client not to retry: the script would most likely fail again.
            error = error_body(500, f"stub script failed: {e!r}")
            self._send_json(500, error, {"x-should-retry": "false"})
            return
        stub._record_usage(usage)
        if request.get("stream"):
            self._send_stream(chunks)
        else:
            self._send_json(200, completion)

    def do_GET(self) -> None:
        self._not_found()

    def do_PUT(self) -> None:
        self._not_found()

    def do_PATCH(self) -> None:
        self._not_found()

    def do_DELETE(self) -> None:
        self._not_found()

    def _not_found(self) -> None:
        self._read_body()
        self._send_json(404, error_body(404, f"Invalid URL ({self.command} {self.path})"))

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send_json(
        self, status: int, payload: object, headers: Mapping[str, str] | None = None
    ) -> None:
        """Send ``payload``, JSON-encoded unless it's a string, which is sent verbatim."""
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        base = {"Content-Type": "application/json", "Content-Length": str(len(data))}
        self._send_head(status, base, headers)
        self.wfile.write(data)

    def _send_head(self, status: int, *headers: Mapping[str, str] | None) -> None:
        merged: dict[str, tuple[str, str]] = {}  # later ones win, whatever their case
        for group in headers:
            merged.update({name.lower(): (name, value) for name, value in (group or {}).items()})
        self.send_response(status)
        for name, value in merged.values():
            self.send_header(name, value)
        self.end_headers()

    def _send_fail(self, fail: Fail) -> None:
        body = error_body(fail.status) if fail.body is None else fail.body
        self._send_json(fail.status, body, fail.headers)

    def _send_stream(self, chunks: list[dict[str, Any]]) -> None:
        base = {
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "Transfer-Encoding": "chunked",
        }
        self._send_head(200, base)
        for chunk in chunks:
            self._write_chunk(f"data: {json.dumps(chunk)}\n\n".encode())
        self._write_chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()


def _tool_call_id(number: int, index: int) -> str:
    return f"call_{number}_{index}"


def _arguments(args: Mapping[str, Any] | str) -> str:
    return args if isinstance(args, str) else json.dumps(args)


def _usage(request: Mapping[str, Any], reply: Text | ToolCalls) -> dict[str, int]:
    prompt = _tokens(json.dumps(request.get("messages", [])) + json.dumps(request.get("tools", [])))
    if isinstance(reply, Text):
        completion = _tokens(reply.content)
    else:
        text = (reply.content or "") + "".join(n + _arguments(a) for n, a in reply.calls)
        completion = _tokens(text)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _envelope(request: Mapping[str, Any], number: int, obj: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-stub-{number}",
        "object": obj,
        "created": CREATED,
        "model": request.get("model", "stub-model"),
        "system_fingerprint": "fp_stub",
    }


def _completion(
    request: Mapping[str, Any], reply: Text | ToolCalls, number: int, usage: dict[str, int]
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "refusal": None}
    if isinstance(reply, Text):
        message["content"] = reply.content
    else:
        message["content"] = reply.content
        message["tool_calls"] = [
            {
                "id": _tool_call_id(number, i),
                "type": "function",
                "function": {"name": name, "arguments": _arguments(args)},
            }
            for i, (name, args) in enumerate(reply.calls)
        ]
    return {
        **_envelope(request, number, "chat.completion"),
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": reply.finish_reason,
            }
        ],
        "usage": usage,
    }


def _pieces(text: str, size: int = 8) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _chunks(
    request: Mapping[str, Any], reply: Text | ToolCalls, number: int, usage: dict[str, int]
) -> Iterator[dict[str, Any]]:
    head = _envelope(request, number, "chat.completion.chunk")

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {**head, "choices": [choice]}

    yield chunk({"role": "assistant", "content": "", "refusal": None})
    text = reply.content if isinstance(reply, Text) else reply.content or ""
    for piece in _pieces(text):
        yield chunk({"content": piece})
    if isinstance(reply, ToolCalls):
        for index, (name, args) in enumerate(reply.calls):
            start = {
                "index": index,
                "id": _tool_call_id(number, index),
                "type": "function",
                "function": {"name": name, "arguments": ""},
            }
            yield chunk({"tool_calls": [start]})
            for piece in _pieces(_arguments(args)):
                yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    yield chunk({}, reply.finish_reason)
    if (request.get("stream_options") or {}).get("include_usage"):
        yield {**head, "choices": [], "usage": usage}


class ChatStub:
    """An OpenAI-compatible chat-completions server on ``127.0.0.1``, answering with ``script``.

    Use it as an async (or plain) context manager. Attributes:

    * ``base_url``: ``"http://127.0.0.1:PORT/v1"``, for ``OpenAIProvider(base_url=...)``.
    * ``requests``: the parsed JSON bodies of the chat-completions requests received, in order,
      including those answered with a :class:`Fail`.
    * ``headers``: the ``Authorization`` header of each of those requests (``None`` if absent).
    * ``request_headers``: all headers of each of those requests, names lowercased (the openai
      client numbers its retries in ``x-stainless-retry-count``).
    * ``usages``: the ``usage`` sent with each successful response (a :class:`Fail` has none).
    """

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[dict[str, Any]] = []
        self.headers: list[str | None] = []
        self.request_headers: list[dict[str, str]] = []
        self.usages: list[dict[str, int]] = []
        self._lock = threading.Lock()
        self._script_errors: list[Exception] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("ChatStub is not running")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _record(self, request: dict[str, Any], headers: dict[str, str]) -> int:
        with self._lock:
            self.requests.append(request)
            self.headers.append(headers.get("authorization"))
            self.request_headers.append(headers)
            return len(self.requests)

    def _record_usage(self, usage: dict[str, int]) -> None:
        with self._lock:
            self.usages.append(usage)

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("ChatStub is already running")
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL},
            name=f"ChatStub:{self.port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None or thread is None:
            return
        deadline = time.monotonic() + _JOIN_TIMEOUT
        server.shutdown()  # returns within one poll interval
        thread.join(_JOIN_TIMEOUT)
        server.drop_connections()
        server.join_handlers(deadline)  # quick, as their sockets are now shut down
        server.server_close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        if exc is None and self._script_errors:
            raise self._script_errors[0]

    async def __aenter__(self) -> Self:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)
