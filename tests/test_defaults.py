"""A run's defaults are the agent's (AgentConfig): the server's settings, the command line and the
panel's settings schema take them from there, or are held to them here."""

from __future__ import annotations

import json
from pathlib import Path

from jupyter_notebook_agent.agent import AgentConfig
from jupyter_notebook_agent.cli import build_parser
from jupyter_notebook_agent.server.app import NotebookAgent

SCHEMA = Path(__file__).resolve().parent.parent / "schema" / "plugin.json"


def test_the_server_and_the_command_line_start_from_the_agents_defaults():
    config = AgentConfig()
    server = NotebookAgent()
    command = build_parser().parse_args(["run", "a task"])
    assert (server.max_steps, command.max_steps) == (config.max_steps,) * 2
    assert (server.time_limit, command.time_limit) == (config.time_limit_s,) * 2
    assert (server.execution_timeout, command.timeout) == (config.execution_timeout_s,) * 2
    assert server.execution == config.execution


def test_the_panels_settings_default_to_the_servers():
    properties = json.loads(SCHEMA.read_text())["properties"]
    assert properties["maxSteps"]["default"] == NotebookAgent().max_steps
    assert properties["execution"]["default"] == NotebookAgent().execution
    choices = {choice["const"] for choice in properties["execution"]["oneOf"]}
    assert choices == set(NotebookAgent.execution.values)
