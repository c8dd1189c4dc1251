"""The tools the model calls, as OpenAI function schemas, and the checking of its arguments."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator


def _tool(name: str, description: str, properties: dict[str, Any], required: list[str]) -> dict:
    parameters = {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": parameters},
    }


SOURCE = {"type": "string", "description": "The whole source of the cell."}
CELL_ID = {"type": "string", "description": "The id of a cell, as a tool result named it."}

TOOLS: list[dict[str, Any]] = [
    _tool(
        "add_cell",
        "Add a cell to the notebook. A code cell is run at once in the kernel and its outputs "
        "come back to you. Returns the new cell's id.",
        {
            "cell_type": {"type": "string", "enum": ["code", "markdown"]},
            "source": SOURCE,
            "after_cell_id": CELL_ID
            | {"description": "Insert after this cell; default: at the end."},
        },
        ["cell_type", "source"],
    ),
    _tool(
        "edit_cell",
        "Replace the source of a cell you wrote (to fix an error, say) and run it again.",
        {"cell_id": CELL_ID, "source": SOURCE},
        ["cell_id", "source"],
    ),
    _tool(
        "execute_code",
        "Run code in the kernel without adding a cell: to explore data or check a file.",
        {"code": {"type": "string"}},
        ["code"],
    ),
    _tool(
        "inspect_variable",
        "Look at one variable of the kernel in detail: a DataFrame's columns, types, missing "
        "values and first rows; another value's type, size and contents.",
        {"name": {"type": "string", "description": "The variable's name."}},
        ["name"],
    ),
    _tool("restart_kernel", "Restart the kernel: all variables and imports are lost.", {}, []),
    _tool(
        "complete_task",
        "End the run. Say whether the task succeeded, and summarise what the notebook now holds "
        "in markdown.",
        {"success": {"type": "boolean"}, "summary": {"type": "string"}},
        ["success", "summary"],
    ),
]

_VALIDATORS = {
    tool["function"]["name"]: Draft202012Validator(tool["function"]["parameters"]) for tool in TOOLS
}


class FormatError(Exception):
    """The model's tool call could not be used; the message tells the model exactly why."""


@dataclass
class ParsedCall:
    name: str
    arguments: dict[str, Any]


def parse_call(name: str, raw_arguments: str) -> ParsedCall:
    """Checks a tool call against its schema; FormatError names the problem."""
    validator = _VALIDATORS.get(name)
    if validator is None:
        raise FormatError(
            f"there is no tool named {name!r}; the tools are: {', '.join(_VALIDATORS)}"
        )
    try:
        arguments = json.loads(raw_arguments) if raw_arguments.strip() else {}
    except json.JSONDecodeError as error:
        raise FormatError(f"the arguments of {name} are not valid JSON ({error})") from None
    if not isinstance(arguments, dict):
        raise FormatError(f"the arguments of {name} must be a JSON object")
    problems = sorted(validator.iter_errors(arguments), key=lambda e: list(e.path))
    if problems:
        details = "; ".join(
            f"{'.'.join(map(str, p.path)) + ': ' if p.path else ''}{p.message}" for p in problems
        )
        raise FormatError(f"the arguments of {name} do not fit its schema: {details}")
    return ParsedCall(name, arguments)
