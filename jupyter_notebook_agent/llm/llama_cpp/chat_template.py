"""The chat template that turns a conversation into a local model's prompt: the GGUF's own, else
one of llama.cpp's built-in templates chosen by the model's architecture (a Gemma model given
ChatML, say, answers poorly: it was never tuned on those markers)."""

from __future__ import annotations

import ctypes
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from .native_calls import NativeCalls, learn_native_calls


class ChatFormat(Protocol):
    def __call__(
        self,
        messages: list[dict[str, Any]],
        answer_next: bool,
        tools: list[dict[str, Any]] | None = None,
    ) -> str:
        """The prompt, ending where the answer begins when `answer_next`; `tools`, for a
        template that describes them itself (the built-in ones do not)."""
        ...


BUILTIN_BY_ARCHITECTURE = {
    "gemma": "gemma",
    "gemma2": "gemma",
    "gemma3": "gemma",
    "gemma3n": "gemma",
    "qwen2": "chatml",
    "qwen2moe": "chatml",
    "qwen3": "chatml",
    "qwen3moe": "chatml",
    "phi3": "phi3",
    "granite": "granite",
    "exaone": "exaone3",
    "command-r": "command-r",
    "cohere2": "command-r",
    "chatglm": "chatglm4",
}
"""llama.cpp's built-in template for a GGUF without one, by `general.architecture`. Llama's
architecture is shared by models with different templates, so its tokenizer decides (below). Each
keeps the prompt's prefix from step to step (a prompt and its answer begin the next prompt), which
llama.cpp's KV cache relies on: deepseek2's does not, and is left out."""

FALLBACK = "chatml"
"""What llama.cpp itself falls back to, and what most small instruct models were tuned on."""


@dataclass(frozen=True)
class ChatTemplate:
    """The template a model's prompts are made with, and where it came from (said in the log and
    by `describe`, since a wrong one silently makes a model worse)."""

    name: str
    """`gguf` for the file's own Jinja template, else the name of llama.cpp's built-in one."""
    source: str
    """Why this one: the file's metadata, the architecture, or the fallback."""
    format: ChatFormat
    calls: NativeCalls | None = None
    """How the template writes a tool call, where it has a format of its own."""

    def describe(self) -> str:
        if self.name == "gguf":
            return "its own chat template"
        return f"llama.cpp's {self.name!r} chat template ({self.source})"


def chat_template(metadata: Mapping[str, Any], bos: str, eos: str, add_bos: bool) -> ChatTemplate:
    """The GGUF's own template where it has one, else a built-in one by architecture; `add_bos`:
    whether the tokenizer begins a text with `bos` (llama.cpp decides, from the file or its kind
    of vocabulary), which the built-in templates leave out."""
    if jinja := metadata.get("tokenizer.chat_template"):
        format = _jinja(jinja, bos, eos)
        return ChatTemplate("gguf", "the file's metadata", format, learn_native_calls(format))
    architecture = str(metadata.get("general.architecture", ""))
    name = builtin_name(metadata)
    start = bos if add_bos else ""
    if name == FALLBACK and architecture not in BUILTIN_BY_ARCHITECTURE:
        why = f"no template known for architecture {architecture!r}"
        return ChatTemplate(FALLBACK, why, _builtin(FALLBACK, start))
    return ChatTemplate(name, f"by its architecture, {architecture}", _builtin(name, start))


def builtin_name(metadata: Mapping[str, Any]) -> str:
    """The built-in template for a GGUF without one, from its metadata alone (no llama.cpp
    needed: the task suite's peer gives its model server the same choice)."""
    architecture = str(metadata.get("general.architecture", ""))
    if architecture == "llama" and metadata.get("tokenizer.ggml.pre") == "llama-bpe":
        return "llama3"  # Llama 3's tokenizer: a Llama 3.x model
    return BUILTIN_BY_ARCHITECTURE.get(architecture, FALLBACK)


def _jinja(template: str, bos: str, eos: str) -> ChatFormat:
    """A GGUF's Jinja template, rendered as the models' own tooling renders it: `tojson` keeps
    keys in order and text unescaped, so a call in the history reads as the model wrote it."""
    from jinja2 import TemplateError
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    def tojson(
        value: Any, indent: int | None = None, separators: Any = None, sort_keys: bool = False
    ) -> str:
        return json.dumps(
            value, ensure_ascii=False, indent=indent, separators=separators, sort_keys=sort_keys
        )

    environment = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]
    )
    environment.filters["tojson"] = tojson
    environment.globals.update(
        raise_exception=raise_exception, strftime_now=lambda f: datetime.now().strftime(f)
    )
    compiled = environment.from_string(template)

    def format(
        messages: list[dict[str, Any]],
        answer_next: bool,
        tools: list[dict[str, Any]] | None = None,
    ) -> str:
        return compiled.render(
            messages=messages,
            tools=tools or None,
            add_generation_prompt=answer_next,
            bos_token=bos,
            eos_token=eos,
        )

    return format


def _builtin(name: str, start: str = "") -> ChatFormat:
    """llama.cpp's own formatting by template name; `start`: the BOS marker, which those
    templates leave to the tokenizer, and the prompt is tokenized without one."""
    import llama_cpp

    def format(
        messages: list[dict[str, Any]],
        answer_next: bool,
        tools: list[dict[str, Any]] | None = None,
    ) -> str:
        kept = [(m["role"].encode(), m["content"].encode()) for m in messages]
        chat = (llama_cpp.llama_chat_message * len(kept))(
            *(llama_cpp.llama_chat_message(role=role, content=text) for role, text in kept)
        )
        size = 2 * sum(len(role) + len(text) for role, text in kept) + 1024
        for _ in range(2):
            buffer = ctypes.create_string_buffer(size)
            written = llama_cpp.llama_chat_apply_template(
                name.encode(), chat, len(kept), answer_next, buffer, size
            )
            if written < 0:
                raise ValueError(f"llama.cpp has no chat template named {name!r}")
            if written <= size:
                return start + buffer.raw[:written].decode("utf-8", errors="replace")
            size = written
        raise ValueError(f"the {name!r} template's prompt kept growing")

    return format
