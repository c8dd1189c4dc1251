"""A GGUF model run in this process by llama.cpp (the optional extra `[local]`).

Tool calls are forced into valid JSON by a grammar (see grammar.py), so weak models that
cannot call tools still can. Generation runs in a worker thread, off the event loop; one turn at a
time per model, since a llama.cpp context serves one sequence. The history is append-only, so each
step's prompt begins with the previous one and llama.cpp's KV cache serves that prefix: a step
evaluates only what it appended.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..base import ModelError, StreamItem, TurnAssembler, Usage
from .chat_template import ChatTemplate, chat_template
from .grammar import AnswerReader, answer_grammar, answer_instructions, answer_text
from .loading import INSTALL_HINT, LlamaCppOptions, Offload, check_gguf, load_llama, resolve_path
from .native_calls import NativeCalls, NativeReader

log = logging.getLogger(__name__)

ANSWERS_KEPT = 1024
"""Answers remembered as written, for the histories that show them again."""


class LlamaCppModel:
    """Streams turns from a local GGUF model, with grammar-constrained tool calls."""

    def __init__(self, name: str, options: LlamaCppOptions | None = None) -> None:
        try:
            import llama_cpp  # noqa: F401
        except ImportError:
            raise ModelError(INSTALL_HINT) from None
        self.name = name
        self.options = options or LlamaCppOptions()
        self.context_tokens: int | None = self.options.n_ctx
        self.path = resolve_path(name)
        self.metadata = check_gguf(self.path)
        self.offload: Offload | None = None
        """Where the layers went, once the model is loaded."""
        self._llama: Any = None
        self._lock = threading.Lock()
        self._grammars: dict[str, str] = {}
        self._answers: OrderedDict[tuple[str, str, str], str] = OrderedDict()
        """Answers as the model wrote them, by (message, tool, arguments): the history shows
        the model its own text again, escapes and all, so the prompt's prefix stays the same."""
        self._last: _Transcript | None = None
        self.template: ChatTemplate | None = None
        """The chat template its prompts are made with, chosen once the model is loaded."""
        self.native_calls: NativeCalls | None = None
        """The template's own tool-call format, where it has one and the options allow it; else
        answers are the grammar's JSON envelope."""

    @classmethod
    def from_settings(cls, name: str, settings: Mapping[str, Any]) -> LlamaCppModel:
        return cls(name, settings.get("local"))

    async def stream(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> AsyncIterator[StreamItem]:
        started = time.perf_counter()
        ttft = 0.0
        pieces = _Handoff(asyncio.get_running_loop())
        stop = threading.Event()
        worker = asyncio.create_task(
            asyncio.to_thread(self._generate, messages, tools, pieces.put, stop)
        )
        reader: AnswerReader | NativeReader | None = None
        assembler = TurnAssembler()
        try:
            while (piece := await pieces.get()) is not None:
                ttft = ttft or time.perf_counter() - started
                reader = reader or self._reader()  # the model is loaded by now
                for delta in reader.feed(piece):
                    assembler.add(delta)
                    yield delta
            usage, self._last, cut_short = await worker
            for delta in reader.finish() if reader else []:
                assembler.add(delta)
                yield delta
        finally:
            stop.set()
            # The turn is over only when llama.cpp has stopped, so Stop means stopped.
            await asyncio.wait([worker])
            if not worker.cancelled():
                worker.exception()  # seen here when the turn ended some other way
        turn = assembler.turn(usage, ttft, time.perf_counter() - started)
        turn.cut_short = cut_short
        if not isinstance(reader, AnswerReader):
            yield turn  # a native call is shown again by the template, from the call itself
            return
        for call in turn.tool_calls:
            self._answers[(turn.content, call.name, call.arguments)] = reader.text
            while len(self._answers) > ANSWERS_KEPT:
                self._answers.popitem(last=False)
        yield turn

    def _generate(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        emit: Any,
        stop: threading.Event,
    ) -> tuple[Usage, _Transcript | None, str]:
        """In a worker thread: evaluate the prompt, sample the answer, emit its text piece by
        piece (then None). Returns the turn's token counts, the prompt and answer as text and
        tokens (which the next step's prompt will begin with), and why the answer was cut short
        ("" when the model ended it)."""
        import llama_cpp

        try:
            with self._lock:
                if stop.is_set():
                    return Usage(), None, ""
                llama = self._load()
                prompt, tokens = self._prompt(llama, messages, tools)
                cached = _reused_prefix(llama, tokens)
                decode = codecs.getincrementaldecoder("utf-8")(errors="replace")
                answer: list[str] = []
                generated: list[int] = []
                vocab = llama._model.vocab
                budget = min(self.options.max_tokens, llama.n_ctx() - len(tokens))
                cut_short = ""
                with _abortable(llama, stop) as prompt_evaluated:
                    for token in llama.generate(
                        tokens,
                        grammar=self._grammar(llama, tools),
                        temp=self.options.temperature,
                        repeat_penalty=1.0,
                    ):
                        prompt_evaluated()
                        if stop.is_set() or llama_cpp.llama_vocab_is_eog(vocab, token):
                            break
                        generated.append(token)
                        if text := decode.decode(llama.detokenize([token])):
                            answer.append(text)
                            emit(text)
                        if len(generated) >= budget:
                            cut_short = f"it reached the limit of {budget} tokens for one answer"
                            break
                        if looping(generated):
                            cut_short = "it repeated the same few words over and over"
                            break
                if tail := decode.decode(b"", final=True):
                    answer.append(tail)
                    emit(tail)
                usage = Usage(len(tokens), len(generated), cached)
                transcript = _Transcript(prompt + "".join(answer), tokens + generated)
                return usage, transcript, cut_short
        except RuntimeError as error:
            if stop.is_set():  # llama.cpp aborted the prompt's evaluation on purpose
                return Usage(), None, ""
            raise ModelError(f"llama.cpp failed on {self.name}: {error}") from error
        finally:
            emit(None)

    def _load(self) -> Any:
        """Loads the weights on first use, offloading to the GPU where the build can, and
        chooses the chat template (said in the log where the file has none)."""
        if self._llama is None:
            llama, self.offload = load_llama(self.path, self.options)
            self.template = chat_template(
                self.metadata,
                bos=llama._model.token_get_text(llama.token_bos()),
                eos=llama._model.token_get_text(llama.token_eos()),
                add_bos=llama._model.add_bos_token(),
            )
            if self.template.name != "gguf":
                log.warning(
                    "%s has no chat template: using %s",
                    self.path.name,
                    self.template.describe(),
                )
            if self.options.tool_calls == "native":
                self.native_calls = self.template.calls
            log.info(
                "%s: %s",
                self.path.name,
                self.native_calls.describe() if self.native_calls else "tool calls in JSON",
            )
            self._llama = llama
        return self._llama

    def _reader(self) -> AnswerReader | NativeReader:
        return self.native_calls.reader() if self.native_calls else AnswerReader()

    def warm(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> int:
        """Loads the model and evaluates `messages`, the part every run's prompt begins with
        (the system prompt and the tools), so that a run's first step finds it in the KV cache.
        Blocking: a server runs it in a thread when it makes the model. Returns the tokens
        evaluated."""
        with self._lock:
            llama = self._load()
            _, tokens = self._prompt(llama, messages, tools, answer_next=False)
            llama.n_tokens = _reused_prefix(llama, tokens)
            evaluated = tokens[llama.n_tokens :]
            llama.eval(evaluated)
            return len(evaluated)

    def _prompt(
        self,
        llama: Any,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        answer_next: bool = True,
    ) -> tuple[str, list[int]]:
        """The prompt as text and tokens (ending where the model's answer begins, unless not
        `answer_next`). When it goes on from the last prompt and answer, those keep the tokens
        llama.cpp evaluated and sampled (tokenizing the answer's text again might split it
        otherwise), so the KV cache serves all of them."""
        try:
            if self.native_calls:
                prompt = self.template.format(native_messages(messages), answer_next, tools)
            else:
                plain = chat_messages(messages, tools, self._answers)
                prompt = self.template.format(plain, answer_next)
        except Exception as error:
            raise ModelError(f"the chat template of {self.path.name} failed: {error}") from error

        def tokenize(text: str) -> list[int]:
            return llama.tokenize(text.encode(), add_bos=False, special=True)

        last = self._last
        if last is not None and prompt.startswith(last.text):
            tokens = last.tokens + tokenize(prompt[len(last.text) :])
        else:
            tokens = tokenize(prompt)
        if len(tokens) >= llama.n_ctx() - 16:
            raise ModelError(
                f"the conversation ({len(tokens)} tokens) no longer fits the context of "
                f"{llama.n_ctx()} tokens: raise n_ctx (c.LlamaCpp.n_ctx, --n-ctx)"
            )
        return prompt, tokens

    def _grammar(self, llama: Any, tools: list[dict[str, Any]]) -> Any:
        """The grammar of an answer calling one of `tools`, checked by llama.cpp once (it
        would crash sampling with a grammar it cannot parse)."""
        import llama_cpp
        from llama_cpp import LlamaGrammar

        key = json.dumps(tools, sort_keys=True)
        if key not in self._grammars:
            calls = self.native_calls
            grammar = calls.grammar(tools) if calls else answer_grammar(tools)
            check = llama_cpp.llama_sampler_init_grammar(
                llama._model.vocab, grammar.encode(), b"root"
            )
            if not check:
                raise ModelError(f"llama.cpp cannot parse the grammar of these tools:\n{grammar}")
            llama_cpp.llama_sampler_free(check)
            self._grammars[key] = grammar
        return LlamaGrammar.from_string(self._grammars[key], verbose=False)

    async def aclose(self) -> None:
        with self._lock:
            if self._llama is not None:
                self._llama.close()
                self._llama = None


@dataclass
class _Transcript:
    """A prompt and its answer, as text and as the tokens llama.cpp evaluated and sampled."""

    text: str
    tokens: list[int]


def chat_messages(
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]],
    written: Mapping[tuple[str, str, str], str],
) -> list[dict[str, str]]:
    """The agent's OpenAI-style history as plain chat for any template: the tools described in
    the system prompt, each answer as the JSON the model wrote (`written`, where it is known),
    tool results as user turns, and turns of one role in a row merged (some templates insist
    that roles alternate)."""
    plain: list[dict[str, str]] = []
    for message in messages:
        role, content = message["role"], message.get("content") or ""
        if role == "system":
            content += answer_instructions(tools)
        elif role == "assistant":
            answers = []
            for call in message.get("tool_calls") or []:
                name, arguments = call["function"]["name"], call["function"]["arguments"]
                key = (content, name, arguments)
                answers.append(written.get(key) or answer_text(content, name, arguments))
            content = "".join(answers) or content
        elif role == "tool":
            role, content = "user", f"Tool result: {content}"
        if plain and plain[-1]["role"] == role:
            plain[-1]["content"] += "\n\n" + content
        else:
            plain.append({"role": role, "content": content})
    return plain


def native_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The agent's OpenAI-style history for a template that writes tool calls itself: each
    call's arguments as an object (templates write them out with `tojson`)."""
    native = []
    for message in messages:
        if calls := message.get("tool_calls"):
            message = {**message, "tool_calls": [_parsed(call) for call in calls]}
        native.append(message)
    return native


def _parsed(call: dict[str, Any]) -> dict[str, Any]:
    function = call["function"]
    try:
        arguments = json.loads(function["arguments"])
    except (TypeError, ValueError):
        arguments = function["arguments"]  # a call cut short: shown as it was written
    return {**call, "function": {**function, "arguments": arguments}}


LOOP_TOKENS = 96
"""A tail this long that repeats one short cycle of tokens is a model stuck in a loop."""
LONGEST_CYCLE = 24


def looping(tokens: list[int]) -> bool:
    """Whether the answer's last LOOP_TOKENS tokens are one cycle of at most LONGEST_CYCLE tokens
    over and over (`$1000000...`, the same line again and again): a small model caught so goes
    on until its token budget is spent, minutes on a CPU, and its answer is then cut off there."""
    if len(tokens) < LOOP_TOKENS:
        return False
    tail = tokens[-LOOP_TOKENS:]
    return any(tail[period:] == tail[:-period] for period in range(1, LONGEST_CYCLE + 1))


def _reused_prefix(llama: Any, tokens: list[int]) -> int:
    """How many of `tokens` the KV cache holds already (as llama-cpp's generate reuses them:
    at least one token is always evaluated, for fresh logits)."""
    common = 0
    for held, token in zip(llama._input_ids.tolist(), tokens, strict=False):
        if held != token:
            break
        common += 1
    return min(common, len(tokens) - 1)


@contextmanager
def _abortable(llama: Any, stop: threading.Event) -> Iterator[Any]:
    """Lets `stop` abort llama.cpp inside the prompt's evaluation, which can take seconds. The
    check runs in llama.cpp's compute loop, so it is removed once the prompt is evaluated (the
    caller says when); from then on, the caller checks `stop` between tokens."""
    import llama_cpp

    context = llama._ctx.ctx
    check = llama_cpp.ggml_abort_callback(lambda _: stop.is_set())
    llama_cpp.llama_set_abort_callback(context, check, None)
    removed = False

    def prompt_evaluated() -> None:
        nonlocal removed
        if not removed:
            llama_cpp.llama_set_abort_callback(context, llama_cpp.ggml_abort_callback(), None)
            removed = True

    try:
        yield prompt_evaluated
    finally:
        prompt_evaluated()


class _Handoff:
    """Text pieces from the worker thread to the event loop: the loop is woken once per batch,
    not once per token."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._items: deque[str | None] = deque()
        self._lock = threading.Lock()
        self._ready = asyncio.Event()

    def put(self, item: str | None) -> None:
        with self._lock:
            was_empty = not self._items
            self._items.append(item)
        if was_empty:
            self._loop.call_soon_threadsafe(self._ready.set)

    async def get(self) -> str | None:
        while True:
            with self._lock:
                if self._items:
                    return self._items.popleft()
                self._ready.clear()
            await self._ready.wait()
