"""Kernel messages to nbformat outputs, and outputs to the digests the model reads."""

from __future__ import annotations

import base64
import collections
import re
import struct
from dataclasses import dataclass
from typing import Any

import nbformat
from nbformat import NotebookNode

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/svg+xml")
OUTPUT_MESSAGES = {"stream", "display_data", "execute_result", "error"}
CHANGING_MESSAGES = {*OUTPUT_MESSAGES, "clear_output", "update_display_data"}


@dataclass(frozen=True)
class OutputLimits:
    """How much of a cell's outputs is kept where they enter: a flood (a 100 MB print) would
    otherwise fill the notebook, the run's events and the server's memory."""

    stream_chars: int = 200_000
    """Of one stream (stdout, stderr): its head and its tail, with the cut marked."""
    output_bytes: int = 5_000_000
    """Of one rich output (an image, a table); a larger one is replaced by a note."""
    cell_bytes: int = 10_000_000
    """Of all the cell's outputs; past it, further ones are left out, with a note."""


class StreamText:
    """A stream's text kept as its head and its tail, in time linear in what arrives."""

    def __init__(self, limit: int) -> None:
        self.head_limit, self.tail_limit = limit // 2, limit - limit // 2
        self.head: list[str] = []
        self.head_length = 0
        self.tail: collections.deque[str] = collections.deque()
        self.tail_length = 0
        self.dropped = 0

    def add(self, text: str) -> None:
        if self.head_length < self.head_limit:
            taken = text[: self.head_limit - self.head_length]
            self.head.append(taken)
            self.head_length += len(taken)
            text = text[len(taken) :]
        if not text:
            return
        self.tail.append(text)
        self.tail_length += len(text)
        while self.tail_length - len(self.tail[0]) >= self.tail_limit:
            self.dropped += len(self.tail[0])
            self.tail_length -= len(self.tail.popleft())

    @property
    def text(self) -> str:
        tail = "".join(self.tail)
        over = max(len(tail) - self.tail_limit, 0)
        cut_out = self.dropped + over
        marker = f"\n... [{cut_out} characters of output cut] ...\n" if cut_out else ""
        return "".join(self.head) + marker + tail[over:]


class OutputCollector:
    """Builds a cell's outputs from IOPub messages the way the notebook UI would show them,
    bounded by `limits`."""

    def __init__(self, limits: OutputLimits | None = None) -> None:
        self.limits = limits or OutputLimits()
        self._outputs: list[NotebookNode] = []
        self._streams: dict[int, StreamText] = {}
        """The text of each stream output, by its position: set on the node when read."""
        self._bytes = 0
        self._left_out = 0
        self.execution_count: int | None = None
        self._clear_on_next = False
        self._display_ids: dict[str, list[int]] = {}
        self.changes = 0
        """How many messages changed the outputs so far: a reader can tell whether to look again."""

    @property
    def size(self) -> int:
        """About the bytes the outputs take: rich ones and the kept text of streams."""
        return self._bytes + sum(
            s.head_length + min(s.tail_length, s.tail_limit) for s in self._streams.values()
        )

    @property
    def outputs(self) -> list[NotebookNode]:
        for position, stream in self._streams.items():
            self._outputs[position].text = stream.text
        if self._left_out:
            note = f"[{self._left_out} more outputs left out: past {self.limits.cell_bytes} bytes]"
            return [*self._outputs, nbformat.v4.new_output("stream", name="stderr", text=note)]
        return list(self._outputs)

    def add(self, msg: dict[str, Any]) -> None:
        kind, content = msg["header"]["msg_type"], msg["content"]
        if kind == "execute_input":
            self.execution_count = content.get("execution_count")
            return
        if kind in CHANGING_MESSAGES:
            self.changes += 1
        if kind == "clear_output":
            if content.get("wait"):
                self._clear_on_next = True
            else:
                self._clear()
        elif kind == "update_display_data":
            for position in self._display_ids.get(
                content.get("transient", {}).get("display_id"), []
            ):
                updated = self._bounded(
                    nbformat.v4.new_output(
                        "display_data", content["data"], content.get("metadata", {})
                    )
                )
                self._outputs[position].data = updated.data
                self._outputs[position].metadata = updated.get("metadata", {})
        elif kind in OUTPUT_MESSAGES:
            if self._clear_on_next:
                self._clear()
            self._append(nbformat.v4.output_from_msg(msg), content)

    def _clear(self) -> None:
        self._outputs.clear()
        self._streams.clear()
        self._display_ids.clear()
        self._bytes = self._left_out = 0
        self._clear_on_next = False

    def _append(self, output: NotebookNode, content: dict[str, Any]) -> None:
        last = len(self._outputs) - 1
        if output.output_type == "stream":
            if last in self._streams and self._outputs[last].name == output.name:
                self._streams[last].add(output.text)
                return
            self._streams[last + 1] = StreamText(self.limits.stream_chars)
            self._streams[last + 1].add(output.text)
            output.text = ""
            self._outputs.append(output)
            return
        output = self._bounded(output)
        size = _size(output)
        if self._bytes + size > self.limits.cell_bytes:
            self._left_out += 1
            return
        self._bytes += size
        display_id = content.get("transient", {}).get("display_id")
        if display_id:
            self._display_ids.setdefault(display_id, []).append(len(self._outputs))
        self._outputs.append(output)

    def _bounded(self, output: NotebookNode) -> NotebookNode:
        """The output, or a note in its place where it is larger than one may be."""
        size = _size(output)
        if output.output_type == "error" or size <= self.limits.output_bytes:
            return output
        kinds = ", ".join(output.get("data", {}))
        note = f"[an output of {size} bytes ({kinds}) left out: past {self.limits.output_bytes}]"
        output.data, output.metadata = {"text/plain": note}, {}
        return output


def _size(output: NotebookNode) -> int:
    """About the bytes an output takes in the notebook file."""
    data = output.get("data", {})
    return sum(len(value) if isinstance(value, str) else len(str(value)) for value in data.values())


def cut(text: str, limit: int) -> str:
    """Keeps the head and the tail, where the meaning usually is, and says what was left out."""
    if len(text) <= limit:
        return text
    half = max(limit // 2, 1)
    return f"{text[:half]}\n... [{len(text) - 2 * half} characters cut] ...\n{text[-half:]}"


def image_size(mime: str, data: str) -> dict[str, int]:
    """Bytes, and pixel width and height where the header says them (PNG, GIF)."""
    raw = data.encode() if mime == "image/svg+xml" else base64.b64decode(data)
    size = {"bytes": len(raw)}
    if mime == "image/png" and raw[:8] == b"\x89PNG\r\n\x1a\n" and len(raw) >= 24:
        size["width"], size["height"] = struct.unpack(">II", raw[16:24])
    elif mime == "image/gif" and len(raw) >= 10:
        size["width"], size["height"] = struct.unpack("<HH", raw[6:10])
    return size


def digest(outputs: list[NotebookNode], limit: int) -> list[dict[str, Any]]:
    """What the model reads of a cell's outputs: text cut to `limit`, tracebacks kept whole where
    they fit, images named by type and size, rich reprs by their text form."""
    digests: list[dict[str, Any]] = []
    for output in outputs:
        kind = output.output_type
        if kind == "stream":
            digests.append({"type": output.name, "text": cut(output.text, limit)})
        elif kind == "error":
            traceback = ANSI_ESCAPE.sub("", "\n".join(output.traceback))
            digests.append(
                {
                    "type": "error",
                    "ename": output.ename,
                    "evalue": cut(output.evalue, limit),
                    "traceback": cut(traceback, 2 * limit),
                }
            )
        else:
            data = output.get("data", {})
            for mime in IMAGE_TYPES:
                if mime in data:
                    digests.append({"type": "image", "mime": mime} | image_size(mime, data[mime]))
            text = data.get("text/plain") or data.get("text/markdown") or data.get("text/html")
            if text:
                label = "result" if kind == "execute_result" else "display"
                digests.append({"type": label, "text": cut(ANSI_ESCAPE.sub("", text), limit)})
    return digests
