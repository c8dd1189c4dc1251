"""Jupyter logs its whole configuration at `--debug` ("Config changed: {...}", once per
application: the server, this extension, JupyterLab...). An API key or an MCP server's header
written in a config file would be in the log; every record that carries a configuration is
logged with this extension's secrets hidden. A log record factory is the one place that sees
the records of every application's logger."""

from __future__ import annotations

import copy
import logging
from typing import Any

from traitlets.config import Config

HIDDEN = "<hidden>"
SECTION = "NotebookAgent"


def hide_config_secrets() -> None:
    """From now on, in this process (once, however often called)."""
    make_record = logging.getLogRecordFactory()
    if getattr(make_record, "hides_config_secrets", False):
        return

    def record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        made = make_record(*args, **kwargs)
        if isinstance(made.args, Config):  # a lone mapping argument is the record's args
            made.args = without_secrets(made.args)
        elif isinstance(made.args, tuple) and any(isinstance(a, Config) for a in made.args):
            made.args = tuple(without_secrets(a) if isinstance(a, Config) else a for a in made.args)
        return made

    record.hides_config_secrets = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(record)


def without_secrets(config: Config) -> Config:
    """A copy of the configuration whose `api_key` and MCP servers' `headers` and `env`
    values are hidden; the configuration itself where it has none. New values replace the
    secret ones: a configuration's copy shares its plain dicts with it."""
    if SECTION not in config:
        return config
    shown = copy.deepcopy(config)
    section = shown[SECTION]
    if section.get("api_key"):
        section["api_key"] = HIDDEN
    servers = section.get("mcp_servers")
    if isinstance(servers, dict):
        section["mcp_servers"] = {name: _server_shown(server) for name, server in servers.items()}
    elif servers is not None:  # set another way (a lazy update): hidden whole
        section["mcp_servers"] = HIDDEN
    return shown


def _server_shown(server: Any) -> Any:
    if not isinstance(server, dict):
        return server
    return {
        field: _hidden(value) if field in ("headers", "env") else value
        for field, value in server.items()
    }


def _hidden(values: Any) -> Any:
    return dict.fromkeys(values, HIDDEN) if isinstance(values, dict) else HIDDEN
