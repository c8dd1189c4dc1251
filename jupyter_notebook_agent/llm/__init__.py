"""LLM backends behind one streaming interface, chosen by a model string `[backend:]name`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Model, ModelError, ModelTurn, TextDelta, ToolCall, ToolCallDelta, Usage

if TYPE_CHECKING:
    from .llama_cpp import LlamaCppOptions

BACKENDS = ("openai", "llama-cpp", "replay")


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
    "Model",
    "ModelError",
    "ModelTurn",
    "TextDelta",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
    "load_model",
    "parse_model_string",
]
