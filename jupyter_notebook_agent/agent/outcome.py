"""How a run ends, and the exception that ends it from anywhere in the loop."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RunOutcome:
    success: bool
    reason: str
    """completed, gave_up, max_steps, time_limit, context_budget, format_errors, model_error,
    kernel_error, stopped, or interrupted (its server stopped or was killed: it may continue)."""
    summary: str


class RunEnded(Exception):
    """Ends the loop from anywhere in it with an outcome."""

    def __init__(self, outcome: RunOutcome) -> None:
        super().__init__(outcome.summary)
        self.outcome = outcome
