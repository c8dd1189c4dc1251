"""A model's own tool-call format, learned from its chat template: a model tuned to call tools
(Qwen 2.5's `<tool_call>` tags, say, or Llama 3.x's bare JSON) calls them best in the words it
was tuned on, with the tools described the way its template describes them.

The format is learned by rendering a probe conversation: the answer a template writes for a known
call, split around the call's name and arguments, gives the text before, between and after them.
A grammar then holds the model to that text around arguments that fit the tool's schema, as it
holds other models to the JSON envelope (grammar.py). A template that does not render the tools,
the call or its result has no format of its own, and its model answers in the envelope.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..base import TextDelta, ToolCallDelta
from .grammar import MESSAGE_CHARS, StreamedArguments, call_rules, literal

Render = Callable[[list[dict[str, Any]], bool, list[dict[str, Any]]], str]
"""(messages, answer_next, tools) -> the prompt."""

_NAME, _KEY, _VALUE, _TEXT, _RESULT = (
    "probe_tool",
    "probe_key",
    "probe value",
    "probe text",
    "probe result",
)
_TOOL = {
    "type": "function",
    "function": {
        "name": _NAME,
        "description": "A probe.",
        "parameters": {
            "type": "object",
            "properties": {_KEY: {"type": "string"}},
            "required": [_KEY],
        },
    },
}
_ARGUMENTS = json.dumps({_KEY: _VALUE})
_CHAT = [{"role": "system", "content": "S."}, {"role": "user", "content": "U."}]


@dataclass(frozen=True)
class NativeCalls:
    """How a template writes one tool call: `before` NAME `between` ARGUMENTS `after`. Where the
    template shows an answer's text beside its call, the model may write a short message first,
    then `gap`; else `gap` is None and the answer is the call alone."""

    before: str
    between: str
    after: str
    gap: str | None

    def describe(self) -> str:
        shown = f"{self.before}NAME{self.between}ARGUMENTS{self.after}"
        return "tool calls in its own format, " + json.dumps(shown)

    def grammar(self, tools: list[dict[str, Any]]) -> str:
        """The GBNF grammar of one answer: perhaps a message, then one call of one of `tools`."""
        rules, calls = call_rules(tools, lambda name: literal(name + self.between))
        root = f"{literal(self.before)} call {literal(self.after)}"
        if self.gap is not None:
            # The message cannot hold the text that begins the call, nor a line break.
            stops = sorted({*(self.gap + self.before)[:1], "\n"})
            excluded = "".join(f"\\x{ord(c):02x}" for c in stops if ord(c) < 256)
            rules["prose"] = f"[^{excluded}\\x00-\\x1f]{{1,{MESSAGE_CHARS}}}"
            root = f"(prose {literal(self.gap)})? {root}"
        lines = [f"root ::= {root}", "call ::= " + " | ".join(calls)]
        return "\n".join(lines + [f"{name} ::= {body}" for name, body in rules.items()]) + "\n"

    def reader(self) -> NativeReader:
        return NativeReader(self)


def learn_native_calls(render: Render) -> NativeCalls | None:
    """The template's own call format, or None where it has none that round-trips: the tools
    must appear in the prompt, a call in the answer, and the call's result in the next prompt,
    each prompt beginning with the one before (the KV cache relies on that)."""
    tools = [_TOOL]
    function = {"name": _NAME, "arguments": {_KEY: _VALUE}}
    call = {"id": "call_0", "type": "function", "function": function}
    called_turn = {"role": "assistant", "content": "", "tool_calls": [call]}
    result = {"role": "tool", "tool_call_id": "call_0", "name": _NAME, "content": _RESULT}

    def answer(message: dict[str, Any]) -> str | None:
        prompt = render([*_CHAT, message], False, tools)
        return prompt[len(asked) :] if prompt.startswith(asked) else None

    try:
        asked = render(_CHAT, True, tools)
        text = answer({"role": "assistant", "content": _TEXT})
        called = answer(called_turn)
        replied = render([*_CHAT, called_turn, result], True, tools)
    except Exception:  # a template that cannot render tools (or raises on them) has no format
        return None
    try:
        both = answer({**called_turn, "content": _TEXT})
    except Exception:  # one that refuses a message beside a call: the answer is the call alone
        both = None
    if _NAME not in asked or text is None or called is None or not text.startswith(_TEXT):
        return None
    end = text[len(_TEXT) :]
    if not called.endswith(end) or _RESULT not in replied:
        return None
    if not replied.startswith(asked + called):
        return None
    written = called[: len(called) - len(end)] if end else called
    name_at = written.find(_NAME)
    arguments_at = written.find(_ARGUMENTS, name_at + len(_NAME))
    if name_at < 0 or arguments_at < 0:
        return None
    before = written[:name_at]
    between = written[name_at + len(_NAME) : arguments_at]
    after = written[arguments_at + len(_ARGUMENTS) :]
    gap = None
    if both is not None and both.startswith(_TEXT) and both.endswith(called):
        gap = both[len(_TEXT) : len(both) - len(called)]
    return NativeCalls(before, between, after, gap)


class NativeReader:
    """Reads a streaming answer in a native format: the message as TextDelta pieces, then the
    call as ToolCallDelta pieces (its name once whole, then its arguments as they arrive). The
    grammar guarantees the shape, so reading is finding the format's fixed texts in order."""

    def __init__(self, calls: NativeCalls) -> None:
        self.calls = calls
        self.text = ""
        self._prose_sent = 0
        self._name: str | None = None
        self._arguments = StreamedArguments()

    def feed(self, piece: str) -> list[TextDelta | ToolCallDelta]:
        self.text += piece
        deltas: list[TextDelta | ToolCallDelta] = []
        if self._name is None:
            deltas += self._prose()
            deltas += self._call_name()
        deltas += self._arguments.deltas(self.text, held_back=len(self.calls.after))
        return deltas

    def finish(self) -> list[TextDelta | ToolCallDelta]:
        """At the end: the format's closing text is dropped where the answer is whole; a call cut
        short keeps all it has (and is then incomplete)."""
        at = self._arguments.at
        if at is None or not self.text.endswith(self.calls.after):
            return self._arguments.deltas(self.text, held_back=0)
        after = len(self.calls.after)
        try:
            json.loads(self.text[at : len(self.text) - after])
        except ValueError:
            after = 0  # the closing text was the arguments' own: the call was cut short
        return self._arguments.deltas(self.text, held_back=after)

    def _opening(self) -> tuple[int, int] | None:
        """Where the text that opens the call begins and ends, once it has arrived."""
        before, gap = self.calls.before, self.calls.gap
        if self.text.startswith(before):
            return 0, len(before)
        if gap is None or (at := self.text.find(gap + before, self._prose_sent)) < 0:
            return None
        return at, at + len(gap + before)

    def _prose(self) -> list[TextDelta | ToolCallDelta]:
        if opening := self._opening():
            end = opening[0]
        else:  # what may be the opening's beginning waits for more text
            openings = (self.calls.before, (self.calls.gap or "") + self.calls.before)
            longest = min(len(self.text), max(map(len, openings)))
            tail = self.text[-longest:] if longest else ""
            partial = max(
                (n for n in range(1, longest + 1) for o in openings if o.startswith(tail[-n:])),
                default=0,
            )
            end = len(self.text) - partial
        if end <= self._prose_sent:
            return []
        prose, self._prose_sent = self.text[self._prose_sent : end], end
        return [TextDelta(prose)]

    def _call_name(self) -> list[TextDelta | ToolCallDelta]:
        if not (opening := self._opening()):
            return []
        end = self.text.find(self.calls.between, opening[1])
        if end < 0:
            return []
        self._name = self.text[opening[1] : end]
        self._arguments.at = end + len(self.calls.between)
        return [ToolCallDelta(index=0, id="call_0", name=self._name)]
