"""Models for the agents: resolving a model name, retrying provider errors, metering usage.

Any pydantic-ai model string works (``openai:o3``, ``anthropic:claude-sonnet-4-5``, ...), and
``base_url`` points an OpenAI-compatible model at a local server (vLLM, Ollama, llama.cpp).
``"offline"`` is the deterministic non-LLM designer. Keys come from the environment and are
never logged: errors name the variable, never its value.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio
from pydantic_ai.exceptions import (
    ModelAPIError,
    ModelConnectionError,
    ModelHTTPError,
    ModelRateLimitError,
    ModelServerError,
    ModelUnavailableError,
    UserError,
)
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings

from glia._errors import GliaError, InputError
from glia.report import Budget, ModelUsage

from ._offline import offline_researcher, offline_supervisor

__all__ = ["BudgetExhausted", "Meter", "MeteredModel", "ProviderFailed", "resolve_models"]

RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})
OnRetry = Callable[[int, float, str], Awaitable[None]]
"""Called before a retry with the attempt number, the wait in seconds and the error."""


class ProviderFailed(GliaError):
    """A model provider kept failing (or refused the request); the run stops cleanly."""


class BudgetExhausted(GliaError):
    """The run's token or dollar budget is used up."""


@dataclass
class Meter:
    """Usage and cost per model, checked against the run's token and dollar budget."""

    budget: Budget
    usage: dict[str, ModelUsage] = field(default_factory=dict)

    @property
    def tokens(self) -> int:
        return sum(u.input_tokens + u.output_tokens for u in self.usage.values())

    @property
    def cost_usd(self) -> float:
        return sum(u.cost_usd for u in self.usage.values())

    def check(self) -> None:
        """Raise :class:`BudgetExhausted` if a token or dollar limit is reached."""
        b = self.budget
        if b.tokens is not None and self.tokens >= b.tokens:
            raise BudgetExhausted(f"token budget reached ({self.tokens:,} of {b.tokens:,})")
        if b.usd is not None and self.cost_usd >= b.usd:
            raise BudgetExhausted(f"dollar budget reached (${self.cost_usd:.4f} of ${b.usd:.4f})")

    def add(self, label: str, response: ModelResponse) -> None:
        """Count one response of the model called ``label``."""
        u = self.usage.get(label) or ModelUsage(model=label, priced=not label.startswith("offline"))
        cost, priced = 0.0, u.priced
        if priced:
            try:
                cost = float(response.cost().total_price)
            except (LookupError, ValueError, AssertionError):
                priced = False  # genai-prices does not know this model: count it as free
        self.usage[label] = ModelUsage(
            model=label,
            requests=u.requests + 1,
            input_tokens=u.input_tokens + response.usage.input_tokens,
            output_tokens=u.output_tokens + response.usage.output_tokens,
            cost_usd=u.cost_usd + cost,
            priced=priced,
        )


class MeteredModel(WrapperModel):
    """A model whose requests are metered, budget-checked, and retried with exponential
    backoff on rate limits, timeouts, connection errors and 5xx responses."""

    def __init__(
        self,
        wrapped: Model,
        *,
        label: str,
        meter: Meter,
        on_retry: OnRetry | None = None,
        attempts: int = 5,
        backoff_s: float = 2.0,
        max_wait_s: float = 60.0,
    ) -> None:
        super().__init__(wrapped)
        self.meter_label, self.meter, self.on_retry = label, meter, on_retry
        self.attempts, self.backoff_s, self.max_wait_s = attempts, backoff_s, max_wait_s

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        self.meter.check()
        for attempt in range(1, self.attempts + 1):
            try:
                response = await super().request(messages, model_settings, model_request_parameters)
            except ModelAPIError as e:
                reason = describe(e)
                if not retryable(e):
                    raise ProviderFailed(f"{self.meter_label}: {reason}") from None
                if attempt == self.attempts:
                    raise ProviderFailed(
                        f"{self.meter_label}: still failing after {attempt} attempts ({reason})"
                    ) from None
                wait = min(self.max_wait_s, e.retry_after or self.backoff_s * 2 ** (attempt - 1))
                if self.on_retry is not None:
                    await self.on_retry(attempt, wait, reason)
                await anyio.sleep(wait)
                continue
            self.meter.add(self.meter_label, response)
            return response
        raise AssertionError("unreachable")


def retryable(e: ModelAPIError) -> bool:
    """Whether a provider error is worth retrying (transient), not a refusal."""
    if isinstance(e, ModelRateLimitError | ModelServerError | ModelUnavailableError):
        return True
    if isinstance(e, ModelConnectionError):
        return True
    return isinstance(e, ModelHTTPError) and e.status_code in RETRYABLE_STATUS


def describe(e: ModelAPIError) -> str:
    """A short description of a provider error (status and error type; never the body, which
    may echo request content)."""
    if isinstance(e, ModelHTTPError):
        kind = f" {e.provider_error_type or e.provider_error_code or ''}".rstrip()
        return f"HTTP {e.status_code}{kind}"
    return type(e).__name__.removeprefix("Model")


_KEYS = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "google-gla": "GEMINI_API_KEY",
    "groq": "GROQ_API_KEY",
    "mistral": "MISTRAL_API_KEY",
    "deepseek": "DEEPSEEK_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
}


def resolve_models(name: str, base_url: str | None = None) -> Model:
    """The pydantic-ai model for ``name``; raises :class:`InputError` before any request is
    made when it cannot work (unknown provider, missing key, provider not installed)."""
    if name == "offline":
        return offline_researcher()
    if name == "offline-supervisor":
        return offline_supervisor()
    if base_url is not None:
        from pydantic_ai.models.openai import OpenAIChatModel
        from pydantic_ai.providers.openai import OpenAIProvider

        # Local servers usually need no key, but the client insists on one. Our own retries
        # (with events) replace the client's silent ones.
        key = os.environ.get("OPENAI_API_KEY") or "not-needed"
        model_name = name.split(":", 1)[1] if name.startswith("openai:") else name
        return OpenAIChatModel(
            model_name,
            provider=OpenAIProvider(base_url=base_url, api_key=key),
            settings=ModelSettings(max_retries=0),
        )
    provider = name.split(":", 1)[0] if ":" in name else ""
    if not provider:
        raise InputError(
            f"unknown model {name!r}: give 'offline' (no key needed), a pydantic-ai model "
            "string such as 'openai:gpt-4.1', or a model name with --base-url URL"
        )
    env = _KEYS.get(provider)
    if env is not None and not os.environ.get(env):
        raise InputError(
            f"model {name!r} needs the {env} environment variable: set it, or use "
            "--model offline (no key needed)"
        )
    from pydantic_ai.models import infer_model

    try:
        return infer_model(name)
    except ImportError:
        raise InputError(
            f"the {provider!r} provider is not installed: pip install "
            f"'pydantic-ai-slim[{provider}]' (or use --model offline)"
        ) from None
    except UserError as e:
        raise InputError(f"model {name!r} cannot be used: {e}") from None
