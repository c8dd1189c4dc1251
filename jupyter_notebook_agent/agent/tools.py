"""The tools the model calls, as OpenAI function schemas, and the checking of its arguments."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.protocols import Validator


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


SOURCE = {"type": "string", "description": "The cell's whole Python code, or its markdown"}
CELL_ID = {
    "type": "string",
    "description": "The id of a cell, as the notebook's cells or a tool result name it",
}

TOOLS: list[dict[str, Any]] = [
    _tool(
        "add_cell",
        "Add a cell to the notebook. A code cell is run at once in the kernel and its outputs "
        "come back to you. Returns the new cell's id.",
        {
            "cell_type": {"type": "string", "enum": ["code", "markdown"]},
            "source": SOURCE,
            "after_cell_id": CELL_ID
            | {"description": "The id of the cell to insert it after (else it goes at the end)"},
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
        {"code": {"type": "string", "description": "The Python code to run"}},
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
        {
            "success": {"type": "boolean", "description": "Whether the task was done"},
            "summary": {"type": "string", "description": "What the notebook now holds, briefly"},
        },
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


def parse_call(
    name: str, raw_arguments: str, more: Mapping[str, Validator] | None = None
) -> ParsedCall:
    """Checks a tool call against its schema, of the agent's own tools or of the run's `more`
    (its MCP servers' tools); FormatError names the problem."""
    validators = {**_VALIDATORS, **(more or {})}
    validator = validators.get(name)
    if validator is None:
        raise FormatError(
            f"there is no tool named {name!r}; the tools are: {', '.join(validators)}"
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
    properties = _PROPERTIES.get(name, {})  # an MCP tool's values are its own business
    for key, value in arguments.items():
        if (
            isinstance(value, str)
            and key in properties
            and is_placeholder(key, value, properties[key])
        ):
            raise FormatError(
                f"the {key} of {name} is {value!r}, which only stands for a value: "
                f"{_WHAT_TO_WRITE[key]}"
            )
    return ParsedCall(name, arguments)


_CODE = frozenset({"string", "str", "...", "…", "your code here", "code here", "python code"})
PLACEHOLDERS = {
    "source": _CODE,
    "code": _CODE,
    "summary": frozenset({"string", "str", "text", "...", "…"}),
}
"""By argument: what stands for a value rather than being one (type names, ellipses), as small
models copy them into calls from tool descriptions. Only these free-text arguments are judged:
a variable may well be named `text`, and a cell id that is none gets its own answer."""

_SLOT = re.compile(r"[<{]\s*[a-z][a-z_ .'-]+\s*[>}]")
"""`<code>`, `{source}`: a name in angle brackets or braces, as templates mark a slot."""

_WHAT_TO_WRITE = {
    "source": "write the cell's actual Python code (or markdown), for example import pandas as pd",
    "code": "write the actual Python code to run",
    "summary": "say in a sentence or two what the notebook now holds",
}

_PROPERTIES = {
    tool["function"]["name"]: tool["function"]["parameters"]["properties"] for tool in TOOLS
}


def is_placeholder(key: str, value: str, schema: dict[str, Any]) -> bool:
    """Whether argument `key`'s `value` only stands for a value: a type's name, a slot's name in
    brackets, or the words that describe the argument (its schema's description)."""
    if key not in PLACEHOLDERS:
        return False
    said = value.strip().lower()
    bare = said.rstrip(".:").strip()
    description = str(schema.get("description", "")).strip().rstrip(".").lower()
    return (
        said in PLACEHOLDERS[key]
        or bare in PLACEHOLDERS[key]
        or bare == description
        or bool(_SLOT.fullmatch(bare))
    )
