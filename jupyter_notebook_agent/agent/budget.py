"""The context budget of a run: the tokens of history the model may be sent. The history is
append-only, so what is spent stays spent; outputs get less room as the budget fills, so that
the run can still finish, and a full budget ends the run."""

from __future__ import annotations

from .conversation import Conversation


class BudgetSpent(Exception):
    """The history reached the budget: the run cannot go on."""


class ContextBudget:
    def __init__(
        self,
        conversation: Conversation,
        budget_tokens: int,
        model_tokens: int | None,
        output_chars: int,
    ) -> None:
        self.conversation = conversation
        self.tokens = min(budget_tokens, model_tokens) if model_tokens else budget_tokens
        """The configured budget, within the model's context where the model says it."""
        self.output_chars = output_chars
        """The most of one output the model reads, while the budget has room."""
        self._reported = 0
        """Tokens of the last turn, prompt and answer, as the model counted them."""

    def observe(self, prompt_tokens: int, completion_tokens: int, sent_chars: int) -> None:
        """A turn's token counts, as the model reported them for the `sent_chars` it was sent."""
        self._reported = prompt_tokens + completion_tokens
        self.conversation.observe(prompt_tokens, sent_chars)

    @property
    def used(self) -> int:
        return max(self._reported, self.conversation.tokens)

    def chars(self, share: float) -> int:
        """The characters a `share` of the whole budget holds."""
        return int(self.tokens * share / self.conversation.tokens_per_char)

    def digest_chars(self) -> int:
        """The room one output gets in the model's view: less as the budget fills."""
        left = (self.tokens - self.used) / self.conversation.tokens_per_char
        return max(200, min(self.output_chars, int(left) // 4))

    def check(self) -> None:
        """BudgetSpent once the history has reached the budget."""
        if self.used >= self.tokens:
            raise BudgetSpent(f"the history reached the budget of {self.tokens} tokens")
