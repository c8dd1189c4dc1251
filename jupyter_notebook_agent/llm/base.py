"""The one interface every LLM backend implements: stream a turn from messages and tool schemas."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


class ModelError(Exception):
    """A backend failure the person must act on; its message is one clear line."""


@dataclass
class TextDelta:
    """A piece of the assistant's prose, as it streams."""

    text: str


@dataclass
class ToolCallDelta:
    """A piece of a tool call: `index` orders calls within a turn; name and id come first."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass
class ToolCall:
    """A complete tool call. `arguments` is the raw text the model wrote, valid JSON or not."""

    id: str
    name: str
    arguments: str


@dataclass
class Usage:
    """Token counts of one turn, as the backend reported them (0 where it did not)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0


@dataclass
class ModelTurn:
    """One whole assistant turn: what the agent appends to the history."""

    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    ttft_s: float = 0.0
    """Seconds from the request to the first streamed token."""
    duration_s: float = 0.0
    """Seconds from the request to the end of the turn."""
    cut_short: str = ""
    """Why the answer was stopped before the model ended it ("" when it ended it): a call in it
    may be incomplete, and the model is told why."""

    def as_message(self) -> dict[str, Any]:
        """The turn in OpenAI chat format, for the append-only history."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content or None}
        if self.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in self.tool_calls
            ]
        return message


StreamItem = TextDelta | ToolCallDelta | ModelTurn


class Model(Protocol):
    """A chat model that can call tools. `stream` yields deltas, then exactly one ModelTurn."""

    name: str
    context_tokens: int | None
    """Tokens of context the model holds (a local model's n_ctx); None where the endpoint
    knows it and the agent does not."""

    def stream(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> AsyncIterator[StreamItem]: ...

    def warm(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> int:
        """Makes ready ahead of the first request what takes long (a local model's loading,
        its prompt's prefix): the prompt tokens evaluated, 0 where nothing needs it. Blocking:
        the caller runs it in a thread."""
        ...

    async def aclose(self) -> None: ...


class Backend(Protocol):
    """A kind of model, named by a model string's prefix: a `Model` class, which makes its
    models from what follows the prefix and the settings it knows (see `load_model`)."""

    def from_settings(self, name: str, settings: Mapping[str, Any]) -> Model:
        """ModelError when the model cannot be had, in one line the person can act on."""
        ...


class TurnAssembler:
    """Folds streamed deltas into a ModelTurn; shared by every streaming backend."""

    def __init__(self) -> None:
        self.content: list[str] = []
        self.calls: dict[int, ToolCall] = {}
        self.arguments: dict[int, list[str]] = {}
        """Each call's argument pieces, joined once at the end: linear in the arguments."""

    def add(self, delta: TextDelta | ToolCallDelta) -> None:
        if isinstance(delta, TextDelta):
            self.content.append(delta.text)
            return
        call = self.calls.setdefault(delta.index, ToolCall(id="", name="", arguments=""))
        if delta.id:
            call.id = delta.id
        if delta.name:
            call.name += delta.name
        self.arguments.setdefault(delta.index, []).append(delta.arguments)

    def turn(self, usage: Usage, ttft_s: float, duration_s: float) -> ModelTurn:
        calls = [self.calls[i] for i in sorted(self.calls)]
        for position, (index, call) in enumerate(sorted(self.calls.items())):
            call.id = call.id or f"call_{position}"
            call.arguments = "".join(self.arguments.get(index, []))
        return ModelTurn("".join(self.content), calls, usage, ttft_s, duration_s)
