"""Without ``allow_model_requests`` a test cannot reach a model provider, not even on loopback."""

from __future__ import annotations

import pytest
from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from tests.openai_stub import ChatStub, Text

pytestmark = pytest.mark.anyio


async def test_a_real_provider_is_refused_before_any_request() -> None:
    with ChatStub(lambda request: Text("unreachable")) as stub:
        model = OpenAIChatModel("m", provider=OpenAIProvider(base_url=stub.base_url, api_key="k"))
        with pytest.raises(RuntimeError, match="ALLOW_MODEL_REQUESTS is False"):
            await Agent(model).run("hello")
    assert stub.requests == []
