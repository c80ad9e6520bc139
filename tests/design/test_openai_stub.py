"""The scripted OpenAI-compatible server drives pydantic-ai's real OpenAI provider over HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI
from pydantic_ai import Agent
from pydantic_ai.exceptions import (
    ModelHTTPError,
    ModelRateLimitError,
    ModelServerError,
    ModelUnavailableError,
    UnexpectedModelBehavior,
)
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from tests.openai_stub import (
    ChatStub,
    Fail,
    Reply,
    Text,
    ToolCalls,
    error_body,
    replies,
    tool_messages,
)

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("allow_model_requests")]


def make_agent(provider: OpenAIProvider, calls: list[tuple[int, int]]) -> Agent[None, str]:
    """An agent on the stub with one tool, ``add``, which records its arguments in ``calls``."""
    agent = Agent(OpenAIChatModel("stub-model", provider=provider))

    @agent.tool_plain
    def add(a: int, b: int) -> int:
        """Add two integers."""
        calls.append((a, b))
        return a + b

    return agent


@asynccontextmanager
async def no_retries_agent(
    stub: ChatStub, calls: list[tuple[int, int]]
) -> AsyncIterator[Agent[None, str]]:
    """An agent whose openai client makes a single attempt per request (``max_retries=0``)."""
    async with AsyncOpenAI(base_url=stub.base_url, api_key="sk-test", max_retries=0) as client:
        yield make_agent(OpenAIProvider(openai_client=client), calls)


def add_then_answer(request: dict[str, Any]) -> Reply:
    """Call ``add(2, 3)``, then answer with the tool's result once it's in the messages."""
    results = tool_messages(request)
    if not results:
        return ToolCalls([("add", {"a": 2, "b": 3})])
    return Text(f"The sum is {results[-1]['content']}.")


def assert_round_trip(stub: ChatStub, *, stream: bool) -> None:
    first, second = stub.requests
    for request in (first, second):
        assert request["model"] == "stub-model"
        assert request["stream"] is stream
        assert request["tool_choice"] == "auto"
        [tool] = request["tools"]
        assert tool["type"] == "function"
        assert tool["function"]["name"] == "add"
        assert tool["function"]["description"] == "Add two integers."
        assert set(tool["function"]["parameters"]["properties"]) == {"a", "b"}
        if stream:
            assert request["stream_options"] == {"include_usage": True}
        else:
            assert "stream_options" not in request
    assert first["messages"] == [{"role": "user", "content": "What is 2 + 3?"}]
    user, assistant, result = second["messages"]
    assert user == first["messages"][0]
    assert assistant["role"] == "assistant"
    [call] = assistant["tool_calls"]
    assert call["id"] == "call_1_0"
    assert call["function"]["name"] == "add"
    assert json.loads(call["function"]["arguments"]) == {"a": 2, "b": 3}
    assert result == {"role": "tool", "tool_call_id": "call_1_0", "content": "5"}
    assert stub.headers == ["Bearer sk-test", "Bearer sk-test"]


async def test_tool_call_round_trip() -> None:
    calls: list[tuple[int, int]] = []
    async with ChatStub(add_then_answer) as stub:
        provider = OpenAIProvider(base_url=stub.base_url, api_key="sk-test")
        async with make_agent(provider, calls) as agent:
            result = await agent.run("What is 2 + 3?")

    assert calls == [(2, 3)]
    assert result.output == "The sum is 5."
    assert_round_trip(stub, stream=False)
    usage = result.usage
    assert usage.requests == 2
    assert usage.tool_calls == 1
    assert usage.input_tokens == sum(u["prompt_tokens"] for u in stub.usages) > 0
    assert usage.output_tokens == sum(u["completion_tokens"] for u in stub.usages) > 0


async def test_streamed_tool_call_round_trip() -> None:
    calls: list[tuple[int, int]] = []
    async with ChatStub(add_then_answer) as stub:
        provider = OpenAIProvider(base_url=stub.base_url, api_key="sk-test")
        agent = make_agent(provider, calls)
        async with agent, agent.run_stream("What is 2 + 3?") as run:
            pieces = [text async for text in run.stream_text(delta=True, debounce_by=None)]
            usage = run.usage

    assert calls == [(2, 3)]
    assert "".join(pieces) == "The sum is 5."
    assert len(pieces) > 1  # the stub sends text in several chunks
    assert_round_trip(stub, stream=True)
    assert usage.requests == 2
    assert usage.input_tokens == sum(u["prompt_tokens"] for u in stub.usages)
    assert usage.output_tokens == sum(u["completion_tokens"] for u in stub.usages)


async def test_openai_client_retries_a_500_by_default() -> None:
    # `retry-after-ms` only shortens the client's wait; without it, it backs off ~0.5 s.
    script = replies(Fail(500, headers={"retry-after-ms": "1"}), Text("recovered"))
    async with ChatStub(script) as stub:
        provider = OpenAIProvider(base_url=stub.base_url, api_key="sk-test")
        async with make_agent(provider, []) as agent:
            result = await agent.run("hi")

    assert result.output == "recovered"
    assert len(stub.requests) == 2
    assert stub.requests[0] == stub.requests[1]
    assert [h["x-stainless-retry-count"] for h in stub.request_headers] == ["0", "1"]
    assert result.usage.requests == 1  # the SDK's retry is invisible to pydantic-ai


@pytest.mark.parametrize("stream", [False, True])
async def test_500_without_retries_raises_model_http_error(stream: bool) -> None:
    calls: list[tuple[int, int]] = []
    async with (
        ChatStub(replies(Fail(500), Text("works now"))) as stub,
        no_retries_agent(stub, calls) as agent,
    ):
        with pytest.raises(ModelHTTPError) as caught:
            if stream:
                async with agent.run_stream("hi") as run:
                    await run.get_output()
            else:
                await agent.run("hi")
        assert len(stub.requests) == 1
        result = await agent.run("hi")  # the script now answers
        assert result.output == "works now"

    error = caught.value
    assert isinstance(error, ModelServerError)
    assert error.status_code == 500
    assert error.model_name == "stub-model"
    # The openai client unwraps OpenAI's `{"error": {...}}` envelope.
    assert error.body == error_body(500)["error"]
    assert error.provider_error_type == "server_error"
    assert error.headers is not None and error.headers["content-type"] == "application/json"
    assert isinstance(error.__cause__, openai.InternalServerError)


async def test_max_retries_model_setting_disables_sdk_retries() -> None:
    async with ChatStub(replies(Fail(500), Text("unused"))) as stub:
        provider = OpenAIProvider(base_url=stub.base_url, api_key="sk-test")
        async with make_agent(provider, []) as agent:
            with pytest.raises(ModelServerError):
                await agent.run("hi", model_settings={"max_retries": 0})
    assert len(stub.requests) == 1


@pytest.mark.parametrize(
    ("fail", "category", "sdk_error"),
    [
        (Fail(429, headers={"retry-after": "7"}), ModelRateLimitError, openai.RateLimitError),
        (Fail(500), ModelServerError, openai.InternalServerError),
        (Fail(503), ModelUnavailableError, openai.InternalServerError),
    ],
)
async def test_http_error_categories(
    fail: Fail, category: type[Exception], sdk_error: type[Exception]
) -> None:
    async with ChatStub(replies(fail)) as stub, no_retries_agent(stub, []) as agent:
        with pytest.raises(ModelHTTPError) as caught:
            await agent.run("hi")

    error = caught.value
    assert isinstance(error, category)
    assert type(error).__name__ == category.__name__
    assert error.status_code == fail.status
    assert isinstance(error.__cause__, sdk_error)
    if fail.status == 429:
        assert error.retry_after == 7.0
        assert error.headers is not None and error.headers["retry-after"] == "7"
        assert error.provider_error_code == "rate_limit_exceeded"
    else:
        assert error.retry_after is None


async def test_malformed_tool_arguments_are_sent_back_for_a_retry() -> None:
    def script(request: dict[str, Any]) -> Reply:
        results = tool_messages(request)
        if not results:
            return ToolCalls([("add", '{"a": 2, "b": ')])  # truncated JSON
        if len(results) == 1:
            return ToolCalls([("add", {"a": 2, "b": 3})])
        return Text(f"The sum is {results[-1]['content']}.")

    calls: list[tuple[int, int]] = []
    async with ChatStub(script) as stub:
        provider = OpenAIProvider(base_url=stub.base_url, api_key="sk-test")
        async with make_agent(provider, calls) as agent:
            result = await agent.run("What is 2 + 3?")

    assert calls == [(2, 3)]  # the malformed call never reached the tool
    assert result.output == "The sum is 5."
    assert len(stub.requests) == 3
    # The retry goes back as the tool's result, with pydantic's validation errors as JSON.
    _, assistant, feedback = stub.requests[1]["messages"]
    [call] = assistant["tool_calls"]
    assert json.loads(call["function"]["arguments"]) == {"INVALID_JSON": '{"a": 2, "b": '}
    assert feedback["role"] == "tool"
    assert feedback["tool_call_id"] == call["id"]
    [error] = json.loads(feedback["content"])["error"]
    assert error["type"] == "json_invalid"
    assert error["msg"].startswith("Invalid JSON")


async def test_repeated_invalid_tool_arguments_exhaust_the_retries() -> None:
    bad = ToolCalls([("add", {"a": "two", "b": 3})])
    async with ChatStub(replies(bad, bad)) as stub:
        provider = OpenAIProvider(base_url=stub.base_url, api_key="sk-test")
        async with make_agent(provider, []) as agent:
            with pytest.raises(UnexpectedModelBehavior, match="exceeded max retries count of 1"):
                await agent.run("What is 2 + 3?")

    [feedback] = tool_messages(stub.requests[1])
    [error] = json.loads(feedback["content"])["error"]
    assert error["type"] == "int_parsing"
    assert error["loc"] == ["a"]


async def test_script_errors_are_raised_on_exit() -> None:
    def script(request: dict[str, Any]) -> Reply:
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        async with ChatStub(script) as stub, no_retries_agent(stub, []) as agent:
            with pytest.raises(ModelServerError):
                await agent.run("hi")


def test_other_paths_get_openai_style_404() -> None:
    with ChatStub(replies()) as stub:
        for method, path in [("GET", "/models"), ("POST", "/completions"), ("GET", "/chat")]:
            request = urllib.request.Request(
                f"{stub.base_url}{path}", method=method, data=b"{}" if method == "POST" else None
            )
            with pytest.raises(urllib.error.HTTPError) as caught, urllib.request.urlopen(request):
                pass
            with caught.value as response:
                assert response.status == 404
                assert response.headers["Content-Type"] == "application/json"
                body = json.load(response)
            assert body["error"]["code"] == "not_found"
            assert set(body["error"]) == {"message", "type", "param", "code"}
    assert stub.requests == []


def test_raw_completion_shape() -> None:
    script = replies(ToolCalls([("add", {"a": 1}), ("add", "not json")]), Text("hi"))
    with ChatStub(script) as stub:
        responses = []
        for _ in range(2):
            request = urllib.request.Request(
                f"{stub.base_url}/chat/completions",
                data=json.dumps({"model": "m", "messages": []}).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request) as response:
                responses.append(json.load(response))

    calls, text = responses
    assert calls["object"] == "chat.completion"
    assert calls["id"] == "chatcmpl-stub-1"
    assert calls["created"] == 1_700_000_000
    assert calls["model"] == "m"
    [choice] = calls["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert [c["function"]["arguments"] for c in choice["message"]["tool_calls"]] == [
        '{"a": 1}',
        "not json",
    ]
    assert [c["id"] for c in choice["message"]["tool_calls"]] == ["call_1_0", "call_1_1"]
    assert text["choices"][0]["finish_reason"] == "stop"
    assert text["choices"][0]["message"]["content"] == "hi"
    usage = text["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert stub.headers == [None, None]
