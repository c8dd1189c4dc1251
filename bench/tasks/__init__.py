"""The task suite that scores the agent: data-analysis requests, each with seeded data, a checker
that reads the finished notebook and the files it wrote, and a reference solution.

`TASKS` holds them in order, the three `smoke` tasks first (CI runs those with a tiny model).
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from . import cleaning, groupby, joins, loading, models, plots, recovery, smoke, timeseries
from .base import TOPICS, CheckFailed, Task

__all__ = ["TASKS", "TOPICS", "CheckFailed", "Task", "select"]


def _by_name(*groups: tuple[Task, ...]) -> dict[str, Task]:
    tasks: dict[str, Task] = {}
    for task in (task for group in groups for task in group):
        if task.name in tasks:
            raise ValueError(f"two tasks are named {task.name}")
        tasks[task.name] = task
    return tasks


TASKS: dict[str, Task] = _by_name(
    smoke.TASKS,
    loading.TASKS,
    cleaning.TASKS,
    groupby.TASKS,
    joins.TASKS,
    timeseries.TASKS,
    plots.TASKS,
    models.TASKS,
    recovery.TASKS,
)


def select(pattern: str | None) -> list[Task]:
    """The tasks whose name or topic matches `pattern` (fnmatch-style), all of them for None."""
    if pattern is None:
        return list(TASKS.values())
    return [
        task
        for task in TASKS.values()
        if fnmatchcase(task.name, pattern) or fnmatchcase(task.topic, pattern)
    ]
