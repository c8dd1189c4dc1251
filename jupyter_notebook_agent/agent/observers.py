"""Other packages observe runs (to log them to a tracking service, say) through an entry point.

An entry point in the group `jupyter_notebook_agent.observers` names a callable that is given
every event of every run, in order: `def observe(event: dict) -> None`.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import entry_points

from .events import Event, Listener

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


class ObserverThread:
    """Calls observers in a thread of their own, each event in order: an observer that takes
    its time (a tracking service over the network) must not hold up a server's event loop."""

    def __init__(self, observers: list[Listener]) -> None:
        self.observers = observers
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="run-observers")

    def __call__(self, event: Event) -> None:
        if self.observers:
            self._thread.submit(self._tell, event)

    def _tell(self, event: Event) -> None:
        for observer in self.observers:
            try:
                observer(event)
            except Exception:
                log.exception("the run observer %r failed on %s", observer, event["type"])

    def close(self) -> None:
        """Once every event so far has been told."""
        self._thread.shutdown(wait=True)
