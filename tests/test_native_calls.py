"""A model's own tool-call format, learned from its chat template, used for real by llama.cpp on a
tiny random-weight GGUF: the grammar holds its gibberish to the format, so every call it writes
must read back as a valid call.

The two templates here are written for these tests in the two styles that tool-tuned models'
templates follow: calls in tags after an optional message (as Qwen 2.5/3), and a bare JSON call
with "parameters" and no message (as Llama 3.x).
"""

from __future__ import annotations

import json
import logging

import pytest

from jupyter_notebook_agent.agent.tools import TOOLS, parse_call
from jupyter_notebook_agent.llm.base import ModelTurn, TextDelta, ToolCallDelta
from jupyter_notebook_agent.llm.llama_cpp import LlamaCppModel, LlamaCppOptions
from jupyter_notebook_agent.llm.llama_cpp.chat_template import chat_template
from jupyter_notebook_agent.llm.llama_cpp.native_calls import NativeCalls, NativeReader
from jupyter_notebook_agent.testing.tiny_model import CHATML_TEMPLATE, write_tiny_gguf

TAGGED = (
    "{% for m in messages %}"
    "{% if m.role == 'system' %}"
    "{{ '<|im_start|>system\n' + m.content }}"
    "{% if tools %}{{ '\n\nTools, called as <tool_call>JSON</tool_call>:\n<tools>' }}"
    "{% for t in tools %}{{ '\n' + (t | tojson) }}{% endfor %}{{ '\n</tools>' }}{% endif %}"
    "{{ '<|im_end|>\n' }}"
    "{% elif m.role == 'assistant' %}"
    "{{ '<|im_start|>assistant' }}{% if m.content %}{{ '\n' + m.content }}{% endif %}"
    "{% for c in m.tool_calls or [] %}"
    '{{ \'\n<tool_call>\n{"name": "\' + c.function.name + \'", "arguments": \' }}'
    "{{ c.function.arguments | tojson }}{{ '}\n</tool_call>' }}"
    "{% endfor %}{{ '<|im_end|>\n' }}"
    "{% elif m.role == 'tool' %}"
    "{{ '<|im_start|>user\n<tool_response>\n' + m.content + '\n</tool_response><|im_end|>\n' }}"
    "{% else %}{{ '<|im_start|>' + m.role + '\n' + m.content + '<|im_end|>\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
BARE_JSON = (
    "{% for m in messages %}"
    "{% if m.role == 'user' and loop.index0 == 1 and tools %}"
    "{{ '<|im_start|>user\nYou may call one of these functions:\n' }}"
    "{% for t in tools %}{{ (t | tojson(indent=2)) + '\n' }}{% endfor %}"
    "{{ m.content + '<|im_end|>\n' }}"
    "{% elif m.role == 'assistant' and m.tool_calls %}"
    "{% set c = m.tool_calls[0].function %}"
    '{{ \'<|im_start|>assistant\n{"name": "\' + c.name + \'", "parameters": \' }}'
    "{{ c.arguments | tojson }}{{ '}<|im_end|>\n' }}"
    "{% elif m.role == 'tool' %}{{ '<|im_start|>ipython\n' + m.content + '<|im_end|>\n' }}"
    "{% else %}{{ '<|im_start|>' + m.role + '\n' + m.content + '<|im_end|>\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CALL_ALONE = BARE_JSON.replace(
    "{% elif m.role == 'assistant' and m.tool_calls %}",
    "{% elif m.role == 'assistant' and m.tool_calls %}"
    "{% if m.content %}{{ raise_exception('a call comes alone') }}{% endif %}",
)
REFUSES_CALLS = CHATML_TEMPLATE.replace(
    "{% for message in messages %}",
    "{% for message in messages %}"
    "{% if message.tool_calls %}{{ raise_exception('no tool calls here') }}{% endif %}"
    "{% if tools %}{{ tools | length }} tools{% endif %}",
)


def template(jinja: str):
    metadata = {"general.architecture": "llama", "tokenizer.chat_template": jinja}
    return chat_template(metadata, bos="<s>", eos="</s>", add_bos=False)


def test_a_tagged_format_is_learned_with_the_message_before_its_call():
    assert template(TAGGED).calls == NativeCalls(
        before='<tool_call>\n{"name": "',
        between='", "arguments": ',
        after="}\n</tool_call>",
        gap="\n",
    )


def test_a_bare_json_format_is_learned_with_no_message():
    assert template(BARE_JSON).calls == NativeCalls(
        before='{"name": "', between='", "parameters": ', after="}", gap=None
    )


def test_a_template_that_refuses_a_message_beside_a_call_has_calls_alone():
    assert template(CALL_ALONE).calls == NativeCalls(
        before='{"name": "', between='", "parameters": ', after="}", gap=None
    )


@pytest.mark.parametrize("jinja", [CHATML_TEMPLATE, REFUSES_CALLS], ids=["ignores", "refuses"])
def test_a_template_that_ignores_or_refuses_tools_has_no_format(jinja):
    assert template(jinja).calls is None


def read(calls: NativeCalls, answer: str, cut: bool = False) -> tuple[str, str, str]:
    """Feeds `answer` a character at a time: the message, the call's name and its arguments."""
    reader = NativeReader(calls)
    deltas = [delta for character in answer for delta in reader.feed(character)]
    deltas += reader.finish()
    message = "".join(d.text for d in deltas if isinstance(d, TextDelta))
    calls_seen = [d for d in deltas if isinstance(d, ToolCallDelta)]
    names = [d.name for d in calls_seen if d.name]
    assert len(names) == 1, names
    return message, names[0], "".join(d.arguments for d in calls_seen)


def test_an_answer_streams_as_its_message_then_its_call():
    calls = template(TAGGED).calls
    arguments = '{"cell_type": "code", "source": "x = \\"<tool_call>\\"\\nprint(x)"}'
    bare = f'<tool_call>\n{{"name": "add_cell", "arguments": {arguments}}}\n</tool_call>'
    assert read(calls, f"I count them.\n{bare}") == ("I count them.", "add_cell", arguments)
    assert read(calls, bare) == ("", "add_cell", arguments)
    cut = f'<tool_call>\n{{"name": "add_cell", "arguments": {arguments[:20]}'
    assert read(calls, cut) == ("", "add_cell", arguments[:20])  # incomplete: the agent says so


def test_a_message_that_only_looks_like_the_calls_opening_is_shown_whole():
    calls = template(TAGGED).calls
    answer = 'a < b\n<tool_call>\n{"name": "finish", "arguments": {"summary": "ok"}}\n</tool_call>'
    assert read(calls, answer) == ("a < b", "finish", '{"summary": "ok"}')


def test_a_bare_json_answer_is_its_call_alone():
    calls = template(BARE_JSON).calls
    answer = '{"name": "finish", "parameters": {"summary": "ok"}}'
    assert read(calls, answer) == ("", "finish", '{"summary": "ok"}')
    nested = '{"name": "edit_cell", "parameters": {"cell_id": "a", "source": {"x": 1}}'
    assert read(calls, nested)[2] == '{"cell_id": "a", "source": {"x": 1}}'  # cut short: all kept


@pytest.fixture
def run(jp_asyncio_loop):
    return jp_asyncio_loop.run_until_complete


async def whole_turn(model, messages) -> ModelTurn:
    async for item in model.stream(messages, TOOLS):
        if isinstance(item, ModelTurn):
            return item
    raise AssertionError("the stream ended without a turn")


@pytest.mark.parametrize("jinja", [TAGGED, BARE_JSON], ids=["tagged", "bare-json"])
def test_a_models_own_format_gives_valid_calls_and_the_next_prompt_goes_on_from_the_answer(
    jinja, tmp_path, run, caplog
):
    """Gibberish weights, held to the format by the grammar: each call is a real tool with
    arguments that fit its schema, the template writes it back into the history exactly as the
    model wrote it (so the KV cache serves it), and the tools appear only as the template
    describes them (no JSON envelope instructions)."""
    path = write_tiny_gguf(tmp_path / "tool-tuned.gguf", chat_template=jinja)
    model = LlamaCppModel(str(path), LlamaCppOptions(n_ctx=8192, seed=3))
    messages = [
        {"role": "system", "content": "You write Python notebooks."},
        {"role": "user", "content": "load data.csv"},
    ]
    with caplog.at_level(logging.INFO):
        for step in range(4):
            turn = run(whole_turn(model, messages))
            assert len(turn.tool_calls) == 1, turn
            call = turn.tool_calls[0]
            parse_call(call.name, call.arguments)  # a real tool, arguments that fit its schema
            assert isinstance(json.loads(call.arguments), dict)
            if jinja == BARE_JSON:
                assert turn.content == ""
            written = model._last.text  # the prompt and the answer as the model wrote them
            messages += [
                {
                    "role": "assistant",
                    "content": turn.content,
                    "tool_calls": [
                        {
                            "id": call.id,
                            "type": "function",
                            "function": {"name": call.name, "arguments": call.arguments},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": call.id, "content": f"result {step}"},
            ]
            prompt, _ = model._prompt(model._llama, messages, TOOLS)
            assert prompt.startswith(written)
            assert "How to answer" not in prompt and '"name": "add_cell"' in prompt
    assert "tool calls in its own format" in caplog.text
    run(model.aclose())


def test_json_calls_can_be_asked_for_instead(tmp_path, run, caplog):
    path = write_tiny_gguf(tmp_path / "tool-tuned.gguf", chat_template=TAGGED)
    model = LlamaCppModel(str(path), LlamaCppOptions(n_ctx=8192, tool_calls="json"))
    messages = [
        {"role": "system", "content": "You write Python notebooks."},
        {"role": "user", "content": "load data.csv"},
    ]
    with caplog.at_level(logging.INFO):
        turn = run(whole_turn(model, messages))
    parse_call(turn.tool_calls[0].name, turn.tool_calls[0].arguments)
    assert model.native_calls is None and "tool calls in JSON" in caplog.text
    assert model._last.text.count('{"message": ') == 2  # the example's, and the answer's own
    run(model.aclose())
