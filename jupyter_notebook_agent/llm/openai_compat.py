"""Any OpenAI-compatible chat endpoint (OpenAI, vLLM, Ollama, LM Studio, llama.cpp's server...)."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import openai

from .base import ModelError, StreamItem, TextDelta, ToolCallDelta, TurnAssembler, Usage

#: Local servers usually ignore the key, but the client insists on one.
PLACEHOLDER_KEY = "not-needed"


class OpenAIModel:
    """Streams turns with native tool calls; its client backs off and retries 429, 5xx, timeouts."""

    def __init__(
        self,
        name: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        max_retries: int = 4,
        timeout_s: float = 120.0,
    ) -> None:
        api_key = api_key or os.environ.get("OPENAI_API_KEY")
        base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        if not api_key:
            if base_url is None:
                raise ModelError(
                    f"no API key for model {name!r}: set OPENAI_API_KEY, "
                    "or give --base-url for a local server that needs none"
                )
            api_key = PLACEHOLDER_KEY
        self.name = name
        self.context_tokens: int | None = None
        self.max_retries = max_retries
        self._client = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, max_retries=max_retries, timeout=timeout_s
        )
        self.endpoint = str(self._client.base_url).rstrip("/")

    @classmethod
    def from_settings(cls, name: str, settings: Mapping[str, Any]) -> OpenAIModel:
        return cls(
            name,
            base_url=settings.get("base_url"),
            api_key=settings.get("api_key"),
            max_retries=settings.get("max_retries", 4),
        )

    def warm(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> int:
        return 0  # the endpoint keeps its model ready

    async def stream(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> AsyncIterator[StreamItem]:
        started = time.perf_counter()
        ttft = 0.0
        assembler = TurnAssembler()
        usage = Usage()
        cut_short = ""
        try:
            chunks = await self._client.chat.completions.create(
                model=self.name,
                messages=messages,  # type: ignore[arg-type]
                tools=tools,  # type: ignore[arg-type]
                stream=True,
                stream_options={"include_usage": True},
            )
            async with chunks:  # a reader that stops early closes the response
                async for chunk in chunks:
                    if chunk.usage:
                        details = chunk.usage.prompt_tokens_details
                        usage = Usage(
                            chunk.usage.prompt_tokens,
                            chunk.usage.completion_tokens,
                            (details.cached_tokens or 0) if details else 0,
                        )
                    for choice in chunk.choices:
                        if choice.finish_reason == "length":
                            cut_short = "it reached the endpoint's limit of tokens for one answer"
                        for delta in _deltas(choice.delta):
                            ttft = ttft or time.perf_counter() - started
                            assembler.add(delta)
                            yield delta
        except openai.APIError as error:
            raise ModelError(self._explain(error)) from error
        turn = assembler.turn(usage, ttft, time.perf_counter() - started)
        turn.cut_short = cut_short
        yield turn

    def _explain(self, error: openai.APIError) -> str:
        """One line that says what went wrong and what to do about it."""
        where = self.endpoint
        retried = f" (after {self.max_retries} retries)"
        if isinstance(error, openai.AuthenticationError):
            return f"{where} rejected the API key (401): check OPENAI_API_KEY"
        if isinstance(error, openai.NotFoundError):
            return f"{where} does not serve model {self.name!r} (404): check --model"
        if isinstance(error, openai.APITimeoutError):
            return f"{where} did not answer in time{retried}"
        if isinstance(error, openai.APIConnectionError):
            return f"cannot reach {where}{retried}: is the server running and the URL right?"
        if isinstance(error, openai.RateLimitError):
            return f"{where} is rate limiting requests (429){retried}: try again later"
        said = error.body.get("message") if isinstance(error.body, dict) else None
        if isinstance(error, openai.APIStatusError):
            later = retried if error.status_code >= 500 else ""
            return f"{where} answered {error.status_code}{later}: {said or error.message}"
        return f"{where}: {said or error.message}"

    async def aclose(self) -> None:
        await self._client.close()


def _deltas(delta: Any) -> list[TextDelta | ToolCallDelta]:
    found: list[TextDelta | ToolCallDelta] = []
    if delta.content:
        found.append(TextDelta(delta.content))
    for call in delta.tool_calls or []:
        function = call.function
        found.append(
            ToolCallDelta(
                index=call.index or 0,
                id=call.id,
                name=function.name if function else None,
                arguments=(function.arguments or "") if function else "",
            )
        )
    return found
