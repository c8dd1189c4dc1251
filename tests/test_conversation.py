"""A notebook's thread as the model is sent it: valid after stops, within its budget."""

from __future__ import annotations

import copy
import itertools
import json

from jupyter_notebook_agent.agent import Agent
from jupyter_notebook_agent.agent.conversation import Conversation
from jupyter_notebook_agent.llm.replay import ReplayModel
from jupyter_notebook_agent.notebook import NotebookDocument

from .conftest import complete


def system() -> dict:
    return {"role": "system", "content": "You work in a notebook."}


def calls(*ids: str, summary: str | None = None) -> dict:
    made = [
        {"id": i, "type": "function", "function": {"name": "add_cell", "arguments": "{}"}}
        for i in ids
    ]
    if summary is not None:
        arguments = json.dumps({"success": True, "summary": summary})
        made.append(
            {
                "id": "end",
                "type": "function",
                "function": {"name": "complete_task", "arguments": arguments},
            }
        )
    return {"role": "assistant", "content": "", "tool_calls": made}


def result(call_id: str, cell_id: str = "") -> dict:
    content = json.dumps({"status": "ok", "cell_id": cell_id} if cell_id else {"status": "ok"})
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def well_formed(messages: list[dict]) -> None:
    """What an OpenAI-compatible endpoint accepts: the system message first and alone, each
    assistant's tool calls followed at once by one result each, no two user messages in a row."""
    assert messages[0]["role"] == "system"
    assert all(m["role"] != "system" for m in messages[1:])
    for index, message in enumerate(messages):
        wanted = [call["id"] for call in message.get("tool_calls") or []]
        following = []
        for later in messages[index + 1 :]:
            if later["role"] != "tool":
                break
            following.append(later["tool_call_id"])
        if wanted:
            assert sorted(following) == sorted(wanted), (index, messages)
    roles = [m["role"] for m in messages]
    assert all(not (a == b == "user") for a, b in itertools.pairwise(roles)), roles


def test_calls_a_stopped_run_left_open_are_answered_right_after_the_call():
    thread = Conversation()
    thread.append(system())
    thread.begin_request("plot it", {"role": "user", "content": "plot it"})
    thread.append(calls("a", "b"))
    thread.append(result("a", "agent-1"))  # stopped before b ran
    thread.answer_open_calls()
    thread.append({"role": "user", "content": "The person asked you to rewrite agent-1."})
    thread.append(calls("c"))
    thread.append(result("c"))
    thread.begin_request("and now?", {"role": "user", "content": "and now?"})
    well_formed(thread.messages)
    assert [m.get("tool_call_id") for m in thread.messages[3:5]] == ["a", "b"]
    assert json.loads(thread.messages[4]["content"])["status"] == "not_run"
    assert [thread.messages[r.start]["content"] for r in thread.requests] == [
        "plot it",
        "and now?",
    ]


def test_the_oldest_requests_go_whole_and_a_paragraph_in_the_system_message_says_what_they_were():
    thread = Conversation()
    thread.append(system())
    for number in range(4):
        thread.begin_request(f"request {number}", {"role": "user", "content": "x" * 4000})
        thread.append(calls("a", summary=f"outcome {number}"))
        thread.append(result("a", f"agent-{number}"))
        thread.append(result("end"))
    thread.fit(budget_tokens=2500)  # about 10,000 characters: two requests' worth
    well_formed(thread.messages)
    assert thread.dropped == 2
    assert [r.prompt for r in thread.requests] == ["request 2", "request 3"]
    said = thread.messages[0]["content"]
    assert said.startswith("You work in a notebook.")
    assert "'request 0': outcome 0; cells agent-0" in said
    assert "'request 1': outcome 1; cells agent-1" in said
    assert thread.messages[1]["role"] == "user" and thread.messages[1]["content"] == "x" * 4000
    assert thread.chars == sum(len(json.dumps(m)) for m in thread.messages)


def test_a_previous_request_that_filled_the_budget_leaves_room_for_the_next():
    thread = Conversation()
    thread.append(system())
    thread.begin_request("huge", {"role": "user", "content": "y" * 40_000})
    thread.begin_request("next", {"role": "user", "content": "next"})
    thread.fit(budget_tokens=5000)
    assert [r.prompt for r in thread.requests] == ["next"]
    assert thread.tokens < 5000


def test_the_thread_learns_how_many_tokens_its_characters_take():
    thread = Conversation()
    thread.append(system())
    thread.begin_request("r", {"role": "user", "content": "z" * 1000})
    before = thread.tokens
    thread.observe(prompt_tokens=thread.chars, sent_chars=thread.chars)  # a token a byte
    assert thread.tokens == thread.chars > before


def test_taking_up_a_run_leaves_the_thread_as_it_is_until_it_goes_on(tmp_path, write_recording):
    """An earlier server's run, taken up for a verdict on one of its cells, shares the
    notebook's thread with the run working there now: the call that run has open is its own,
    and was answered "not run" under it. The thread is made whole when the old run goes on."""
    thread = Conversation()
    thread.append(system())
    thread.begin_request("sum it", {"role": "user", "content": "sum it"})
    thread.append(calls("working-now"))
    before = copy.deepcopy(thread.messages)
    agent = Agent(
        ReplayModel(write_recording(complete())),
        lambda: None,  # no kernel: a verdict needs none
        NotebookDocument(),
        conversation=thread,
        run_id="earlier",
    )
    agent.take_up({"step": 3, "usage": {}, "messages": [], "cells": []})
    assert thread.messages == before
