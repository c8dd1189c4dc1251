"""A notebook's conversation: what the model was told and answered, over every run on it."""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

#: Characters per token, for estimating a thread's size before a model has reported any.
CHARS_PER_TOKEN = 4
#: Characters of a dropped request kept in the summary that stands for it.
SUMMARY_REQUEST_CHARS = 200
#: Characters of a dropped request's outcome kept in the summary.
SUMMARY_OUTCOME_CHARS = 300


@dataclass
class Request:
    """One request of the person's, as the conversation holds it."""

    prompt: str
    start: int
    """Index of its first message (the task) in the conversation's messages."""


@dataclass
class Conversation:
    """The thread a notebook's runs continue: each request sees the earlier ones, its answers
    and the tools' results. It owns its messages and their size, so that every run appends
    to the same thread and the budget counts all of it."""

    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    messages: list[dict[str, Any]] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    chars: int = 0
    """Characters of the messages as JSON."""
    tokens_per_char: float = 1 / CHARS_PER_TOKEN
    """Tokens a character of the thread takes, as the model last reported (a byte-level
    vocabulary takes more than the usual quarter)."""
    dropped: int = 0
    """Requests left out for length, which a paragraph of the system message stands for (a
    message of its own would make two user messages in a row, which some chat templates
    refuse)."""

    def append(self, message: dict[str, Any]) -> None:
        self.messages.append(message)
        self.chars += len(json.dumps(message))

    def begin_request(self, prompt: str, message: dict[str, Any]) -> None:
        """A new request of the person's, after whatever the thread holds."""
        self.answer_open_calls()
        self.requests.append(Request(prompt, len(self.messages)))
        self.append(message)

    def answer_open_calls(self) -> None:
        """Gives each tool call a stopped run left without a result one that says so, right
        after the call's other results: an endpoint refuses a thread where anything else comes
        between an assistant's tool calls and their results."""
        answered = {m.get("tool_call_id") for m in self.messages if m.get("role") == "tool"}
        if all(call["id"] in answered for m in self.messages for call in m.get("tool_calls") or []):
            return
        starts = [self.messages[r.start] for r in self.requests]
        rebuilt: list[dict[str, Any]] = []
        open_calls: list[str] = []
        for message in self.messages:
            if message.get("role") != "tool":
                rebuilt += [_not_run(call_id) for call_id in open_calls]
                open_calls = []
            rebuilt.append(message)
            for call in message.get("tool_calls") or []:
                if call["id"] not in answered:
                    open_calls.append(call["id"])
        rebuilt += [_not_run(call_id) for call_id in open_calls]
        self.messages = rebuilt
        self._recount(starts)

    def _recount(self, starts: list[dict[str, Any]]) -> None:
        """The size, and each request's first message found again after the list changed."""
        self.chars = sum(len(json.dumps(message)) for message in self.messages)
        where = {id(message): index for index, message in enumerate(self.messages)}
        self.requests = [
            Request(r.prompt, where[id(first)])
            for r, first in zip(self.requests, starts, strict=True)
            if id(first) in where
        ]

    @property
    def tokens(self) -> int:
        """The thread's size in tokens, estimated from what the model reported last."""
        return int(self.chars * self.tokens_per_char)

    def observe(self, prompt_tokens: int, sent_chars: int) -> None:
        """The model said the thread, `sent_chars` long then, took `prompt_tokens` (with the
        tools and the template, so the estimate errs on the large side)."""
        if prompt_tokens and sent_chars:
            self.tokens_per_char = max(1 / CHARS_PER_TOKEN, prompt_tokens / sent_chars)

    def fit(self, budget_tokens: int) -> None:
        """Leaves out the oldest requests, whole, until the thread fits `budget_tokens`, with
        one paragraph that says what they were; the newest request always stays."""
        while self.tokens > budget_tokens and len(self.requests) > 1:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        first, end = self.requests[0].start, self.requests[1].start
        summary = self._summary_line(self.requests[0], self.messages[first:end])
        system = self.messages[0]
        heading = "" if self.dropped else f"\n\n{_SUMMARY_HEADING}"
        system = system | {"content": f"{system['content']}{heading}\n{summary}"}
        starts = [self.messages[r.start] for r in self.requests[1:]]
        self.messages = [system, *self.messages[1:first], *self.messages[end:]]
        self.requests = self.requests[1:]
        self._recount(starts)
        self.dropped += 1

    @staticmethod
    def _summary_line(request: Request, messages: list[dict[str, Any]]) -> str:
        prompt = _shortened(request.prompt, SUMMARY_REQUEST_CHARS)
        cells, outcome = [], "it ended without an outcome"
        for message in messages:
            if message.get("role") == "tool":
                cell_id = json.loads(message["content"]).get("cell_id")
                if cell_id and cell_id not in cells:
                    cells.append(cell_id)
            for call in message.get("tool_calls") or []:
                if call["function"]["name"] == "complete_task":
                    try:
                        said = json.loads(call["function"]["arguments"]).get("summary", "")
                    except (json.JSONDecodeError, AttributeError):
                        said = ""
                    outcome = _shortened(str(said), SUMMARY_OUTCOME_CHARS) or "it ended"
        wrote = f"; cells {', '.join(cells)}" if cells else ""
        return f"- {prompt!r}: {outcome}{wrote}"

    def to_record(self) -> dict[str, Any]:
        """All of it, as the run store keeps it."""
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Conversation:
        """The thread a record keeps; a fresh one for a record it cannot read (one a newer
        server wrote in a shared store, say)."""
        try:
            requests = [Request(r["prompt"], r["start"]) for r in record["requests"]]
            kept = ("id", "messages", "chars", "tokens_per_char", "dropped")
            return cls(**{name: record[name] for name in kept}, requests=requests)
        except (KeyError, TypeError):
            return cls()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "requests": [request.prompt for request in self.requests],
            "dropped_requests": self.dropped,
            "messages": self.messages,
            "tokens_estimate": self.tokens,
        }


_SUMMARY_HEADING = "Earlier requests in this conversation, left out for length:"


def _not_run(call_id: str) -> dict[str, Any]:
    result = {"status": "not_run", "note": "the run stopped before this call"}
    return {"role": "tool", "tool_call_id": call_id, "content": json.dumps(result)}


def _shortened(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
