"""The run's transcript: every event but the token deltas, one JSON object a line, as it happens."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .events import Event, is_snapshot

#: Deltas repeat what whole turns and cells say again; the transcript keeps the wholes (and
#: a cell's final outputs, not the snapshots of them while it runs).
SKIPPED = {"message_delta", "cell_source_delta"}


class TranscriptWriter:
    def __init__(self, path: str | Path) -> None:
        self._file = Path(path).open("w", encoding="utf-8")

    def __call__(self, event: Event) -> None:
        if event["type"] not in SKIPPED and not is_snapshot(event):
            self._file.write(json.dumps(event, default=_plain) + "\n")
            self._file.flush()

    def close(self) -> None:
        self._file.close()


def _plain(value: Any) -> Any:
    return dict(value) if hasattr(value, "keys") else str(value)
