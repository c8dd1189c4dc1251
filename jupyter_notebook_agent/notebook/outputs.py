"""Kernel messages to nbformat outputs, and outputs to the digests the model reads."""

from __future__ import annotations

import base64
import re
import struct
from typing import Any

import nbformat
from nbformat import NotebookNode

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/svg+xml")
OUTPUT_MESSAGES = {"stream", "display_data", "execute_result", "error"}


class OutputCollector:
    """Builds a cell's outputs from IOPub messages the way the notebook UI would show them."""

    def __init__(self) -> None:
        self.outputs: list[NotebookNode] = []
        self.execution_count: int | None = None
        self._clear_on_next = False
        self._display_ids: dict[str, list[int]] = {}

    def add(self, msg: dict[str, Any]) -> None:
        kind, content = msg["header"]["msg_type"], msg["content"]
        if kind == "execute_input":
            self.execution_count = content.get("execution_count")
        elif kind == "clear_output":
            if content.get("wait"):
                self._clear_on_next = True
            else:
                self._clear()
        elif kind == "update_display_data":
            for position in self._display_ids.get(
                content.get("transient", {}).get("display_id"), []
            ):
                self.outputs[position].data = content["data"]
                self.outputs[position].metadata = content.get("metadata", {})
        elif kind in OUTPUT_MESSAGES:
            if self._clear_on_next:
                self._clear()
            self._append(nbformat.v4.output_from_msg(msg), content)

    def _clear(self) -> None:
        self.outputs.clear()
        self._display_ids.clear()
        self._clear_on_next = False

    def _append(self, output: NotebookNode, content: dict[str, Any]) -> None:
        last = self.outputs[-1] if self.outputs else None
        if (
            output.output_type == "stream"
            and last is not None
            and last.output_type == "stream"
            and last.name == output.name
        ):
            last.text += output.text
            return
        display_id = content.get("transient", {}).get("display_id")
        if display_id:
            self._display_ids.setdefault(display_id, []).append(len(self.outputs))
        self.outputs.append(output)


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
