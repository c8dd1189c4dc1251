"""A cell's source as the model writes it: read out of a tool call's JSON arguments, token by
token, before the call is complete, so that the notebook can show the cell filling in."""

from __future__ import annotations

import json
import re

_KEY = r'"{}"\s*:\s*'
#: An escape cut off by the end of the text so far: a lone backslash or a short \\u sequence.
_CUT_ESCAPE = re.compile(r"(?<!\\)(\\\\)*\\(u[0-9a-fA-F]{0,3})?$")


def string_field(arguments: str, key: str) -> str | None:
    """A complete top-level string value, or None while it is absent or still streaming.

    Inside a JSON string every quote is escaped, so the pattern cannot match there."""
    match = re.search(_KEY.format(key) + r'"((?:[^"\\]|\\.)*)"', arguments)
    return json.loads(f'"{match.group(1)}"') if match else None


class SourceStream:
    """Feeds on the growing arguments text of one call; `feed` returns the source text that
    became readable since the last call ("" when none did)."""

    def __init__(self) -> None:
        self.arguments = ""
        self.source = ""
        self.started = False
        """The `source` field has begun, so its cell can be shown."""
        self._start: int | None = None

    def feed(self, chunk: str) -> str:
        self.arguments += chunk
        if self._start is None:
            match = re.search(_KEY.format("source") + '"', self.arguments)
            if match is None:
                return ""
            self._start, self.started = match.end(), True
        raw = self.arguments[self._start :]
        end = re.search(r'(?<!\\)(\\\\)*"', raw)
        if end:
            raw = raw[: end.end() - 1]
        else:
            raw = _CUT_ESCAPE.sub(lambda m: m.group(1) or "", raw)
        try:
            decoded = json.loads(f'"{raw}"')
        except json.JSONDecodeError:
            return ""  # a malformed escape: the whole call will be refused and the model told
        new, self.source = decoded[len(self.source) :], decoded
        return new
