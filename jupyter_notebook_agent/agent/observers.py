"""Other packages observe runs (to log them to a tracking service, say) through an entry point.

An entry point in the group `jupyter_notebook_agent.observers` names a callable that is given
every event of every run, in order: `def observe(event: dict) -> None`.
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points

from .events import Listener

GROUP = "jupyter_notebook_agent.observers"
log = logging.getLogger(__name__)


def load_observers() -> list[Listener]:
    observers = []
    for entry in entry_points(group=GROUP):
        try:
            observers.append(entry.load())
        except Exception:
            log.exception("could not load the run observer %r; runs go on without it", entry.name)
    return observers
