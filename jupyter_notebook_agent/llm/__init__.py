"""LLM backends behind one streaming interface, chosen by a model string `[backend:]name`.

A backend is a `Model` class, named by the prefix of a model string. This package's are in
`BUILTIN_BACKENDS`; another package adds one with an entry point in the group
`jupyter_notebook_agent.backends` (its name the prefix, its value the class), as jupyter_client
finds kernel provisioners.
"""

from __future__ import annotations

import functools
import importlib
import os
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from .base import Backend, Model, ModelError, ModelTurn, TextDelta, ToolCall, ToolCallDelta, Usage

if TYPE_CHECKING:
    from .llama_cpp import LlamaCppOptions

BUILTIN_BACKENDS = {
    "openai": "jupyter_notebook_agent.llm.openai_compat:OpenAIModel",
    "llama-cpp": "jupyter_notebook_agent.llm.llama_cpp:LlamaCppModel",
    "replay": "jupyter_notebook_agent.llm.replay:ReplayModel",
}
GROUP = "jupyter_notebook_agent.backends"
OPENAI_DEFAULT_MODEL = "gpt-4o-mini"


@functools.cache
def backends() -> dict[str, str]:
    """Every backend's prefix and where its class is (`module:Class`); ours win a clash."""
    found = {entry.name: entry.value for entry in entry_points(group=GROUP)}
    return {**found, **BUILTIN_BACKENDS}


def backend(prefix: str) -> Backend:
    """The `Model` class of a backend; ModelError where it cannot be imported."""
    module, _, name = backends()[prefix].partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as error:
        raise ModelError(f"the model backend {prefix!r} cannot be loaded: {error}") from None


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
    prefix, sep, name = spec.partition(":")
    if sep and prefix in backends():
        return prefix, name
    return "openai", spec


def load_model(
    spec: str,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    max_retries: int = 4,
    local: LlamaCppOptions | None = None,
) -> Model:
    """The model a model string names; ModelError with a clear message when it cannot be had.
    Each backend takes from the settings what it knows: an endpoint's `base_url`, `api_key` and
    `max_retries`; `local`, the llama-cpp backend's options."""
    prefix, name = parse_model_string(spec)
    if not name:
        raise ModelError(f"model string {spec!r} names no model")
    settings = {
        "base_url": base_url,
        "api_key": api_key,
        "max_retries": max_retries,
        "local": local,
    }
    try:
        return backend(prefix).from_settings(name, settings)
    except Exception as error:
        if isinstance(error, ModelError) or prefix in BUILTIN_BACKENDS:
            raise  # ours fail in words the caller knows
        raise ModelError(f"the model backend {prefix!r} could not make {name!r}: {error}") from None


__all__ = [
    "BUILTIN_BACKENDS",
    "OPENAI_DEFAULT_MODEL",
    "Backend",
    "Model",
    "ModelError",
    "ModelTurn",
    "TextDelta",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
    "backend",
    "backends",
    "default_model",
    "load_model",
    "parse_model_string",
]
