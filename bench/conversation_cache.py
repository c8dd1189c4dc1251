"""A follow-up request in a notebook's conversation, on the llama-cpp backend: its first token is
not delayed by the conversation, because the KV cache serves what the earlier request left.

Each round: a request runs on a new Conversation (STEPS model turns), then a follow-up request
runs as a second Agent on the same Conversation and model; its first model turn (the first
model_turn event of the second run) is the one measured.
followup_cached_share: of that turn's prompt tokens, the share the KV cache served (target
>= 0.9), from the counts its model_turn event reports (followup_prompt_tokens,
followup_cached_tokens); followup_evaluated_tokens: the prompt tokens llama.cpp was in fact given
to evaluate in that turn, which must be the difference of the two.
followup_ttft_ms: its time to first token. cold_ttft_ms: the same prompt, the very same tokens,
evaluated on the same model after its cache was emptied: what the follow-up would wait for
without the cache. ttft_ratio: followup_ttft / cold_ttft, per round (lower is better).
fresh_ttft_ms: the same follow-up request on a fresh Conversation (the system prompt and that
request alone, as when the conversation is not kept), the system prompt cached as a server has
it. followup_over_fresh_ttft: followup_ttft / fresh_ttft, per round: what keeping the
conversation still costs the first token (the follow-up also evaluates the first request's last
tool result, which no turn has read yet).
The model is the tiny random-weight GGUF, whose tokens are bytes: all parts of the prompt are
counted in the same unit, so the shares hold as fractions of the text. Figures are p50 over
ROUNDS rounds, after one round that warms the machine up.
The last line printed is one JSON object of the figures.
"""

from __future__ import annotations

import asyncio
import copy
import json
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_notebook_agent.agent import Agent, AgentConfig, EventLog
from jupyter_notebook_agent.agent.conversation import Conversation
from jupyter_notebook_agent.agent.prompt import system_message
from jupyter_notebook_agent.agent.tools import TOOLS
from jupyter_notebook_agent.kernels import JupyterKernelSession
from jupyter_notebook_agent.llm import load_model
from jupyter_notebook_agent.llm.base import ModelTurn
from jupyter_notebook_agent.llm.llama_cpp import LlamaCppModel, LlamaCppOptions
from jupyter_notebook_agent.notebook import NotebookDocument
from jupyter_notebook_agent.testing.tiny_model import write_tiny_gguf

ROUNDS = 7
STEPS = 2
"""Model turns of the first request: the tiny model's calls never complete a task."""
N_CTX = 8192
"""Two requests of the tiny model fit with room to spare (byte tokens make prompts long)."""
REQUESTS = [
    ("Load sales.csv, clean it, and plot revenue by month.", "Add a 3-month rolling mean to it."),
    ("Read weather.parquet and show its columns.", "Which month was the wettest? Plot rainfall."),
    ("Fit a linear model of price on area in homes.csv.", "Now add the number of rooms as well."),
]
"""A request and its follow-up, one pair a round (the seed is fixed: the text varies the turns)."""


@dataclass
class Round:
    """One round's measurements, in tokens and seconds."""

    prompt_tokens: int
    cached_tokens: int
    """As the follow-up's model_turn event reports them."""
    evaluated_tokens: int
    """Prompt tokens llama.cpp was given to evaluate in that turn, counted at its door."""
    followup_ttft_s: float
    cold_ttft_s: float
    fresh_ttft_s: float

    @property
    def share(self) -> float:
        return self.cached_tokens / self.prompt_tokens


def report(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


async def first_turn(
    model: LlamaCppModel,
    kernel: JupyterKernelSession,
    notebook: NotebookDocument,
    conversation: Conversation,
    task: str,
    steps: int,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Runs one request as the server does (an Agent on the notebook's conversation); returns
    its first model_turn event and the messages that turn was sent. The event is taken from
    this run's own log, so it is this request's first turn and no other."""
    events = EventLog()
    turns: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []

    def seen(event: dict[str, Any]) -> None:
        # Emitted before the turn joins the conversation: its messages are what it was sent.
        if event["type"] == "model_turn" and not turns:
            turns.append((event, copy.deepcopy(conversation.messages)))

    events.subscribe(seen)
    agent = Agent(
        model,
        kernel,
        notebook,
        config=AgentConfig(max_steps=steps),
        events=events,
        conversation=conversation,
    )
    outcome = await agent.run(task)
    if not turns:
        raise RuntimeError(f"the request ended without a model turn: {outcome}")
    return turns[0]


async def whole_turn(model: LlamaCppModel, messages: list[dict[str, Any]]) -> ModelTurn:
    async for item in model.stream(messages, TOOLS):
        if isinstance(item, ModelTurn):
            return item
    raise AssertionError("no turn")


def tokens_of(llama: Any, text: str) -> list[int]:
    return llama.tokenize(text.encode(), add_bos=False, special=True)


def count_evaluations(llama: Any) -> list[int]:
    """From now on, the size of each batch llama.cpp is given to evaluate: what it really
    evaluated, to check the backend's cached_tokens (its own count of the reused prefix)."""
    sizes: list[int] = []
    evaluate = llama.eval

    def counted(tokens: list[int]) -> None:
        sizes.append(len(tokens))
        evaluate(tokens)

    llama.eval = counted
    return sizes


def diagnose(llama: Any, held: list[int], sent: list[int], request: str) -> list[str]:
    """Where the follow-up's tokens part from those the KV cache held after the first request,
    and what the follow-up had to evaluate: the evidence of what keeps the share below 1."""
    common = 0
    for a, b in zip(held, sent, strict=False):
        if a != b:
            break
        common += 1

    def text(tokens: list[int]) -> str:
        return llama.detokenize(tokens, special=True).decode(errors="replace")

    asked = len(tokens_of(llama, request))
    lines = [
        f"  the cache held {len(held)} tokens, the follow-up's first {common} of {len(sent)} "
        f"the same; evaluated: the new request ({asked}) and the first request's last tool "
        f"result with the template's markers ({len(sent) - common - asked}), from "
        f"{text(sent[common : common + 40])!r}"
    ]
    if common < len(held):
        lines += [
            f"  they part at token {common}, after {text(held[common - 40 : common])!r}:",
            f"    held: {text(held[common : common + 60])!r}",
            f"    sent: {text(sent[common : common + 60])!r}",
        ]
    return lines


async def one_round(
    model: LlamaCppModel, kernel: JupyterKernelSession, evaluations: list[int], number: int
) -> Round:
    """A request, its follow-up on the same conversation, the follow-up's prompt on an empty
    cache, and the follow-up request alone on a fresh conversation."""
    label = f"round {number}/{ROUNDS}" if number else "warm-up"
    first, follow_up = REQUESTS[number % len(REQUESTS)]
    llama = model._load()
    conversation, notebook = Conversation(), NotebookDocument()
    await first_turn(model, kernel, notebook, conversation, first, STEPS)
    held = llama._input_ids.tolist()
    last = model._last  # the transcript the follow-up's tokens are built on
    before = len(conversation.messages)
    unchanged = NotebookDocument(copy.deepcopy(notebook.nb))

    evaluations.clear()
    event, sent = await first_turn(model, kernel, notebook, conversation, follow_up, 1)
    if len(sent) != before + 1 or sent[-1]["role"] != "user":
        raise RuntimeError("the follow-up's first turn is not the first request plus one message")
    usage = event["usage"]
    evaluated = evaluations[0]  # the prompt; then the answer's tokens, one at a time
    if evaluated != usage["prompt_tokens"] - usage["cached_tokens"]:
        report(f"  the backend says {usage}, but llama.cpp evaluated {evaluated} prompt tokens")

    # The very tokens the follow-up was evaluated from, now on an empty cache.
    model._last = last
    _, tokens = model._prompt(llama, sent, TOOLS)
    if len(tokens) != usage["prompt_tokens"]:
        raise RuntimeError(f"rebuilt {len(tokens)} prompt tokens, the turn had {usage}")
    diagnosis = diagnose(llama, held, tokens, sent[-1]["content"])
    llama.reset()
    evaluations.clear()
    cold = await whole_turn(model, sent)
    if cold.usage.prompt_tokens != len(tokens) or evaluations[0] != len(tokens):
        raise RuntimeError(f"the cold turn evaluated {evaluations[0]} of {cold.usage}")

    fresh, _ = await first_turn(model, kernel, unchanged, Conversation(), follow_up, 1)
    result = Round(
        usage["prompt_tokens"],
        usage["cached_tokens"],
        evaluated,
        event["ttft_s"],
        cold.ttft_s,
        fresh["ttft_s"],
    )
    report(
        f"{label}: follow-up {result.cached_tokens}/{result.prompt_tokens} prompt tokens cached "
        f"({result.share:.3f}), ttft {result.followup_ttft_s * 1000:.1f} ms; cold "
        f"{result.cold_ttft_s * 1000:.1f} ms; fresh conversation "
        f"{result.fresh_ttft_s * 1000:.1f} ms ({fresh['usage']['prompt_tokens']} prompt tokens, "
        f"{fresh['usage']['cached_tokens']} cached)"
    )
    for line in diagnosis:
        report(line)
    return result


def p50(values: Sequence[float]) -> float:
    return statistics.median(values)


async def main() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = write_tiny_gguf(Path(tmp) / "tiny.gguf")
        model = load_model(f"llama-cpp:{path}", local=LlamaCppOptions(n_ctx=N_CTX, seed=7))
        assert isinstance(model, LlamaCppModel)
        # As the server makes a local model: loaded, the system prompt and tools evaluated.
        await asyncio.to_thread(model.warm, [system_message()], TOOLS)
        evaluations = count_evaluations(model._load())
        kernel = await JupyterKernelSession.start("python3", cwd=tmp)
        try:
            await one_round(model, kernel, evaluations, 0)
            rounds = [
                await one_round(model, kernel, evaluations, number)
                for number in range(1, ROUNDS + 1)
            ]
        finally:
            await kernel.shutdown()
            await model.aclose()
    followup = [r.followup_ttft_s * 1000 for r in rounds]
    return {
        "followup_prompt_tokens": p50([r.prompt_tokens for r in rounds]),
        "followup_cached_tokens": p50([r.cached_tokens for r in rounds]),
        "followup_evaluated_tokens": p50([r.evaluated_tokens for r in rounds]),
        "followup_cached_share": round(p50([r.share for r in rounds]), 3),
        "followup_cached_share_min": round(min(r.share for r in rounds), 3),
        "followup_ttft_ms": round(p50(followup), 1),
        "cold_ttft_ms": round(p50([r.cold_ttft_s * 1000 for r in rounds]), 1),
        "fresh_ttft_ms": round(p50([r.fresh_ttft_s * 1000 for r in rounds]), 1),
        "ttft_ratio": round(p50([r.followup_ttft_s / r.cold_ttft_s for r in rounds]), 3),
        "followup_over_fresh_ttft": round(
            p50([r.followup_ttft_s / r.fresh_ttft_s for r in rounds]), 3
        ),
        "rounds": ROUNDS,
    }


if __name__ == "__main__":
    # This folder holds bench/llama_cpp.py: `import llama_cpp` must find the package instead.
    here = Path(__file__).resolve().parent
    sys.path = [entry for entry in sys.path if Path(entry or ".").resolve() != here]
    print(json.dumps(asyncio.run(main())))
