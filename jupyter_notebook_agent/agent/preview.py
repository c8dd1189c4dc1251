"""The cells a model's answer writes, shown while the answer streams: a cell call's cell is added
once its type is known and filled token by token, so the person watches it being written. Once
the answer is whole, the tools take each call's cell over; a call that turns out unusable has
what it showed undone."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..llm.base import ModelTurn, ToolCallDelta
from ..partial_json import FieldStream, string_field
from .cells import RunCells
from .events import CellSourceDelta


def too_long(chars: int, limit: int) -> str:
    """What the model reads of a cell source past the limit a cell may have."""
    return (
        f"the cell's source has {chars} characters, more than the {limit} a cell may have: "
        "split it into smaller cells, and read data from files"
    )


@dataclass
class StreamingCall:
    """A tool call still arriving; a cell call gets its cell shown as its source streams."""

    name: str = ""
    call_id: str | None = None
    """Its id, where the model named it as it began (the whole answer names it always)."""
    source: FieldStream = field(default_factory=lambda: FieldStream("source"))
    cell_id: str | None = None
    after_cell_id: str | None = None
    original: str | None = None
    """The source an edit replaces, restored when the call turns out unusable."""
    ignored: bool = False


class CellPreview:
    def __init__(self, cells: RunCells, max_cell_chars: int) -> None:
        self.cells = cells
        self.max_cell_chars = max_cell_chars
        self._arriving: dict[int, StreamingCall] = {}
        """The answer's calls while it streams, by their index in it."""
        self._answered: dict[str, StreamingCall] = {}
        """The last whole answer's calls, by id, until the tools take them."""

    def feed(self, delta: ToolCallDelta) -> None:
        call = self._arriving.setdefault(delta.index, StreamingCall())
        call.name += delta.name or ""
        call.call_id = delta.id or call.call_id
        text = call.source.feed(delta.arguments)
        if call.ignored or call.name not in ("add_cell", "edit_cell") or not call.source.started:
            return
        if call.cell_id is None and not self._open(call):
            call.ignored = True
            return
        assert call.cell_id is not None
        if not self.cells.is_live(call.cell_id):  # the person rejected it as it was written
            call.ignored = True
        elif call.source.length > self.max_cell_chars:
            self.withdraw(call, too_long(call.source.length, self.max_cell_chars))
            call.ignored = True
        elif text:
            self.cells.notebook.cell(call.cell_id).source += text
            self.cells.events.emit(CellSourceDelta(call.cell_id, text))

    def answered(self, turn: ModelTurn) -> None:
        """The answer is whole: its calls, in index order, now have their ids."""
        indices = sorted(self._arriving)
        self._answered = {
            call.id: self._arriving[i] for call, i in zip(turn.tool_calls, indices, strict=False)
        }
        self._arriving = {}

    def cut_off(self, reason: str) -> None:
        """The answer ended before it was whole (a stop, a failure): its cells go."""
        for call in self._arriving.values():
            self.withdraw(call, reason)
        self._arriving = {}

    def take(self, call_id: str) -> StreamingCall | None:
        """What the call with that id showed while it streamed, for its tool to take over."""
        return self._answered.pop(call_id, None)

    def withdraw(self, call: StreamingCall, reason: str) -> None:
        """Undoes what an unusable call showed: its new cell goes, an edited cell gets its
        source back."""
        if call.cell_id is None or not self.cells.is_live(call.cell_id):
            return
        if call.original is None:
            self.cells.withdraw(call.cell_id, reason)
        else:
            self.cells.edit(call.cell_id, call.original)

    def _open(self, call: StreamingCall) -> bool:
        arguments = call.source.arguments
        notebook = self.cells.notebook
        if call.name == "edit_cell":
            cell_id = string_field(arguments, "cell_id")
            if cell_id is None or not self.cells.is_live(cell_id):
                return False
            cell = notebook.cell(cell_id)
            call.cell_id, call.original, cell.source = cell_id, cell.source, ""
            self.cells.events.emit(CellSourceDelta(cell_id, "", reset=True))
            return True
        cell_type = string_field(arguments, "cell_type")
        if cell_type not in ("code", "markdown"):
            return False  # unknown until after the source: the cell appears when the call ends
        after = string_field(arguments, "after_cell_id")
        if after is not None and not notebook.has(after):
            after = None
        cell = self.cells.propose(cell_type, "", after, call.call_id, streaming=True)
        call.cell_id, call.after_cell_id = cell.id, after
        return True
