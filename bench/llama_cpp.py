"""The llama-cpp backend against llama.cpp itself, on random-weight GGUF models written here.

throughput_ratio: tokens/s while decoding through our backend (grammar, worker thread, hand-off to
the event loop, parsing the answer as it streams) over raw `llama_cpp.Llama.generate` on the same
model, prompt tokens, grammar and seed, in alternating rounds of one run (target >= 0.95).
kv_reuse_fraction: prompt tokens served from the KV cache over all prompt tokens of a 10-step
agent conversation (the agent's own system prompt and tools, answers appended with results), on a
model loaded as the server loads one, with the system prompt and tools evaluated ahead of the
first run (target >= 0.9); kv_reuse_fraction_cold: the same on a model that has evaluated nothing
yet, as in a command line run's process.
cancel_ms_p50 / cancel_prompt_ms_p50: from cancelling a turn to the end of its generation, while
tokens are sampled and while a long prompt is evaluated (target <= 100).
The last line printed is one JSON object of the figures.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

# This script has the package's name: `import llama_cpp` must find the package, not the script.
sys.path = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).parent]

import llama_cpp
from llama_cpp import LlamaGrammar

from jupyter_notebook_agent.agent.prompt import SYSTEM_PROMPT
from jupyter_notebook_agent.agent.tools import TOOLS
from jupyter_notebook_agent.llm.base import ModelTurn
from jupyter_notebook_agent.llm.llama_cpp import LlamaCppModel, LlamaCppOptions
from jupyter_notebook_agent.llm.llama_cpp.grammar import answer_grammar
from jupyter_notebook_agent.testing.tiny_model import write_tiny_gguf

ROUNDS = 5
TOKENS = 150
STEPS = 10
CANCELS = 10
#: A model big enough that decoding is compute, as with real models (about 100 MB).
THROUGHPUT_MODEL = {"layers": 8, "embedding": 512, "heads": 8, "feed_forward": 1536}
TASK = [
    {"role": "system", "content": SYSTEM_PROMPT},
    {"role": "user", "content": "Load sales.csv, clean it, and plot revenue by month."},
]


def report(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


async def ours(model: LlamaCppModel, messages: list[dict]) -> tuple[float, ModelTurn]:
    """Decoding tokens/s through the backend: tokens after the first over the time after it."""
    async for item in model.stream(messages, TOOLS):
        if isinstance(item, ModelTurn):
            decoding = item.duration_s - item.ttft_s
            return (item.usage.completion_tokens - 1) / decoding, item
    raise AssertionError("no turn")


def raw(llama: llama_cpp.Llama, tokens: list[int], grammar: str, options: LlamaCppOptions) -> float:
    """The same decoding, straight from llama-cpp-python: generate() and detokenize()."""
    count, first = 0, 0.0
    for token in llama.generate(
        tokens,
        grammar=LlamaGrammar.from_string(grammar, verbose=False),
        temp=options.temperature,
        repeat_penalty=1.0,
    ):
        if llama_cpp.llama_vocab_is_eog(llama._model.vocab, token) or count == options.max_tokens:
            break
        llama.detokenize([token])
        count += 1
        first = first or time.perf_counter()
    return (count - 1) / (time.perf_counter() - first)


async def throughput(folder: Path) -> dict[str, float]:
    path = write_tiny_gguf(folder / "throughput.gguf", **THROUGHPUT_MODEL)
    options = LlamaCppOptions(n_ctx=4096, max_tokens=TOKENS, seed=1)
    model = LlamaCppModel(str(path), options)
    llama = llama_cpp.Llama(str(path), n_ctx=options.n_ctx, seed=options.seed, verbose=False)
    # The very tokens the backend evaluates for this prompt, so that both decode the same.
    _, tokens = model._prompt(model._load(), TASK, TOOLS)
    grammar = answer_grammar(TOOLS)
    await ours(model, TASK)  # both load and cache the prompt before the rounds
    raw(llama, tokens, grammar, options)
    ratios, ours_rates, raw_rates = [], [], []
    for number in range(ROUNDS):
        raw_rate = raw(llama, tokens, grammar, options)
        our_rate, turn = await ours(model, TASK)
        ratios.append(our_rate / raw_rate)
        ours_rates.append(our_rate)
        raw_rates.append(raw_rate)
        report(
            f"round {number + 1}: ours {our_rate:.0f} tok/s, raw {raw_rate:.0f} tok/s "
            f"({turn.usage.completion_tokens} tokens)"
        )
    llama.close()
    await model.aclose()
    return {
        "throughput_ratio": round(statistics.median(ratios), 3),
        "tokens_per_s_ours": round(statistics.median(ours_rates), 1),
        "tokens_per_s_raw": round(statistics.median(raw_rates), 1),
    }


async def conversation(model: LlamaCppModel) -> float:
    """Ten steps of an append-only history; the share of prompt tokens the cache served."""
    messages = list(TASK)
    prompt = cached = 0
    for step in range(STEPS):
        _, turn = await ours(model, messages)
        prompt += turn.usage.prompt_tokens
        cached += turn.usage.cached_tokens
        report(
            f"step {step + 1}: {turn.usage.prompt_tokens} prompt tokens, "
            f"{turn.usage.prompt_tokens - turn.usage.cached_tokens} evaluated"
        )
        call = turn.tool_calls[0] if turn.tool_calls else None
        messages.append(turn.as_message())
        result = {"cell_id": f"agent-{step + 1}", "status": "ok", "outputs": [{"type": "stream"}]}
        result["outputs"][0]["text"] = f"step {step + 1}: " + "0.123 " * 40
        messages.append(
            {"role": "tool", "tool_call_id": call.id if call else "", "content": json.dumps(result)}
        )
    return cached / prompt


async def kv_reuse(folder: Path) -> dict[str, float]:
    path = str(write_tiny_gguf(folder / "tiny.gguf"))
    figures = {}
    for figure, warmed in (("kv_reuse_fraction", True), ("kv_reuse_fraction_cold", False)):
        report(f"{figure}:")
        model = LlamaCppModel(path, LlamaCppOptions(seed=3))
        if warmed:
            await asyncio.to_thread(model.warm, TASK[:1], TOOLS)
        figures[figure] = round(await conversation(model), 3)
        await model.aclose()
    return figures


async def cancel_ms(model: LlamaCppModel, messages: list[dict], after_s: float) -> float:
    async def consume() -> None:
        async for _ in model.stream(messages, TOOLS):
            pass

    task = asyncio.ensure_future(consume())
    await asyncio.sleep(after_s)
    if task.done():
        raise RuntimeError(f"the turn ended before it could be cancelled: {task.exception()}")
    cancelled = time.perf_counter()
    task.cancel()
    await asyncio.wait([task])
    return (time.perf_counter() - cancelled) * 1000


async def cancellation(folder: Path) -> dict[str, float]:
    path = write_tiny_gguf(folder / "cancel.gguf", **THROUGHPUT_MODEL)
    model = LlamaCppModel(str(path), LlamaCppOptions(n_ctx=8192, max_tokens=4000, seed=2))
    await ours(model, TASK)  # loaded, and the task's prompt cached: the next turns decode at once
    decoding = [await cancel_ms(model, TASK, 0.3) for _ in range(CANCELS)]
    long_prompt = [TASK[0], {"role": "user", "content": " ".join(map(str, range(1000)))}]
    evaluating = []
    for number in range(CANCELS):
        # Each time another prompt, so that its evaluation is under way when the cancel comes.
        long_prompt[1]["content"] = f"{number} " + long_prompt[1]["content"]
        evaluating.append(await cancel_ms(model, long_prompt, 0.2))
    await model.aclose()
    report(f"cancel while decoding (ms): {[round(ms, 1) for ms in decoding]}")
    report(f"cancel while evaluating a prompt (ms): {[round(ms, 1) for ms in evaluating]}")
    return {
        "cancel_ms_p50": round(statistics.median(decoding), 1),
        "cancel_ms_max": round(max(decoding), 1),
        "cancel_prompt_ms_p50": round(statistics.median(evaluating), 1),
        "cancel_prompt_ms_max": round(max(evaluating), 1),
    }


async def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        figures = await throughput(Path(folder))
        figures |= await kv_reuse(Path(folder))
        figures |= await cancellation(Path(folder))
    print(json.dumps(figures))


if __name__ == "__main__":
    asyncio.run(main())
