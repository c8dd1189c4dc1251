"""The loop under bad input and faults: the model is told what went wrong, the run goes on."""

from __future__ import annotations

import json
import time

import pytest

from jupyter_notebook_agent.agent import Agent, AgentConfig, EventLog
from jupyter_notebook_agent.agent.execution import OUTPUT_STREAM_BUDGET_BYTES
from jupyter_notebook_agent.llm.openai_compat import OpenAIModel
from jupyter_notebook_agent.llm.replay import ReplayModel
from jupyter_notebook_agent.notebook import NotebookDocument
from jupyter_notebook_agent.notebook.outputs import OutputLimits

from .conftest import add_cell_turn, complete, tool, turn


async def run_agent(kernel, recording, **config):
    notebook = NotebookDocument()
    events = EventLog()
    agent = Agent(
        ReplayModel(recording), kernel, notebook, config=AgentConfig(**config), events=events
    )
    outcome = await agent.run("test task")
    return agent, notebook, outcome, events


def tool_results(agent) -> list[dict]:
    return [json.loads(m["content"]) for m in agent.messages if m["role"] == "tool"]


async def test_an_answer_cut_off_by_the_endpoint_is_explained_as_such(
    kernel, write_recording, replay_server
):
    """The real openai client reads an answer the endpoint stopped at its token limit: the model
    is told its answer was cut off and why, not only that its JSON is broken."""
    cut = turn(tool("add_cell", '{"cell_type": "code", "source": "x = [1, 2,'))
    cut.cut_short = "the endpoint stopped it"  # any reason: the endpoint sends "length"
    recording = write_recording(cut, add_cell_turn("1+1"), complete())
    with replay_server(recording) as server:
        model = OpenAIModel("test-model", base_url=server.base_url, api_key="sk-test")
        agent = Agent(model, kernel, NotebookDocument(), events=EventLog())
        outcome = await agent.run("test task")
    first = tool_results(agent)[0]
    assert first["error"].startswith(
        "your answer was cut off (it reached the endpoint's limit of tokens for one answer), "
        "so the arguments of add_cell are not valid JSON"
    )
    assert outcome.success


async def test_an_answer_cut_off_before_its_call_is_explained_as_such(kernel, write_recording):
    looping = turn(content="$1000000" * 40)
    looping.cut_short = "it repeated the same few words over and over"
    recording = write_recording(looping, add_cell_turn("1+1"), complete())
    agent, _, outcome, _ = await run_agent(kernel, recording)
    told = [m["content"] for m in agent.messages if m["role"] == "user"][-1]
    assert told.startswith(
        "your answer was cut off (it repeated the same few words over and over) before it "
        "called a tool"
    )
    assert outcome.success


async def test_malformed_json_is_explained_and_the_model_retries(kernel, write_recording):
    recording = write_recording(
        turn(tool("add_cell", '{"cell_type": "code", "source": "1+1"')),
        add_cell_turn("1+1"),
        complete(),
    )
    agent, notebook, outcome, _ = await run_agent(kernel, recording)
    assert outcome.success
    first, second, _ = tool_results(agent)
    assert first["status"] == "error"
    assert "not valid JSON" in first["error"] and "add_cell" in first["error"]
    assert second["cell_id"] == "agent-1"
    assert second["outputs"] == [{"type": "result", "text": "2"}]
    assert [c.id for c in notebook.nb.cells] == ["agent-1"]


async def test_unknown_tool_is_named_with_the_tools_there_are(kernel, write_recording):
    recording = write_recording(turn(tool("run_shell", {"cmd": "ls"})), complete())
    agent, _, outcome, _ = await run_agent(kernel, recording)
    assert outcome.success
    error = tool_results(agent)[0]["error"]
    assert "no tool named 'run_shell'" in error
    assert (
        "add_cell, edit_cell, execute_code, inspect_variable, restart_kernel, complete_task"
        in error
    )


async def test_missing_and_mistyped_arguments_are_named(kernel, write_recording):
    recording = write_recording(
        turn(tool("add_cell", {"cell_type": "code"})),
        turn(tool("add_cell", {"cell_type": "python", "source": "1"})),
        complete(),
    )
    agent, notebook, outcome, _ = await run_agent(kernel, recording)
    assert outcome.success
    missing, mistyped, _ = tool_results(agent)
    assert "'source' is a required property" in missing["error"]
    assert "cell_type: 'python' is not one of ['code', 'markdown']" in mistyped["error"]
    assert notebook.nb.cells == []


async def test_three_unusable_answers_in_a_row_fail_the_run(kernel, write_recording):
    recording = write_recording(
        turn(tool("add_cell", "{not json")),
        turn(content="I think I am done."),  # prose without a tool call counts too
        turn(tool("nope", {})),
        complete(),
    )
    agent, _, outcome, events = await run_agent(kernel, recording)
    assert not outcome.success
    assert outcome.reason == "format_errors"
    assert "3 unusable model answers in a row" in outcome.summary
    assert "no tool named 'nope'" in outcome.summary
    assert agent.messages[5] == {
        "role": "user",
        "content": "you answered without calling a tool. Call a tool again, correctly.",
    }
    assert events.events[-1]["type"] == "run_finished"


async def test_a_good_call_resets_the_count_of_format_errors(kernel, write_recording):
    bad = turn(tool("add_cell", "{"))
    recording = write_recording(bad, bad, add_cell_turn("1"), bad, bad, complete())
    _, _, outcome, _ = await run_agent(kernel, recording)
    assert outcome.success


async def test_hanging_code_is_interrupted_and_the_run_goes_on(kernel, write_recording):
    recording = write_recording(
        add_cell_turn("import time\nx = 41\ntime.sleep(60)"),
        add_cell_turn("x + 1"),
        complete(),
    )
    started = time.monotonic()
    agent, notebook, outcome, _ = await run_agent(kernel, recording, execution_timeout_s=1)
    assert time.monotonic() - started < 20
    assert outcome.success
    hung, after = tool_results(agent)[:2]
    assert hung["status"] == "timeout"
    assert "exceeded 1 s and was interrupted; state is kept" in hung["note"]
    assert hung["outputs"][-1]["ename"] == "KeyboardInterrupt"
    assert after["outputs"] == [{"type": "result", "text": "42"}]  # the kernel kept its state
    assert notebook.nb.cells[0].outputs[-1].ename == "KeyboardInterrupt"


async def test_code_that_ignores_the_interrupt_gets_the_kernel_restarted(kernel, write_recording):
    kernel.interrupt_grace_s = 1
    recording = write_recording(
        add_cell_turn(
            "import signal, time\nx = 1\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
            "time.sleep(60)"
        ),
        add_cell_turn("print('x' in globals())"),
        complete(),
    )
    agent, _, outcome, events = await run_agent(kernel, recording, execution_timeout_s=1)
    assert outcome.success
    hung, after = tool_results(agent)[:2]
    assert hung["status"] == "timeout"
    assert "did not answer the interrupt: it was restarted" in hung["note"]
    assert after["status"] == "ok" and after["outputs"] == [{"type": "stdout", "text": "False\n"}]
    assert kernel.restarts == 1
    assert any(e["type"] == "error" and "restarted" in e["message"] for e in events.events)


async def test_a_kernel_that_dies_is_reported_and_restarted(kernel, write_recording):
    recording = write_recording(
        add_cell_turn("import os\nos._exit(3)"),
        add_cell_turn("print('alive')"),
        complete(),
    )
    agent, _, outcome, events = await run_agent(kernel, recording)
    assert outcome.success
    died, after = tool_results(agent)[:2]
    assert died["status"] == "died"
    assert died["note"] == (
        "the kernel died (exit code 3) and was restarted: all variables and imports are gone"
    )
    assert after["outputs"] == [{"type": "stdout", "text": "alive\n"}]
    assert [e["message"] for e in events.events if e["type"] == "error"] == [died["note"]]


async def test_editing_a_cell_that_does_not_exist_lists_the_ones_that_do(kernel, write_recording):
    recording = write_recording(
        add_cell_turn("1"),
        turn(tool("edit_cell", {"cell_id": "agent-9", "source": "2"})),
        complete(),
    )
    agent, _, outcome, _ = await run_agent(kernel, recording)
    assert outcome.success
    assert tool_results(agent)[1] == {
        "status": "error",
        "error": "no cell has id 'agent-9'. Give the cell_id that add_cell's result named for "
        "the cell you want to change, or call add_cell to write a new cell. The notebook's cell "
        "ids: agent-1.",
    }


async def test_long_output_is_cut_head_and_tail(kernel, write_recording):
    recording = write_recording(
        turn(tool("execute_code", {"code": "print('a' * 50000 + 'END')"})), complete()
    )
    agent, notebook, _, _ = await run_agent(kernel, recording, output_chars=1000)
    text = tool_results(agent)[0]["outputs"][0]["text"]
    assert len(text) < 1100
    assert text.startswith("aaa") and text.endswith("END\n")
    assert "characters cut" in text
    assert notebook.nb.cells == []  # scratch execution adds no cell


async def test_the_context_budget_ends_the_run(kernel, write_recording):
    recording = write_recording(*[add_cell_turn(f"print({i})") for i in range(10)], complete())
    _, _, outcome, _ = await run_agent(kernel, recording, context_budget_tokens=1200)
    assert not outcome.success
    assert outcome.reason == "context_budget"


async def test_a_task_completed_as_the_budget_fills_is_completed(kernel, write_recording):
    """The turn that completes the task stands, whatever the budget says after it."""
    recording = write_recording(complete("done in one"))
    _, _, outcome, _ = await run_agent(kernel, recording, context_budget_tokens=100)
    assert (outcome.success, outcome.reason) == (True, "completed")


async def test_the_time_limit_ends_the_run(kernel, write_recording):
    recording = write_recording(add_cell_turn("import time; time.sleep(30)"), complete())
    started = time.monotonic()
    _, _, outcome, _ = await run_agent(kernel, recording, time_limit_s=1.5)
    assert time.monotonic() - started < 10
    assert (outcome.success, outcome.reason) == (False, "time_limit")


@pytest.mark.parametrize("success", [True, False])
async def test_complete_task_reports_the_models_verdict(kernel, write_recording, success):
    recording = write_recording(complete("## Summary\nall of it", success=success))
    _, _, outcome, events = await run_agent(kernel, recording)
    assert outcome.success is success
    assert outcome.reason == ("completed" if success else "gave_up")
    finished = events.events[-1]
    assert finished == {
        "seq": len(events.events) - 1,
        "type": "run_finished",
        "success": success,
        "reason": outcome.reason,
        "summary": "## Summary\nall of it",
    }


FLOOD = """
import sys
from IPython.display import display
for i in range(400):
    print(f"line {i:03} " + "x" * 100_000)
print("THE END")
display({"text/plain": "y" * 6_000_000}, raw=True)
for i in range(3):
    display({"text/plain": "z" * 4_000_000}, raw=True)
"""


async def test_an_output_flood_is_kept_head_and_tail_and_bounded_per_output_and_cell(
    kernel, write_recording
):
    """40 MB printed and 18 MB displayed: the cell keeps the limits' worth, the cut marked,
    in its notebook and in its event (a 100 MB print made a 105 MB notebook and event)."""
    recording = write_recording(add_cell_turn(FLOOD), complete())
    limits = OutputLimits(stream_chars=20_000, output_bytes=5_000_000, cell_bytes=6_000_000)
    _, notebook, outcome, events = await run_agent(
        kernel, recording, output_limits=limits, execution_timeout_s=120
    )
    assert outcome.success
    stream, too_big, kept, cell_full = notebook.nb.cells[0].outputs
    assert len(stream.text) < 20_100
    assert stream.text.startswith("line 000 xxx") and stream.text.endswith("THE END\n")
    assert "characters of output cut" in stream.text
    assert "an output of 6000000 bytes (text/plain) left out" in too_big.data["text/plain"]
    assert kept.data["text/plain"] == "z" * 4_000_000
    assert cell_full.text == "[2 more outputs left out: past 6000000 bytes]"
    *running, final = [e for e in events.events if e["type"] == "cell_outputs"]
    assert final["status"] == "ok"
    assert len(json.dumps(final)) < 4_100_000 + 20_000 + 1_000
    # Snapshots while it ran stop at their budget: a flood does not fill the run's log.
    assert all(e["status"] == "running" for e in running)
    assert sum(len(json.dumps(e)) for e in running) < OUTPUT_STREAM_BUDGET_BYTES + 6_100_000


SLOW_CELL = """
import time
for i in range(4):
    print(f"step {i}", flush=True)
    time.sleep(0.6)
"""


async def test_a_slow_cell_shows_its_outputs_as_they_come(kernel, write_recording):
    """Running, the cell is marked so (`[*]`), and what it prints shows while it goes on: a
    print 16 s into a 30 s cell showed nothing until the end."""
    recording = write_recording(add_cell_turn(SLOW_CELL), complete())
    _, _, outcome, events = await run_agent(kernel, recording)
    assert outcome.success
    kinds = [e["type"] for e in events.events]
    assert kinds.index("cell_running") < kinds.index("cell_outputs")
    *running, final = [e for e in events.events if e["type"] == "cell_outputs"]
    assert final["status"] == "ok"
    assert final["outputs"][0]["text"] == "".join(f"step {i}\n" for i in range(4))
    assert running, "no outputs came while the cell ran"
    texts = [e["outputs"][0]["text"] for e in running]
    assert all(e["status"] == "running" for e in running)
    assert texts[0].startswith("step 0\n") and "step 3" not in texts[0]
    assert texts == sorted(set(texts)), "a snapshot repeated or went back"


async def test_a_quick_cell_has_only_its_last_outputs(kernel, write_recording):
    recording = write_recording(add_cell_turn("print('hi')"), complete())
    _, _, outcome, events = await run_agent(kernel, recording)
    assert outcome.success
    (outputs,) = [e for e in events.events if e["type"] == "cell_outputs"]
    assert outputs["status"] == "ok"
