"""LLM backends behind one streaming interface, chosen by a model string `[backend:]name`."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .base import Model, ModelError, ModelTurn, TextDelta, ToolCall, ToolCallDelta, Usage

if TYPE_CHECKING:
    from .llama_cpp import LlamaCppOptions

BACKENDS = ("openai", "llama-cpp", "replay")
OPENAI_DEFAULT_MODEL = "gpt-4o-mini"


def default_model(base_url: str | None, api_key: str | None, local_model: str) -> str:
    """The model when none is named: OpenAI's default where a key or an endpoint is set (given,
    or in OPENAI_API_KEY / OPENAI_BASE_URL), else the local model (`hf:...` or a path)."""
    environment = os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL")
    if base_url or api_key or environment:
        return OPENAI_DEFAULT_MODEL
    return f"llama-cpp:{local_model}"


def parse_model_string(spec: str) -> tuple[str, str]:
    """`gpt-4o-mini` -> (openai, gpt-4o-mini); `llama-cpp:/m.gguf` -> (llama-cpp, /m.gguf).

    A prefix that names no backend stays part of the name, so `qwen2.5-coder:7b` is an openai model.
    """
    backend, sep, name = spec.partition(":")
    if sep and backend in BACKENDS:
        return backend, name
    return "openai", spec


def load_model(
    spec: str,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    max_retries: int = 4,
    local: LlamaCppOptions | None = None,
) -> Model:
    """The backend a model string names; ModelError with a clear message when it cannot be had.
    `local` configures the llama-cpp backend."""
    backend, name = parse_model_string(spec)
    if not name:
        raise ModelError(f"model string {spec!r} names no model")
    if backend == "replay":
        from .replay import ReplayModel

        return ReplayModel(name)
    if backend == "llama-cpp":
        from .llama_cpp import LlamaCppModel

        return LlamaCppModel(name, local)
    from .openai_compat import OpenAIModel

    return OpenAIModel(name, base_url=base_url, api_key=api_key, max_retries=max_retries)


__all__ = [
    "BACKENDS",
    "OPENAI_DEFAULT_MODEL",
    "Model",
    "ModelError",
    "ModelTurn",
    "TextDelta",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
    "default_model",
    "load_model",
    "parse_model_string",
]
