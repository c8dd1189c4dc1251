"""Recorded conversations: play one back as a model, or record one from any model.

A recording is a JSON file of assistant turns. The turn to play is chosen by how many assistant
messages the history already holds, so a retried request gets the same turn again.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .base import ModelError, ModelTurn, StreamItem, TextDelta, ToolCall, ToolCallDelta, Usage

RECORDING_FORMAT = "jupyter-notebook-agent/recording"
#: Characters of tool-call arguments per streamed delta, about what hosted models send.
ARGUMENT_CHUNK = 16


def load_recording(path: str | Path) -> tuple[str, list[ModelTurn]]:
    """The recorded model's name and its turns; a clear ModelError for a file that is not one."""
    try:
        data = json.loads(Path(path).read_text())
        if data.get("format") != RECORDING_FORMAT:
            raise ValueError(f'"format" is not "{RECORDING_FORMAT}"')
        turns = [
            ModelTurn(
                content=turn.get("content") or "",
                tool_calls=[ToolCall(**call) for call in turn.get("tool_calls", [])],
                usage=Usage(**turn.get("usage", {})),
                ttft_s=turn.get("ttft_s", 0.0),
                duration_s=turn.get("duration_s", 0.0),
                cut_short=turn.get("cut_short", ""),
            )
            for turn in data["turns"]
        ]
        return str(data.get("model", "replay")), turns
    except FileNotFoundError:
        raise ModelError(f"no recording at {path}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ModelError(f"{path} is not a valid recording: {error}") from None


def save_recording(path: str | Path, model: str, turns: list[ModelTurn]) -> None:
    payload = {"format": RECORDING_FORMAT, "model": model, "turns": [asdict(t) for t in turns]}
    Path(path).write_text(json.dumps(payload, indent=1) + "\n")


def turn_number(messages: list[dict[str, Any]]) -> int:
    """Which recorded turn answers this history: the count of assistant turns so far."""
    return sum(1 for message in messages if message.get("role") == "assistant")


def turn_deltas(turn: ModelTurn) -> Iterator[TextDelta | ToolCallDelta]:
    """Splits a whole turn into the deltas a streaming server would have sent."""
    for word in re.findall(r"\s*\S+\s*", turn.content):
        yield TextDelta(word)
    for index, call in enumerate(turn.tool_calls):
        yield ToolCallDelta(index, id=call.id, name=call.name)
        for start in range(0, len(call.arguments), ARGUMENT_CHUNK):
            yield ToolCallDelta(index, arguments=call.arguments[start : start + ARGUMENT_CHUNK])


def delta_delays(turn: ModelTurn, count: int, speed: float) -> Iterator[float]:
    """Seconds to wait before each delta so that playback keeps the recorded timing."""
    if speed <= 0 or count == 0:
        yield from (0.0 for _ in range(count))
        return
    yield turn.ttft_s / speed
    gap = max(turn.duration_s - turn.ttft_s, 0.0) / max(count - 1, 1) / speed
    yield from (gap for _ in range(count - 1))


class ReplayModel:
    """Plays back a recording; `speed` 0 streams at once, 1 keeps the recorded timing."""

    def __init__(self, path: str | Path, *, speed: float = 0.0) -> None:
        self.path = Path(path)
        recorded, self.turns = load_recording(self.path)
        self.name = f"replay:{recorded}"
        self.context_tokens: int | None = None
        self.speed = speed

    @classmethod
    def from_settings(cls, name: str, settings: Mapping[str, Any]) -> ReplayModel:
        return cls(name)

    def warm(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> int:
        return 0

    async def stream(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> AsyncIterator[StreamItem]:
        number = turn_number(messages)
        if number >= len(self.turns):
            raise ModelError(
                f"the recording {self.path} has {len(self.turns)} turns; the run asked for turn "
                f"{number + 1}"
            )
        turn = self.turns[number]
        deltas = list(turn_deltas(turn))
        for delta, delay in zip(deltas, delta_delays(turn, len(deltas), self.speed), strict=True):
            if delay:
                await asyncio.sleep(delay)
            yield delta
        yield turn

    async def aclose(self) -> None:
        return None


class RecordingModel:
    """Wraps any model and writes every turn it produces to a recording, as it goes."""

    def __init__(self, inner: Any, path: str | Path) -> None:
        self.inner = inner
        self.name = inner.name
        self.context_tokens: int | None = inner.context_tokens
        self.path = Path(path)
        self.turns: list[ModelTurn] = []

    def warm(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> int:
        return self.inner.warm(messages, tools)

    async def stream(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> AsyncIterator[StreamItem]:
        async for item in self.inner.stream(messages, tools):
            if isinstance(item, ModelTurn):
                self.turns.append(item)
                save_recording(self.path, self.name, self.turns)
            yield item

    async def aclose(self) -> None:
        await self.inner.aclose()
