"""The llama-cpp backend, for real, on tiny random-weight GGUF models the tests write themselves.

Their text is gibberish, which is the point: only the grammar makes their tool calls valid.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import llama_cpp
import nbformat
import pytest
from jsonschema import Draft202012Validator

from jupyter_notebook_agent.agent import Agent, AgentConfig
from jupyter_notebook_agent.agent.conversation import Conversation
from jupyter_notebook_agent.agent.tools import TOOLS, parse_call
from jupyter_notebook_agent.llm import ModelError, load_model
from jupyter_notebook_agent.llm.base import ModelTurn, TextDelta, ToolCallDelta
from jupyter_notebook_agent.llm.llama_cpp import LlamaCppModel, LlamaCppOptions
from jupyter_notebook_agent.llm.llama_cpp.grammar import AnswerReader, answer_text
from jupyter_notebook_agent.llm.llama_cpp.model import LOOP_TOKENS, looping
from jupyter_notebook_agent.notebook import NotebookDocument
from jupyter_notebook_agent.testing.tiny_model import write_tiny_gguf

from .conftest import put_in_hub_cache

SYSTEM = {"role": "system", "content": "You write Python notebooks."}


@pytest.fixture
def run(jp_asyncio_loop):
    return jp_asyncio_loop.run_until_complete


def ask(task: str) -> list[dict]:
    return [SYSTEM, {"role": "user", "content": task}]


async def whole_turn(model, messages, tools=TOOLS) -> tuple[ModelTurn, list]:
    deltas = []
    async for item in model.stream(messages, tools):
        if isinstance(item, ModelTurn):
            return item, deltas
        deltas.append(item)
    raise AssertionError("the stream ended without a turn")


def test_it_loads_and_says_where_its_layers_run(tiny_gguf, run):
    model = load_model(f"llama-cpp:{tiny_gguf}", local=LlamaCppOptions(n_ctx=4096))
    assert isinstance(model, LlamaCppModel)
    assert "<|im_start|>" in model.metadata["tokenizer.chat_template"]
    assert model.offload is None  # the weights load with the first turn, off the event loop
    turn, _ = run(whole_turn(model, ask("load data.csv")))
    assert turn.usage.prompt_tokens > 0 and turn.usage.completion_tokens > 0
    offload = model.offload
    assert offload is not None and offload.layers == 3  # two blocks and the output layer
    if llama_cpp.llama_supports_gpu_offload():
        assert offload.on_gpu == offload.layers
    else:
        assert offload.on_gpu == 0 and "cannot offload" in offload.note
    run(model.aclose())


def test_fifty_constrained_tool_calls_are_strict_json_that_fit_their_schema(tiny_gguf, run):
    model = LlamaCppModel(str(tiny_gguf), LlamaCppOptions(n_ctx=8192))  # a new seed each turn
    names = set()
    for number in range(50):
        turn, _ = run(whole_turn(model, ask(f"task number {number}")))
        assert len(turn.tool_calls) == 1, turn
        call = turn.tool_calls[0]
        arguments = json.loads(call.arguments)  # strict: no raw control characters
        parse_call(call.name, call.arguments)  # the tool exists, its arguments fit its schema
        assert isinstance(arguments, dict)
        json.loads(answer_text(turn.content, call.name, call.arguments))
        names.add(call.name)
    assert len(names) >= 3  # the grammar leaves the choice of tool to the model
    run(model.aclose())


def test_a_drawn_token_checked_by_the_grammar_is_the_token_the_grammar_first_would_draw(
    tiny_gguf,
):
    """Greedy, the two ways of sampling under a grammar pick the same tokens: the check draws
    again where the grammar refuses (it did here), and the grammar-first chain never draws one it
    refuses."""
    from llama_cpp import LlamaGrammar

    from jupyter_notebook_agent.llm.llama_cpp.grammar import answer_grammar
    from jupyter_notebook_agent.llm.llama_cpp.sampling import GrammarCheckedLlama

    answers, redrawn = {}, 0
    for kind in (llama_cpp.Llama, GrammarCheckedLlama):
        llama = kind(str(tiny_gguf), n_ctx=2048, seed=5, verbose=False)
        answers[kind] = []
        for number in range(5):
            grammar = LlamaGrammar.from_string(answer_grammar(TOOLS), verbose=False)
            prompt = llama.tokenize(f"task {number}".encode(), add_bos=False, special=True)
            llama.reset()
            tokens = []
            for token in llama.generate(prompt, grammar=grammar, temp=0.0):
                if llama_cpp.llama_vocab_is_eog(llama._model.vocab, token) or len(tokens) >= 300:
                    break
                tokens.append(token)
            answers[kind].append(tokens)
            redrawn += getattr(llama._sampler, "redrawn", 0)
        llama.close()
    assert answers[GrammarCheckedLlama] == answers[llama_cpp.Llama]
    assert sum(map(len, answers[llama_cpp.Llama])) > 500
    assert redrawn > 0  # the check refused tokens, and they were drawn again


def test_schemas_beyond_the_agents_own_are_kept_too(tiny_gguf, run):
    """Integers, numbers, arrays, nested objects, optional members first, all-optional objects."""
    parameters = {
        "type": "object",
        "properties": {
            "label": {"type": "string"},
            "count": {"type": "integer"},
            "weights": {"type": "array", "items": {"type": "number"}},
            "options": {
                "type": "object",
                "properties": {"fast": {"type": "boolean"}, "mode": {"enum": ["a", 1, None]}},
            },
        },
        "required": ["count"],
        "additionalProperties": False,
    }
    tools = [
        {"type": "function", "function": {"name": "fit", "parameters": parameters}},
        {"type": "function", "function": {"name": "noop", "parameters": {"type": "object"}}},
    ]
    validators = {"fit": Draft202012Validator(parameters)}
    model = LlamaCppModel(str(tiny_gguf), LlamaCppOptions(seed=3))
    called = set()
    for number in range(10):
        turn, _ = run(whole_turn(model, ask(f"fit {number}"), tools))
        call = turn.tool_calls[0]
        called.add(call.name)
        arguments = json.loads(call.arguments)
        if call.name == "fit":
            validators["fit"].validate(arguments)
        else:
            assert call.name == "noop" and isinstance(arguments, dict)
    run(model.aclose())
    assert "fit" in called  # the seed is fixed: the schema above was exercised


def test_prose_and_the_call_stream_in_order(tiny_gguf, run):
    model = LlamaCppModel(str(tiny_gguf), LlamaCppOptions(seed=11))
    turn, deltas = run(whole_turn(model, ask("plot a sine")))
    prose = [d.text for d in deltas if isinstance(d, TextDelta)]
    calls = [d for d in deltas if isinstance(d, ToolCallDelta)]
    assert "".join(prose) == turn.content
    assert calls[0].name == turn.tool_calls[0].name and not calls[0].arguments
    assert len(calls) > 2  # the arguments arrive in pieces, not at the end
    assert "".join(d.arguments for d in calls) == turn.tool_calls[0].arguments
    first_call = deltas.index(calls[0])
    assert all(isinstance(d, TextDelta) for d in deltas[:first_call])
    assert turn.ttft_s < turn.duration_s
    run(model.aclose())


def test_the_answer_reader_cuts_nowhere_wrong():
    arguments = '{"cell_type": "code", "source": "d = {\\"a\\": {}}\\n"}'
    answer = answer_text('Plotting {x}: "quoted" \\ done', "add_cell", arguments)
    for size in (1, 2, 3, 7, len(answer)):
        reader = AnswerReader()
        deltas = []
        for start in range(0, len(answer), size):
            deltas += reader.feed(answer[start : start + size])
        deltas += reader.finish()
        assert "".join(d.text for d in deltas if isinstance(d, TextDelta)) == (
            'Plotting {x}: "quoted" \\ done'
        )
        calls = [d for d in deltas if isinstance(d, ToolCallDelta)]
        assert calls[0].name == "add_cell"
        assert "".join(d.arguments for d in calls) == arguments


def test_a_cut_short_answer_hands_over_what_it_has():
    reader = AnswerReader()
    deltas = reader.feed('{"message": "hi", "tool": "execute_code", "arguments": {"code": "{}')
    deltas += reader.finish()
    assert "".join(d.arguments for d in deltas if isinstance(d, ToolCallDelta)) == '{"code": "{}'


def test_the_kv_cache_serves_all_but_what_each_step_appended(tiny_gguf, run):
    model = LlamaCppModel(str(tiny_gguf), LlamaCppOptions(seed=5))
    messages = ask("explore data.csv")
    turn, _ = run(whole_turn(model, messages))
    assert turn.usage.cached_tokens == 0
    for step in range(3):
        previous = turn.usage.prompt_tokens + turn.usage.completion_tokens
        messages += [
            turn.as_message(),
            {"role": "tool", "tool_call_id": "call_0", "content": f'{{"step": {step}}}'},
        ]
        turn, _ = run(whole_turn(model, messages))
        # Everything up to the end of the last answer comes from the cache.
        assert turn.usage.cached_tokens == previous
        # Evaluated: the tool result and the chat template's turn markers around it.
        assert turn.usage.prompt_tokens - turn.usage.cached_tokens < 60
    run(model.aclose())


def test_a_warmed_model_serves_a_runs_first_step_from_its_cache(tiny_gguf, run):
    model = LlamaCppModel(str(tiny_gguf), LlamaCppOptions(seed=5))
    evaluated = model.warm([SYSTEM], TOOLS)
    assert evaluated > 0 and model.warm([SYSTEM], TOOLS) == 1  # the second time: all cached
    turn, _ = run(whole_turn(model, ask("explore data.csv")))
    # All but the request and the template's markers around it.
    assert turn.usage.cached_tokens == evaluated
    assert turn.usage.prompt_tokens - turn.usage.cached_tokens < 40
    run(model.aclose())


async def cancel_after(model, messages, when) -> tuple[float, list]:
    """Cancels a turn once `when(deltas, elapsed)`; seconds from the cancel to its end."""
    deltas: list = []
    started = time.perf_counter()

    async def consume():
        async for item in model.stream(messages, TOOLS):
            deltas.append(item)

    task = asyncio.ensure_future(consume())
    while not when(deltas, time.perf_counter() - started):  # noqa: ASYNC110 (polls the clock too)
        await asyncio.sleep(0.002)
    cancelled = time.perf_counter()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return time.perf_counter() - cancelled, deltas


@pytest.fixture(scope="module")
def slower_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Wider and deeper: its answers take seconds, and so does a long prompt."""
    return write_tiny_gguf(
        tmp_path_factory.mktemp("models") / "slower.gguf", layers=4, embedding=256, feed_forward=768
    )


def test_cancelling_a_turn_stops_llama_cpp_and_the_next_turn_works(slower_gguf, run):
    model = LlamaCppModel(str(slower_gguf), LlamaCppOptions(max_tokens=4000, seed=2))
    took, deltas = run(cancel_after(model, ask("a long task"), lambda d, _: len(d) >= 20))
    assert took < 1  # the whole answer takes seconds; bench/llama_cpp.py measures the cancel
    assert not any(isinstance(d, ModelTurn) for d in deltas)
    model.options.max_tokens = 30
    turn, _ = run(whole_turn(model, ask("the next task")))
    assert turn.usage.completion_tokens == 30
    run(model.aclose())


def test_cancelling_during_a_long_prompt_aborts_its_evaluation(slower_gguf, run):
    model = LlamaCppModel(str(slower_gguf), LlamaCppOptions(n_ctx=8192, max_tokens=50, seed=1))
    long_prompt = ask("describe these numbers: " + " ".join(map(str, range(1000))))
    took, deltas = run(cancel_after(model, long_prompt, lambda _, elapsed: elapsed > 0.1))
    assert deltas == [] and took < 1  # it takes seconds to evaluate on this model
    # Whatever llama.cpp had evaluated before the abort stays consistent: the next turn runs
    # whole, on the cache as far as it matches.
    turn, _ = run(whole_turn(model, ask("then this")))
    assert turn.usage.cached_tokens < turn.usage.prompt_tokens
    assert turn.usage.completion_tokens == 50
    run(model.aclose())


def test_bad_model_files_are_named_with_what_is_wrong(tmp_path, tiny_gguf):
    with pytest.raises(ModelError, match=r"no model file at .*missing\.gguf"):
        load_model(f"llama-cpp:{tmp_path / 'missing.gguf'}")
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(tiny_gguf.read_bytes()[:300_000])
    with pytest.raises(ModelError, match=r"truncated or damaged \(300000 bytes"):
        load_model(f"llama-cpp:{truncated}")
    text = tmp_path / "notes.gguf"
    text.write_text("not a model")
    with pytest.raises(ModelError, match="is not a GGUF model file"):
        load_model(f"llama-cpp:{text}")
    with pytest.raises(ModelError, match="not downloaded yet: run `jupyter-notebook-agent model"):
        load_model("llama-cpp:hf:someone/models/absent.gguf")
    with pytest.raises(ModelError, match=r"is not hf:OWNER/REPO/FILE\.gguf"):
        load_model("llama-cpp:hf:no-file-here")


def test_a_hub_model_comes_from_the_cache(hf_cache, tiny_gguf, run):
    cached = put_in_hub_cache(hf_cache, "tests/tiny-GGUF", "q8/tiny.gguf", tiny_gguf)
    model = load_model("llama-cpp:hf:tests/tiny-GGUF/q8/tiny.gguf")
    assert model.path == cached
    turn, _ = run(whole_turn(model, ask("hello")))
    assert turn.tool_calls
    run(model.aclose())


def test_an_agent_run_ends_at_its_step_limit_with_a_valid_notebook(tmp_path, tiny_gguf, run_cli):
    out = tmp_path / "tiny.ipynb"
    result = run_cli(
        "run", "Load data.csv and plot it", "-o", out, "--model", f"llama-cpp:{tiny_gguf}",
        "--max-steps", "3", "--seed", "9",
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "limit of 3 steps" in result.stdout
    notebook = nbformat.read(out, as_version=4)
    nbformat.validate(notebook)
    (record,) = notebook.metadata["notebook_agent"]["runs"]
    assert len(record.pop("run_id")) == 32
    assert record == {
        "task": "Load data.csv and plot it",
        "model": str(tiny_gguf),
        "state": "finished",
        "success": False,
        "reason": "max_steps",
    }
    transcript = [json.loads(line) for line in out.with_suffix(".transcript.jsonl").open()]
    assert sum(1 for entry in transcript if entry["type"] == "model_turn") == 3


def test_doctor_says_what_the_machine_offers(run_cli):
    result = run_cli("doctor")
    assert result.returncode == 0, result.stderr
    lines = {line.split(":")[0].split("  ")[-1]: line for line in result.stdout.splitlines()}
    for topic in ("python", "docker", "sandbox image", "openai backend", "llama-cpp", "gpu"):
        assert topic in lines, result.stdout
    assert lines["llama-cpp"].startswith("ok") and llama_cpp.__version__ in lines["llama-cpp"]
    assert "layers on" in lines["offload"]  # it loaded a probe model
    assert "sk-test" not in result.stdout  # the key's presence is said, never the key


def test_with_no_model_configured_the_cli_offers_the_local_default(
    tmp_path, hf_cache, tiny_gguf, run_cli
):
    unconfigured = {"OPENAI_API_KEY": "", "NOTEBOOK_AGENT_LOCAL_MODEL": "hf:tests/cli-GGUF/m.gguf"}
    out = tmp_path / "default.ipynb"
    # Not downloaded, and no terminal to ask on: nothing downloads; it says what to do.
    refused = run_cli("run", "task", "-o", out, env=unconfigured)
    assert refused.returncode == 2
    assert "no model is configured" in refused.stderr
    assert "jupyter-notebook-agent model download" in refused.stderr
    missing = run_cli("model", "download", env=unconfigured)
    assert missing.returncode == 1
    assert "could not download hf:tests/cli-GGUF/m.gguf" in missing.stderr
    # Once in the cache, it is used.
    cached = put_in_hub_cache(hf_cache, "tests/cli-GGUF", "m.gguf", tiny_gguf)
    assert run_cli("model", "download", env=unconfigured).stdout.strip() == str(cached)
    result = run_cli("run", "task", "-o", out, "--max-steps", "1", "--seed", "1", env=unconfigured)
    assert "using the local model hf:tests/cli-GGUF/m.gguf" in result.stdout, result.stderr
    runs = nbformat.read(out, as_version=4).metadata["notebook_agent"]["runs"]
    assert runs[0]["model"] == "hf:tests/cli-GGUF/m.gguf"


def test_a_long_conversation_stays_within_a_local_models_context(tiny_gguf, kernel, run):
    """Each follow-up continues the notebook's thread: past the model's context it would fail,
    so the oldest requests are left out first, by the model's own count of tokens (its
    byte-level vocabulary takes a token for nearly every character)."""
    model = load_model(f"llama-cpp:{tiny_gguf}", local=LlamaCppOptions(n_ctx=6144, seed=1))
    conversation = Conversation()
    outcomes = []
    for number in range(12):
        agent = Agent(
            model,
            kernel,
            NotebookDocument(),
            config=AgentConfig(max_steps=2),
            conversation=conversation,
        )
        outcomes.append(run(agent.run(f"request {number}: load data.csv and plot it")))
    run(model.aclose())
    failed = [o.summary for o in outcomes if o.reason in ("model_error", "context_budget")]
    assert failed == []
    assert conversation.dropped > 0
    assert conversation.requests[-1].prompt.startswith("request 11")


def test_an_answer_stuck_in_a_loop_is_cut_off_there(tmp_path, run):
    """Greedy, this random model writes one character over and over (its message would go on to
    the grammar's bound, 300 characters, and then into the call); the backend stops it once the
    same short cycle has filled the answer's last LOOP_TOKENS tokens."""
    looping_model = write_tiny_gguf(tmp_path / "looping.gguf", seed=1)
    options = LlamaCppOptions(n_ctx=4096, max_tokens=2000, temperature=0.0)
    model = LlamaCppModel(str(looping_model), options)
    turn, _ = run(whole_turn(model, ask("task 1")))
    assert LOOP_TOKENS <= turn.usage.completion_tokens < 2 * LOOP_TOKENS
    assert turn.content.endswith("|" * (LOOP_TOKENS // 2)) and not turn.tool_calls
    assert turn.cut_short == "it repeated the same few words over and over"
    run(model.aclose())


def test_an_answer_past_its_token_limit_says_so(tiny_gguf, run):
    model = LlamaCppModel(str(tiny_gguf), LlamaCppOptions(n_ctx=4096, max_tokens=30))
    turn, _ = run(whole_turn(model, ask("task 1")))
    assert turn.usage.completion_tokens == 30
    assert turn.cut_short == "it reached the limit of 30 tokens for one answer"
    run(model.aclose())


@pytest.mark.parametrize(
    "text, stuck",
    [
        ("$" + "0" * 200, True),
        ("print(1)\n" * 40, True),
        ("ab" * 30, False),  # too short to tell
        ("".join(f"x{n} = {n * n}\n" for n in range(60)), False),
    ],
)
def test_a_loop_is_a_short_cycle_over_and_over(text, stuck):
    assert looping([ord(character) for character in text]) == stuck
