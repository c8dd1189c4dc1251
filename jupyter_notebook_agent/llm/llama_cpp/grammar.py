"""Tool calls that are valid JSON by construction, for models that cannot call tools natively.

Every answer is one JSON object, `{"message": "...", "tool": "NAME", "arguments": {...}}`, and a
GBNF grammar built from the tools' JSON schemas lets the sampler pick only tokens that keep it so:
the arguments match their tool's schema. The envelope has no free whitespace, so the answer can be
read as it streams: the message as prose, then the call. JSON strings exclude raw control
characters (JSON forbids them, and a sampler left free to pick them does).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ...partial_json import FieldStream
from ..base import TextDelta, ToolCallDelta

MESSAGE_KEY, TOOL_KEY, ARGUMENTS_KEY = "message", "tool", "arguments"
_OPEN = f'{{"{MESSAGE_KEY}": '
_BEFORE_TOOL = f', "{TOOL_KEY}": '
_BEFORE_ARGUMENTS = f', "{ARGUMENTS_KEY}": '

_PRIMITIVES = {
    "string": r'"\"" char* "\""',
    "char": r'[^"\\\x00-\x1F\x7F] | "\\" (["\\/bfnrt] | "u" hex hex hex hex)',
    "hex": "[0-9a-fA-F]",
    "boolean": '"true" | "false"',
    "null": '"null"',
    "integer": '"-"? ("0" | [1-9] [0-9]*)',
    "number": 'integer ("." [0-9]+)? ([eE] [-+]? [0-9]+)?',
    "value": "object | array | string | number | boolean | null",
    "object": '"{" (string ": " value (", " string ": " value)*)? "}"',
    "array": '"[" (value (", " value)*)? "]"',
}
_NEEDS = {
    "string": ["char"],
    "char": ["hex"],
    "number": ["integer"],
    "object": ["value"],
    "array": ["value"],
    "value": list(_PRIMITIVES),
}


def literal(text: str) -> str:
    """`text` as a GBNF string literal."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t") + '"'


class _GrammarBuilder:
    """Turns JSON schemas into GBNF rules: the subset tool schemas use (objects, strings, enums,
    numbers, booleans, arrays, anyOf); any other schema admits any JSON value."""

    def __init__(self) -> None:
        self.rules: dict[str, str] = {}

    def primitive(self, name: str) -> str:
        if name not in self.rules:
            self.rules[name] = _PRIMITIVES[name]
            for needed in _NEEDS.get(name, []):
                self.primitive(needed)
        return name

    def rule(self, name: str, body: str) -> str:
        self.rules[name] = body
        return name

    def schema(self, schema: dict[str, Any], name: str) -> str:
        """The name of a rule for values of `schema`, made under `name`."""
        if "const" in schema:
            return self.rule(name, literal(json.dumps(schema["const"])))
        if "enum" in schema:
            return self.rule(name, " | ".join(literal(json.dumps(v)) for v in schema["enum"]))
        if options := schema.get("anyOf") or schema.get("oneOf"):
            parts = [self.schema(option, f"{name}-{i}") for i, option in enumerate(options)]
            return self.rule(name, " | ".join(parts))
        kind = schema.get("type")
        if isinstance(kind, list):
            parts = [self.schema({**schema, "type": k}, f"{name}-{k}") for k in kind]
            return self.rule(name, " | ".join(parts))
        if kind == "object" and "properties" in schema:
            return self.object(schema, name)
        if kind == "array" and isinstance(schema.get("items"), dict):
            item = self.schema(schema["items"], f"{name}-item")
            return self.rule(name, f'"[" ({item} (", " {item})*)? "]"')
        if kind in ("string", "boolean", "null", "integer", "number", "object", "array"):
            return self.primitive(kind)
        return self.primitive("value")

    def object(self, schema: dict[str, Any], name: str) -> str:
        """Properties in their declared order, required ones always, optional ones maybe."""
        required = set(schema.get("required", []))
        members = []
        for key, value in schema["properties"].items():
            value_rule = self.schema(value, f"{name}-{key.replace('_', '-')}")
            member = f"{literal(json.dumps(key) + ': ')} {value_rule}"
            members.append((member, key in required))
        return self.rule(name, f'"{{" {self._members(members)} "}}"')

    @staticmethod
    def _members(members: list[tuple[str, bool]]) -> str:
        """Members joined by ", ", any optional one left out: after the first present member,
        each further one is `", " member` (or nothing when optional)."""

        def after_first(rest: list[tuple[str, bool]]) -> str:
            return " ".join(f'(", " {member})' + ("" if needed else "?") for member, needed in rest)

        choices = []
        for position, (member, needed) in enumerate(members):
            choices.append(f"{member} {after_first(members[position + 1 :])}".strip())
            if needed:
                break
        else:
            choices.append("")  # every member optional: the empty object too
        if len(choices) == 1:
            return choices[0]
        return "(" + " | ".join(f"({choice})" if choice else '""' for choice in choices) + ")"


def call_rules(
    tools: list[dict[str, Any]], spell_name: Callable[[str], str]
) -> tuple[dict[str, str], list[str]]:
    """The rules for the arguments of each of `tools` (OpenAI function schemas), and one
    alternative per tool for the rule `call`: `spell_name(name)`, a GBNF literal of the text
    before the arguments, then its arguments."""
    builder = _GrammarBuilder()
    calls = []
    for tool in tools:
        function = tool["function"]
        name = function["name"]
        arguments = builder.schema(
            function.get("parameters") or {"type": "object", "properties": {}},
            f"{name.replace('_', '-')}-arguments",
        )
        calls.append(f"{spell_name(name)} {arguments}")
    builder.primitive("string")
    return builder.rules, calls


def answer_grammar(tools: list[dict[str, Any]]) -> str:
    """The GBNF grammar of one answer in the envelope that calls one of `tools`."""
    rules, calls = call_rules(tools, lambda name: literal(json.dumps(name) + _BEFORE_ARGUMENTS))
    rules["message"] = f'"\\"" char{{0,{MESSAGE_CHARS}}} "\\""'
    root = f"{literal(_OPEN)} message {literal(_BEFORE_TOOL)} call " + '"}"'
    lines = [f"root ::= {root}", "call ::= " + " | ".join(calls)]
    lines += [f"{name} ::= {body}" for name, body in rules.items()]
    return "\n".join(lines) + "\n"


EXAMPLE = (
    "asked to print how many lines notes.txt has",
    "I count the lines.",
    "add_cell",
    {"cell_type": "code", "source": 'print(len(open("notes.txt").readlines()))'},
)
"""The one worked example the instructions give: a request and the call that answers it. Small
models copy what an example holds, so it is real code, and a request beside it shows them what to
change: with the request alone they copied the call whole, whatever they were asked."""

MESSAGE_CHARS = 300
"""The longest message an answer may hold before its call: a small model left free to talk
rambles on until its token budget is spent."""


def answer_instructions(tools: list[dict[str, Any]]) -> str:
    """What the system prompt tells the model about the answer format and the tools. Nothing in it
    is a placeholder a small model could copy into a call (it copied "string" as a cell's source
    and "the tool's arguments" as its message): one real example call, the required arguments by
    name, optional ones in words. The grammar enforces each tool's schema itself."""
    request, message, name, arguments = EXAMPLE
    example = answer_text(message, name, json.dumps(arguments))
    return (
        "\n\n# How to answer\n"
        "Answer every turn with one JSON object and nothing else: a message for the person, the "
        f"tool you call, and the tool's arguments. For example, {request}, you would answer:\n"
        f"{example}\n"
        "The tool's result comes back in the next message. Arguments hold real code and real "
        "text, never a description of them.\n\n# Tools\n"
        + "\n".join(_signature(tool["function"]) for tool in tools)
    )


def _signature(function: dict[str, Any]) -> str:
    """`- name(a, b): what it does. a: what a is (a string). Optionally c: what c is.`"""
    parameters = function.get("parameters") or {}
    required = set(parameters.get("required", []))
    names, notes, optional = [], [], []
    for key, schema in parameters.get("properties", {}).items():
        note = f"{key}: {_described(schema)}"
        if key in required:
            names.append(key)
            notes.append(note)
        else:
            optional.append(f"Optionally {note}")
    described = " ".join([function.get("description", ""), *notes, *optional]).strip()
    return f"- {function['name']}({', '.join(names)}): {described}"


def _described(schema: dict[str, Any]) -> str:
    """What a value is, as a sentence with no placeholder in it; its kind is said where it is
    not text (the grammar holds the value to it in any case)."""
    description = schema.get("description", "").rstrip(".")
    kind = _kind(schema)
    if not description:
        return f"{kind}."
    return f"{description}." if kind == "text" else f"{description} ({kind})."


def _kind(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return "one of " + ", ".join(json.dumps(value) for value in schema["enum"])
    kind = schema.get("type", "any JSON value")
    if kind == "array" and isinstance(schema.get("items"), dict):
        return f"a list, each item {_kind(schema['items'])}"
    names = {"string": "text", "boolean": "true or false", "integer": "a whole number"}
    kinds = kind if isinstance(kind, list) else [kind]
    return " or ".join(names.get(k, f"a {k}" if k in ("number", "object") else k) for k in kinds)


def answer_text(message: str, name: str, arguments: str) -> str:
    """An answer as the model wrote it: the history shows the model its own earlier answers
    exactly, so the prompt's prefix (and the KV cache) stays the same from step to step."""
    message_json = json.dumps(message, ensure_ascii=False)
    return f"{_OPEN}{message_json}{_BEFORE_TOOL}{json.dumps(name)}{_BEFORE_ARGUMENTS}{arguments}}}"


class StreamedArguments:
    """A call's arguments as the answer's text streams: from where they begin (`at`, once
    known), a piece at a time, the last `held_back` characters kept until it is known whether they
    are the arguments' or the answer's own closing text."""

    def __init__(self) -> None:
        self.at: int | None = None
        self._sent = 0
        """How much of the arguments text has gone out."""

    def deltas(self, text: str, held_back: int) -> list[TextDelta | ToolCallDelta]:
        if self.at is None:
            return []
        available = len(text) - self.at - held_back
        if available <= self._sent:
            return []
        start, self._sent = self.at + self._sent, available
        return [ToolCallDelta(index=0, arguments=text[start : self.at + available])]


class AnswerReader:
    """Reads a streaming answer: the message comes out as TextDelta pieces, then the call as
    ToolCallDelta pieces (its name once whole, then its arguments as they arrive)."""

    def __init__(self) -> None:
        self._message = FieldStream(MESSAGE_KEY)
        self._name: str | None = None
        self._arguments = StreamedArguments()

    @property
    def text(self) -> str:
        return self._message.arguments

    def feed(self, piece: str) -> list[TextDelta | ToolCallDelta]:
        deltas: list[TextDelta | ToolCallDelta] = []
        prose = self._message.feed(piece)
        if prose:
            deltas.append(TextDelta(prose))
        if not self._message.ended:
            return deltas
        text = self.text
        if self._name is None:
            start = text.find(_BEFORE_TOOL + '"')
            end = text.find(_BEFORE_ARGUMENTS, start + 1) if start >= 0 else -1
            if end < 0:
                return deltas
            self._name = json.loads(text[start + len(_BEFORE_TOOL) : end])
            self._arguments.at = end + len(_BEFORE_ARGUMENTS)
            deltas.append(ToolCallDelta(index=0, id="call_0", name=self._name))
        # A closing brace at the end may be the answer's own: it waits for more text or the end.
        deltas += self._arguments.deltas(text, held_back=1 if text.endswith("}") else 0)
        return deltas

    def finish(self) -> list[TextDelta | ToolCallDelta]:
        """At the end of the answer: the held-back brace was the answer's own if the answer is
        whole, and the arguments' if it was cut short (the call is then incomplete)."""
        try:
            json.loads(self.text)
        except json.JSONDecodeError:
            return self._arguments.deltas(self.text, held_back=0)
        return self._arguments.deltas(self.text, held_back=1)
