"""A cell's source as the model writes it: read out of a tool call's JSON arguments, token by
token, before the call is complete, so that the notebook can show the cell filling in."""

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


class SourceStream:
    """Feeds on the growing arguments text of one call; `feed` returns the source text that
    became readable since the last call ("" when none did). Each piece of the arguments is
    decoded once: the work grows with the source, not with its square."""

    def __init__(self) -> None:
        self.arguments = ""
        self.source = ""
        self.started = False
        """The `source` field has begun, so its cell can be shown."""
        self._next: int | None = None
        """Where in `arguments` the source's text not yet decoded begins."""
        self._ended = False

    def feed(self, chunk: str) -> str:
        self.arguments += chunk
        if self._ended:
            return ""
        if self._next is None:
            match = re.search(_KEY.format("source") + '"', self.arguments)
            if match is None:
                return ""
            self._next, self.started = match.end(), True
        raw = self.arguments[self._next :]
        if end := _STRING_END.search(raw):
            raw, self._ended = raw[: end.end() - 1], True
        else:
            held = _HELD_BACK.search(raw)
            assert held is not None  # at the least, the empty end of `raw` matches
            raw = raw[: held.start(1)]
        try:
            new = json.loads(f'"{raw}"')
        except json.JSONDecodeError:
            self._ended = True  # a malformed escape: the call will be refused, the model told
            return ""
        self._next += len(raw)
        self.source += new
        return new
