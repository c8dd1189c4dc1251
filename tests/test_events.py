"""Each kind of event is written down three times: its class in agent/events.py, its schema in
rest-api.yml, and its member of the RunEvent union in src/model/events.ts. These hold the three
to one another."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from jupyter_notebook_agent.agent.events import (
    EVENT_TYPES,
    CellEdited,
    CellProposed,
    EventBody,
    EventLog,
    ModelTurnTaken,
)
from jupyter_notebook_agent.agent.loop import Agent
from jupyter_notebook_agent.llm.base import ModelTurn, ToolCall
from jupyter_notebook_agent.llm.replay import ReplayModel
from jupyter_notebook_agent.notebook import NotebookDocument

from .conftest import complete, tool, turn

ROOT = Path(__file__).resolve().parent.parent
SPEC = yaml.safe_load((ROOT / "jupyter_notebook_agent/server/rest-api.yml").read_text())
TS_EVENTS = (ROOT / "src/model/events.ts").read_text()


def said(event_type: type[EventBody]) -> tuple[set[str], set[str]]:
    """The fields an event of this kind carries besides seq and type: all, and those always."""
    if event_type is ModelTurnTaken:
        names = {"step"} | {field.name for field in dataclasses.fields(ModelTurn)}
        return names, names
    fields = dataclasses.fields(event_type)  # type: ignore[arg-type]
    always = {field.name for field in fields if not field.metadata.get("said_when_set")}
    return {field.name for field in fields}, always


def ts_members() -> dict[str, tuple[set[str], set[str]]]:
    """The RunEvent union's members by type: their fields, and those not optional."""
    union = TS_EVENTS[TS_EVENTS.index("export type RunEvent") : TS_EVENTS.index("RunEventType")]
    union = re.sub(r"/\*\*.*?\*/", "", union, flags=re.S)
    while re.search(r"\{[^{}]*\{[^{}]*\}", union):  # nested object types say nothing here
        union = re.sub(r"(\{[^{}]*)\{[^{}]*\}", r"\1OBJECT", union)
    members = {}
    for body in re.findall(r"\{([^{}]*type: '[a-z_]+'[^{}]*)\}", union):
        kind = re.search(r"type: '([a-z_]+)'", body).group(1)
        fields = dict(re.findall(r"(\w+)(\??):", body))
        fields.pop("type")
        members[kind] = (set(fields), {name for name, optional in fields.items() if not optional})
    return members


def test_every_kind_of_event_is_one_class():
    kinds = [event_type.kind for event_type in EVENT_TYPES]
    assert len(kinds) == len(set(kinds)) == 23


@pytest.mark.parametrize("event_type", EVENT_TYPES, ids=lambda t: t.kind)
def test_an_event_class_says_what_its_rest_api_schema_says(event_type):
    schema = SPEC["components"]["schemas"][f"event_{event_type.kind}"]
    assert schema["properties"]["type"] == {"const": event_type.kind}
    fields, always = said(event_type)
    assert set(schema["properties"]) - {"seq", "type"} == fields
    assert set(schema["required"]) - {"seq", "type"} == always


@pytest.mark.parametrize("event_type", EVENT_TYPES, ids=lambda t: t.kind)
def test_an_event_class_says_what_the_frontend_reads(event_type):
    fields, always = ts_members()[event_type.kind]
    assert (fields, always) == said(event_type)


def test_the_log_numbers_events_and_leaves_out_fields_not_set():
    log = EventLog()
    seen = []
    log.subscribe(seen.append)
    log.emit(CellEdited("a", "x = 1"))
    log.emit(CellEdited("a", "x = 2", version=1, state="proposed"))
    turn = ModelTurn("hi", [ToolCall("c1", "add_cell", "{}")])
    log.emit(ModelTurnTaken(3, turn))
    proposed = CellProposed("b", "code", "", 0, None, {}, True, "c1")
    log.emit(proposed)
    assert seen == log.events
    assert log.events[0] == {"seq": 0, "type": "cell_edited", "cell_id": "a", "source": "x = 1"}
    assert log.events[1] == {
        "seq": 1,
        "type": "cell_edited",
        "cell_id": "a",
        "source": "x = 2",
        "version": 1,
        "state": "proposed",
    }
    assert log.events[2]["tool_calls"] == [{"id": "c1", "name": "add_cell", "arguments": "{}"}]
    assert log.events[2]["step"] == 3
    assert log.events[3]["after_cell_id"] is None
    assert log.events[3]["call_id"] == "c1"


async def test_each_proposed_cell_names_the_call_that_writes_it(kernel, write_recording):
    """Two calls of one answer write the same source (streamed, so shown before their calls
    are whole), a third writes its source before its type (shown only once it is whole): the
    frontend finds each call's cell by the call's id, with nothing to guess."""
    same = {"cell_type": "markdown", "source": "# Same"}
    late_type = '{"source": "# Late", "cell_type": "markdown"}'
    recording = write_recording(
        turn(tool("add_cell", same, "c1"), tool("add_cell", same, "c2")),
        turn(tool("add_cell", late_type, "c3")),
        complete(),
    )
    events = EventLog()
    agent = Agent(ReplayModel(recording), kernel, NotebookDocument(), events=events)
    assert (await agent.run("write headings")).success
    proposed = [e for e in events.events if e["type"] == "cell_proposed"]
    assert [(e["call_id"], e["streaming"]) for e in proposed] == [
        ("c1", True),
        ("c2", True),
        ("c3", False),
    ]
    results = {
        e["call_id"]: e["result"]["cell_id"]
        for e in events.events
        if e["type"] == "tool_result" and "cell_id" in e["result"]
    }
    assert results == {e["call_id"]: e["cell_id"] for e in proposed}
