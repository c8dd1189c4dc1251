"""String fields read out of JSON while it streams, token by token, before it is complete: a
cell's source out of a tool call's arguments (so the notebook shows the cell filling in), or the
prose of a local model's grammar-constrained answer."""

from __future__ import annotations

import json
import re

_KEY = r'"{}"\s*:\s*'
#: The closing quote of a JSON string: one not escaped by an odd run of backslashes.
_STRING_END = re.compile(r'(?<!\\)(?:\\\\)*"')
#: What must wait for more text at the end of what arrived: a lone backslash, a short \u
#: escape, or the high half of a surrogate pair, which decodes only with its low half.
_SHORT_U = r"u[0-9a-fA-F]{0,3}"
_HIGH_SURROGATE = r"u[dD][89abAB][0-9a-fA-F]{2}"
_HELD_BACK = re.compile(
    rf"(?<!\\)(?:\\\\)*((?:\\(?:{_SHORT_U}|{_HIGH_SURROGATE}(?:\\(?:{_SHORT_U})?)?)?)?)$"
)


def string_field(arguments: str, key: str) -> str | None:
    """A complete top-level string value, or None while it is absent or still streaming.

    Inside a JSON string every quote is escaped, so the pattern cannot match there."""
    match = re.search(_KEY.format(key) + r'"((?:[^"\\]|\\.)*)"', arguments)
    return json.loads(f'"{match.group(1)}"') if match else None


class FieldStream:
    """Feeds on the growing text of one JSON object; `feed` returns the text of its string field
    `key` that became readable since the last call ("" when none did). Each piece is decoded
    once: the work grows with the field, not with its square."""

    def __init__(self, key: str) -> None:
        self.key = key
        self._pieces: list[str] = []
        """All the JSON text fed so far, as it came: joined only when asked for."""
        self._pending = ""
        """What arrived since the field's text was last decoded."""
        self._values: list[str] = []
        self.length = 0
        """Characters of the field's text decoded so far."""
        self.ended = False
        """The field's closing quote has arrived (or it was malformed)."""
        self.started = False
        """The field has begun (a cell can be shown)."""

    @property
    def arguments(self) -> str:
        """All the JSON text fed so far."""
        if len(self._pieces) > 1:
            self._pieces[:] = ["".join(self._pieces)]
        return self._pieces[0] if self._pieces else ""

    @property
    def value(self) -> str:
        """The field's text decoded so far."""
        if len(self._values) > 1:
            self._values[:] = ["".join(self._values)]
        return self._values[0] if self._values else ""

    def feed(self, chunk: str) -> str:
        self._pieces.append(chunk)
        if self.ended:
            return ""
        if not self.started:
            match = re.search(_KEY.format(re.escape(self.key)) + '"', self.arguments)
            if match is None:
                return ""
            self.started, self._pending = True, self.arguments[match.end() :]
        else:
            self._pending += chunk  # what is held back is a few characters at most
        raw = self._pending
        if end := _STRING_END.search(raw):
            raw, self.ended = raw[: end.end() - 1], True
        else:
            held = _HELD_BACK.search(raw)
            assert held is not None  # at the least, the empty end of `raw` matches
            raw = raw[: held.start(1)]
        try:
            new = json.loads(f'"{raw}"')
        except json.JSONDecodeError:
            self.ended = True  # a malformed escape: the call will be refused, the model told
            return ""
        self._pending = self._pending[len(raw) :]
        self._values.append(new)
        self.length += len(new)
        return new
