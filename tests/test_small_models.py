"""What small local models get wrong in their calls, and what they are told instead.

A real Gemma 3 270M, asked to total a column, copied the tool descriptions' placeholders
(`"source": "string"`, `"after_cell_id": "string"`) four steps in a row, under ChatML, which it was
never tuned on. These tests hold each remedy: the prompt offers nothing to copy but one real
example, placeholder arguments and missing cells are explained with what to do, a call repeated
word for word is not carried out twice, and a GGUF without a template gets its architecture's.
"""

from __future__ import annotations

import json
import logging
import re

import pytest

from jupyter_notebook_agent.agent import Agent, EventLog
from jupyter_notebook_agent.agent.tools import TOOLS, FormatError, is_placeholder, parse_call
from jupyter_notebook_agent.llm.llama_cpp import LlamaCppModel, LlamaCppOptions
from jupyter_notebook_agent.llm.llama_cpp.chat_template import (
    BUILTIN_BY_ARCHITECTURE,
    FALLBACK,
    chat_template,
)
from jupyter_notebook_agent.llm.llama_cpp.grammar import (
    EXAMPLE,
    MESSAGE_CHARS,
    answer_grammar,
    answer_instructions,
)
from jupyter_notebook_agent.llm.replay import ReplayModel
from jupyter_notebook_agent.notebook import NotebookDocument
from jupyter_notebook_agent.testing.tiny_model import write_tiny_gguf

from .conftest import add_cell_turn, complete, tool, turn
from .test_agent_faults import run_agent, tool_results

GEMMA_ANSWER = {"cell_type": "code", "source": "string", "after_cell_id": "string"}
"""The arguments Gemma 3 270M wrote, four steps in a row, from the old tool descriptions."""


def test_the_instructions_offer_no_placeholder_and_one_real_example():
    instructions = answer_instructions(TOOLS)
    named = {"message", "tool", "arguments"}  # the answer's own keys, and the tools' names
    for function in (t["function"] for t in TOOLS):
        named |= {function["name"], *function["parameters"]["properties"]}
        named |= {
            v for p in function["parameters"]["properties"].values() for v in p.get("enum", [])
        }
    quoted = set(re.findall(r'"((?:[^"\\]|\\.)*)"', instructions)) - named
    copied = [w for w in quoted for key in ("source", "summary") if is_placeholder(key, w, {})]
    assert quoted and not copied
    for placeholder in ("(may be empty)", "the tool to call", "{the tool's", ": string"):
        assert placeholder not in instructions
    examples = [line for line in instructions.splitlines() if line.startswith("{")]
    assert len(examples) == 1
    example = json.loads(examples[0])
    request, message, name, arguments = EXAMPLE
    assert (example["message"], example["tool"], example["arguments"]) == (message, name, arguments)
    parse_call(example["tool"], json.dumps(example["arguments"]))  # a real call, accepted
    assert request in instructions
    # Optional arguments are described in words, never shown in a signature to be filled in.
    add_cell = next(line for line in instructions.splitlines() if line.startswith("- add_cell"))
    assert add_cell.startswith("- add_cell(cell_type, source): ")
    assert "Optionally after_cell_id: " in add_cell


def test_a_message_is_bounded_by_the_grammar():
    assert f'message ::= "\\"" char{{0,{MESSAGE_CHARS}}} "\\""' in answer_grammar(TOOLS)


@pytest.mark.parametrize(
    "name, arguments, named, advice",
    [
        ("add_cell", GEMMA_ANSWER, "source", "write the cell's actual Python code"),
        ("add_cell", {"cell_type": "code", "source": "<code>"}, "source", "actual Python code"),
        ("add_cell", {"cell_type": "code", "source": "{source}"}, "source", "actual Python code"),
        ("execute_code", {"code": "The Python code to run."}, "code", "actual Python code"),
        ("complete_task", {"success": True, "summary": "..."}, "summary", "a sentence or two"),
    ],
)
def test_a_placeholder_argument_is_refused_with_what_to_write(name, arguments, named, advice):
    with pytest.raises(FormatError) as refusal:
        parse_call(name, json.dumps(arguments))
    assert f"the {named} of {name} is " in str(refusal.value)
    assert "only stands for a value" in str(refusal.value) and advice in str(refusal.value)


@pytest.mark.parametrize(
    "arguments",
    [
        {"cell_type": "code", "source": "print(df['amount'].sum())"},
        {"cell_type": "markdown", "source": "## Totals"},
        {"cell_type": "code", "source": "[1]"},
        {"cell_type": "code", "source": "[x.shape for x in frames]"},
        {"cell_type": "code", "source": "text = 'string'"},
        {"cell_type": "markdown", "source": "Code"},
        {"cell_type": "markdown", "source": "TODO"},
        {"cell_type": "markdown", "source": "[see notes below]"},
    ],
)
def test_real_arguments_and_named_choices_pass(arguments):
    assert parse_call("add_cell", json.dumps(arguments)).arguments == arguments


@pytest.mark.parametrize(
    "name, arguments",
    [
        ("inspect_variable", {"name": "text"}),
        ("inspect_variable", {"name": "value"}),
        ("execute_code", {"code": "value"}),
        ("execute_code", {"code": "[df.columns]"}),
        ("complete_task", {"success": True, "summary": "Done"}),
    ],
)
def test_a_value_that_is_a_word_is_no_placeholder_where_words_are_values(name, arguments):
    assert parse_call(name, json.dumps(arguments)).arguments == arguments


async def test_the_copied_placeholders_are_explained_and_the_model_recovers(
    kernel, write_recording
):
    recording = write_recording(
        turn(tool("add_cell", GEMMA_ANSWER)), add_cell_turn("17 * 23"), complete()
    )
    agent, notebook, outcome, _ = await run_agent(kernel, recording)
    refused, ran, _ = tool_results(agent)
    assert refused["status"] == "error" and "actual Python code" in refused["error"]
    assert ran["outputs"] == [{"type": "result", "text": "391"}]
    assert outcome.success and [c.source for c in notebook.nb.cells] == ["17 * 23"]


async def test_a_missing_cell_is_explained_with_the_ids_that_exist(kernel, write_recording):
    recording = write_recording(
        turn(tool("add_cell", {"cell_type": "code", "source": "1", "after_cell_id": "agent-7"})),
        add_cell_turn("2"),
        turn(tool("edit_cell", {"cell_id": "agent-9", "source": "3"})),
        complete(),
    )
    agent, notebook, _, _ = await run_agent(kernel, recording)
    misplaced, _, misnamed, _ = tool_results(agent)
    # The half-streamed cell of the refused call is gone, and not offered as an id.
    assert misplaced["error"] == (
        "no cell has id 'agent-7'. Leave after_cell_id out to add the cell at the end, or give "
        "one of the notebook's cell ids. The notebook's cell ids: none yet."
    )
    assert misnamed["error"].endswith(
        "or call add_cell to write a new cell. The notebook's cell ids: agent-1."
    )
    assert [c.source for c in notebook.nb.cells] == ["2"]


async def test_the_same_call_in_two_turns_in_a_row_is_not_carried_out_again(
    kernel, write_recording
):
    recording = write_recording(
        add_cell_turn("print('once')"),
        add_cell_turn("print('once')"),
        turn(tool("execute_code", {"code": "print('again')"})),
        turn(tool("execute_code", {"code": "print('again')"})),
        add_cell_turn("print('once')"),
        complete(),
    )
    agent, notebook, outcome, _ = await run_agent(kernel, recording)
    results = tool_results(agent)
    assert [r["status"] for r in results[:5]] == ["ok", "not_run", "ok", "not_run", "ok"]
    assert "You made this same call just before" in results[1]["note"]
    # Not in a row: the third add_cell is carried out.
    assert [c.source for c in notebook.nb.cells] == ["print('once')", "print('once')"]
    assert outcome.success


async def test_a_call_made_again_after_something_changed_is_carried_out(kernel, write_recording):
    """Twice in one turn, after another call, and after the person acted: each is carried out."""
    again = tool("execute_code", {"code": "print('again')"})
    recording = write_recording(
        turn(again, again),
        turn(tool("execute_code", {"code": "x = 1"})),
        turn(again),
        turn(again),  # the person acted before this turn
        complete(),
    )
    notebook, events = NotebookDocument(), EventLog()
    agent = Agent(ReplayModel(recording), kernel, notebook, events=events)

    def person_acts(event: dict) -> None:
        if event["type"] == "step" and event["step"] == 4:
            agent.review.notes.append("The person looked at the notebook.")

    events.subscribe(person_acts)
    assert (await agent.run("test task")).success
    assert [r["status"] for r in tool_results(agent)] == ["ok"] * 6


@pytest.mark.parametrize(
    "metadata, name, begins, turn_marker",
    [
        ({"general.architecture": "gemma3", "tokenizer.ggml.add_bos_token": True}, "gemma",
         "<bos><start_of_turn>user\n", "<start_of_turn>model\n"),
        ({"general.architecture": "llama", "tokenizer.ggml.pre": "llama-bpe",
          "tokenizer.ggml.add_bos_token": True}, "llama3", "<bos><|start_header_id|>system",
         "<|start_header_id|>assistant<|end_header_id|>\n\n"),
        ({"general.architecture": "qwen2"}, "chatml", "<|im_start|>system\n",
         "<|im_start|>assistant\n"),
        ({"general.architecture": "phi3"}, "phi3", "<|system|>\n", "<|assistant|>\n"),
        ({"general.architecture": "mamba"}, "chatml", "<bos><|im_start|>system\n",
         "<|im_start|>assistant\n"),
    ],
)  # fmt: skip
def test_a_gguf_without_a_template_gets_its_architectures(metadata, name, begins, turn_marker):
    template = chat_template(metadata, bos="<bos>", eos="<eos>", add_bos=begins.startswith("<bos>"))
    assert template.name == name
    chat = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Sum 2 and 3."},
    ]
    prompt = template.format(chat, True)
    assert prompt.startswith(begins) and prompt.endswith(turn_marker)
    assert "Be brief." in prompt and "Sum 2 and 3." in prompt
    assert not template.format(chat, False).endswith(turn_marker)
    said = template.describe()
    assert f"llama.cpp's {name!r} chat template" in said
    known = metadata["general.architecture"] != "mamba"
    assert ("by its architecture" in said) == known


@pytest.mark.parametrize("name", sorted({*BUILTIN_BY_ARCHITECTURE.values(), FALLBACK}))
def test_each_built_in_template_keeps_a_prompt_and_its_answer_as_the_next_prompts_start(name):
    """What llama.cpp's KV cache serves: a step's prompt begins with the last prompt and answer."""
    template = chat_template({"general.architecture": _architecture(name)}, "<s>", "</s>", True)
    assert template.name == name
    chat = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Sum 2 and 3."},
    ]
    answer = '{"message": "", "tool": "add_cell"}'
    went_on = [*chat, {"role": "assistant", "content": answer}, {"role": "user", "content": "5"}]
    assert template.format(went_on, True).startswith(template.format(chat, True) + answer)


def _architecture(name: str) -> str:
    return next((a for a, n in BUILTIN_BY_ARCHITECTURE.items() if n == name), "unknown")


def test_a_gguf_with_its_own_template_keeps_it():
    metadata = {"general.architecture": "gemma3", "tokenizer.chat_template": "{{ 'own' }}"}
    template = chat_template(metadata, bos="<bos>", eos="<eos>", add_bos=True)
    assert template.name == "gguf" and template.format([], True) == "own"


def test_the_model_says_which_template_it_chose(tmp_path, run, caplog):
    path = write_tiny_gguf(tmp_path / "untemplated.gguf", chat_template=None)
    model = LlamaCppModel(str(path), LlamaCppOptions(n_ctx=2048, max_tokens=8))
    with caplog.at_level(logging.WARNING):
        model.warm([{"role": "system", "content": "Be brief."}], TOOLS)
    assert model.template is not None and model.template.name == "chatml"
    assert "untemplated.gguf has no chat template: using llama.cpp's 'chatml'" in caplog.text
    run(model.aclose())


@pytest.fixture
def run(jp_asyncio_loop):
    return jp_asyncio_loop.run_until_complete
