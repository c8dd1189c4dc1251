"""What a task is, apart from the tasks themselves (the theme modules build on it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

#: The themes a task belongs to; the scores are reported per theme.
TOPICS = ("loading", "cleaning", "groupby", "join", "timeseries", "plot", "model", "recovery")


class CheckFailed(AssertionError):
    """What a task's checker found wrong, in words a person can read."""


@dataclass(frozen=True)
class Task:
    """A data-analysis request, its data, how to tell it was solved, and a solution that is."""

    name: str
    topic: str
    request: str
    make_data: Callable[[Path], None]
    check: Callable[[Path, Path], None]
    reference: tuple[str, ...]
    smoke: bool = False

    def __post_init__(self) -> None:
        if self.topic not in TOPICS:
            raise ValueError(f"task {self.name}: topic {self.topic!r} is not one of {TOPICS}")
