"""The agent as a client of the person's MCP servers: their configuration, and a toolbox that
connects to them all at once, offers their tools to the model under names of their own
(`{server}__{tool}`), and calls them.

A server that cannot be had (down, slow to connect, speaking garbage) is skipped, and the model
told why; a call that fails comes back as an error the model reads. Neither ends a run.

The values of a server's `env` and `headers` are secrets (tokens, keys): they go to the server
alone, never into a log line, an event or a result the model reads.
"""

from __future__ import annotations

import asyncio
import binascii
import hashlib
import json
import logging
import re
import sys
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import anyio
import httpx2
from jsonschema import SchemaError
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from mcp import Client, MCPError
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CONNECTION_CLOSED, CallToolResult, Tool

from ..notebook.outputs import cut, image_size

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

log = logging.getLogger(__name__)

Approval = Literal["ask", "allow"]
ToolPolicy = Literal["ask", "allow", "deny"]

#: A server's name: letters, digits and dashes, in words joined by single underscores, so that
#: `{server}__{tool}` says where the server's name ends.
SERVER_NAME = re.compile(r"[A-Za-z0-9-]+(?:_[A-Za-z0-9-]+)*")
SERVER_NAME_CHARS = 32
#: A tool's name as OpenAI's API takes it (and so every backend here).
TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
#: Characters of one tool's description the model is sent at most.
DESCRIPTION_CHARS = 1_000
#: Characters of all the MCP tools' descriptions together: many servers must not fill the
#: context before the task begins.
DESCRIPTIONS_CHARS = 8_000
#: MCP tools offered at most, with the agent's own: OpenAI's API takes 128 tools.
MAX_TOOLS = 100
#: Pages of a server's tool list read at most (a server that pages forever ends there).
MAX_PAGES = 20
#: Characters a secret must not be shorter than to be hidden from messages: a one-character value
#: would mangle every message it occurs in, and hides nothing.
SECRET_MIN_CHARS = 4
#: The HTTP timeouts of a streamable-HTTP connection: the SDK's own (a server may hold a
#: response stream open for long).
HTTP_TIMEOUT = httpx2.Timeout(30.0, read=300.0)

_FIELDS = {
    "command",
    "args",
    "env",
    "cwd",
    "url",
    "headers",
    "approval",
    "tools",
    "timeout",
    "connect_timeout",
}


class McpConfigError(ValueError):
    """A server's configuration cannot be used; the message names the server and the field."""


@dataclass(frozen=True)
class McpServerConfig:
    """One of the person's MCP servers: a command run over stdio, or a streamable-HTTP `url`,
    and what the agent may do with its tools without asking."""

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    """Set for the command, over the few variables it inherits (PATH, HOME, ...)."""
    cwd: str | None = None
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    approval: Approval = "ask"
    """ask: each call waits for the person's approval; allow: calls run at once."""
    tools: Mapping[str, ToolPolicy] = field(default_factory=dict)
    """Per tool, by its name on the server: ask, allow, or deny (never offered to the model)."""
    timeout_s: float = 60.0
    """Seconds one call may take."""
    connect_timeout_s: float = 10.0
    """Seconds to connect and list the tools; the run's first model turn waits at most that."""

    @classmethod
    def parse(cls, name: object, raw: object) -> McpServerConfig:
        """The server as `c.NotebookAgent.mcp_servers[name]` (or the CLI's JSON file) writes
        it; McpConfigError names the server and the field that is wrong."""
        if not isinstance(name, str) or not (
            SERVER_NAME.fullmatch(name) and len(name) <= SERVER_NAME_CHARS
        ):
            raise McpConfigError(
                f"the MCP server name {name!r} must be letters, digits and dashes, in words "
                f"joined by single underscores, at most {SERVER_NAME_CHARS} characters"
            )
        where = f"MCP server {name!r}"
        if not isinstance(raw, Mapping):
            raise McpConfigError(f"{where}: its settings must be an object, not {_kind(raw)}")
        if unknown := sorted(set(map(str, raw)) - _FIELDS):
            known = ", ".join(sorted(_FIELDS))
            raise McpConfigError(f"{where}: unknown field {unknown[0]!r} (the fields: {known})")
        fields = _Fields(where, raw)
        command, url = fields.text("command"), fields.text("url")
        if (command is None) == (url is None):
            raise McpConfigError(f"{where}: give either 'command' (stdio) or 'url' (HTTP)")
        if url is not None and not re.match(r"https?://", url):
            raise McpConfigError(f"{where}: 'url' must be an http:// or https:// URL")
        stdio_only = [key for key in ("args", "env", "cwd") if key in raw]
        if url is not None and stdio_only:
            raise McpConfigError(f"{where}: {stdio_only[0]!r} is for a 'command', not a 'url'")
        if command is not None and "headers" in raw:
            raise McpConfigError(f"{where}: 'headers' is for a 'url', not a 'command'")
        return cls(
            name=name,
            command=command,
            args=tuple(fields.strings("args")),
            env=fields.mapping("env"),
            cwd=fields.text("cwd"),
            url=url,
            headers=fields.mapping("headers"),
            approval=fields.choice("approval", get_args(Approval), "ask"),
            tools=fields.policies("tools"),
            timeout_s=fields.seconds("timeout", cls.timeout_s),
            connect_timeout_s=fields.seconds("connect_timeout", cls.connect_timeout_s),
        )

    def policy(self, tool: str) -> ToolPolicy:
        return self.tools.get(tool, self.approval)

    @property
    def secrets(self) -> tuple[str, ...]:
        """The values no message may carry: those of `env` and `headers`."""
        values = [*self.env.values(), *self.headers.values()]
        # The longest first, so that one that holds another is hidden whole.
        return tuple(sorted({v for v in values if len(v) >= SECRET_MIN_CHARS}, key=len)[::-1])

    def hide_secrets(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def parse_servers(raw: object) -> list[McpServerConfig]:
    """Every server of a `{name: settings}` object; McpConfigError for the first one wrong."""
    if not isinstance(raw, Mapping):
        raise McpConfigError(
            f"the MCP servers must be an object of servers by name, not {_kind(raw)}"
        )
    return [McpServerConfig.parse(name, settings) for name, settings in raw.items()]


SECRET_REFERENCE = re.compile(r"\$\{env:([A-Za-z0-9_]*)\}")
SECRET_PREFIX = "MCP_"
"""Settings kept in the browser name their secrets as ${env:MCP_...}; only such variables of the
server's environment are read, so a setting cannot send the server's other variables away."""


def servers_from_settings(raw: object, environ: Mapping[str, str]) -> list[McpServerConfig]:
    """The servers a person's settings list: as `parse_servers`, each ${env:MCP_NAME} in an
    `env` or `headers` value replaced by that variable of the server's `environ`; McpConfigError
    for a variable not named MCP_..., or not set."""
    if not isinstance(raw, Mapping):
        return parse_servers(raw)

    def filled(where: str, value: object) -> object:
        if not isinstance(value, str):
            return value

        def secret(match: re.Match[str]) -> str:
            name = match.group(1)
            if not name.startswith(SECRET_PREFIX):
                raise McpConfigError(f"{where}: ${{env:{name}}} must name a variable MCP_...")
            if name not in environ:
                raise McpConfigError(f"{where}: the server has no variable {name}")
            return environ[name]

        return SECRET_REFERENCE.sub(secret, value)

    servers = {}
    for name, settings in raw.items():
        if isinstance(settings, Mapping):
            settings = dict(settings)
            for key in ("env", "headers"):
                if isinstance(values := settings.get(key), Mapping):
                    where = f"MCP server {name!r}: {key!r}"
                    settings[key] = {k: filled(where, v) for k, v in values.items()}
        servers[name] = settings
    return parse_servers(servers)


class _Fields:
    """Reads the fields of one server's settings, each checked for its type."""

    def __init__(self, where: str, raw: Mapping[str, Any]) -> None:
        self.where, self.raw = where, raw

    def wrong(self, key: str, what: str) -> McpConfigError:
        return McpConfigError(f"{self.where}: {key!r} must be {what}, not {_kind(self.raw[key])}")

    def text(self, key: str) -> str | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.wrong(key, "a string that is not empty")
        return value

    def strings(self, key: str) -> list[str]:
        value = self.raw.get(key, [])
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self.wrong(key, "a list of strings")
        return value

    def mapping(self, key: str) -> dict[str, str]:
        value = self.raw.get(key, {})
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise self.wrong(key, "an object of strings")
        return dict(value)

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> Any:
        value = self.raw.get(key, default)
        if value not in choices:
            raise self.wrong(key, " or ".join(map(repr, choices)))
        return value

    def policies(self, key: str) -> dict[str, ToolPolicy]:
        value = self.raw.get(key, {})
        choices = get_args(ToolPolicy)
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and v in choices for k, v in value.items()
        ):
            raise self.wrong(key, f"an object of tool names to {' or '.join(map(repr, choices))}")
        return dict(value)

    def seconds(self, key: str, default: float) -> float:
        value = self.raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise self.wrong(key, "a number of seconds above 0")
        return float(value)


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


@dataclass
class McpTool:
    """A tool of an MCP server, as the model is offered it."""

    name: str
    """What the model calls it: `{server}__{tool}`, made to fit OpenAI's names."""
    server: McpServerConfig
    tool: str
    """What the server calls it."""
    schema: dict[str, Any]
    """Its OpenAI function schema."""
    validator: Validator
    """Checks a call's arguments against the tool's input schema."""

    @property
    def key(self) -> str:
        """`{server}__{tool}` with the tool's own name: how a permission names it."""
        return f"{self.server.name}__{self.tool}"

    @property
    def policy(self) -> ToolPolicy:
        return self.server.policy(self.tool)


class ServerGone(Exception):
    """The connection to a server ended; the message says why."""


class McpToolbox:
    """The tools of a run's MCP servers. `open` starts connecting to every server at once, in
    the background; `connected` waits until each is connected or given up, and says what the
    model must hear of those given up; `close` ends every connection (and stops every server
    process)."""

    def __init__(
        self,
        servers: Sequence[McpServerConfig],
        *,
        description_chars: int = DESCRIPTION_CHARS,
        descriptions_chars: int = DESCRIPTIONS_CHARS,
        max_tools: int = MAX_TOOLS,
    ) -> None:
        self.servers = list(servers)
        self.description_chars, self.descriptions_chars = description_chars, descriptions_chars
        self.max_tools = max_tools
        self.tools: dict[str, McpTool] = {}
        """By the name the model calls them."""
        self._connections: dict[str, _Connection] = {}
        self._untold: list[str] = []
        """What the model has yet to hear of servers and tools it is not offered."""
        self._offered = False

    def open(self) -> None:
        """Starts connecting to every server; one open already stays as it is."""
        if self._connections:
            return
        self._connections = {server.name: _Connection(server) for server in self.servers}

    async def connected(self) -> list[str]:
        """Once each server is connected or given up: the notes for the model about those
        given up (and their tools left out) that it has not heard yet."""
        connections = list(self._connections.values())
        await asyncio.gather(*(connection.ready() for connection in connections))
        if not self._offered:
            self._offer(connections)
            self._offered = True
        told, self._untold = self._untold, []
        return told

    def _offer(self, connections: list[_Connection]) -> None:
        listed: list[tuple[McpServerConfig, Tool]] = []
        for connection in connections:
            if connection.problem is not None:
                self._untold.append(unavailable(connection.server.name, connection.problem))
                continue
            for tool in connection.listed:
                if connection.server.policy(tool.name) != "deny":
                    listed.append((connection.server, tool))
        if len(listed) > self.max_tools:
            left_out = ", ".join(
                f"{server.name}__{tool.name}" for server, tool in listed[self.max_tools :]
            )
            self._untold.append(
                f"Only {self.max_tools} MCP tools can be offered: these are not: {left_out}."
            )
            listed = listed[: self.max_tools]
        usable = []
        for server, tool in listed:
            try:
                usable.append((server, tool, _validator(tool.input_schema)))
            except SchemaError as error:
                problem = f"its input schema cannot be used ({error.message})"
                log.warning(
                    "The tool %s of MCP server %s is left out: %s", tool.name, server.name, problem
                )
                self._untold.append(
                    f"The tool {tool.name} of the MCP server {server.name} is left out: {problem}."
                )
        descriptions = [
            f"[MCP server {server.name}] "
            + " ".join((tool.description or tool.title or tool.name).split())
            for server, tool, _ in usable
        ]
        limits = fair_shares(
            [len(d) for d in descriptions], self.description_chars, self.descriptions_chars
        )
        for (server, tool, validator), description, limit in zip(
            usable, descriptions, limits, strict=True
        ):
            name = namespaced(server.name, tool.name, self.tools)
            function = {
                "name": name,
                "description": _shortened(description, limit),
                "parameters": validator.schema,
            }
            schema = {"type": "function", "function": function}
            self.tools[name] = McpTool(name, server, tool.name, schema, validator)

    @property
    def schemas(self) -> list[dict[str, Any]]:
        """The OpenAI function schemas of the tools offered."""
        return [tool.schema for tool in self.tools.values()]

    @property
    def validators(self) -> dict[str, Validator]:
        return {name: tool.validator for name, tool in self.tools.items()}

    async def call(self, name: str, arguments: dict[str, Any], max_chars: int) -> dict[str, Any]:
        """Calls the tool within its server's timeout: its result, in at most about
        `max_chars` characters, or an error that says what went wrong."""
        tool = self.tools[name]
        server = tool.server
        connection = self._connections[server.name]
        try:
            result = await connection.call(tool.tool, arguments)
        except TimeoutError:
            error = f"{name} did not answer within {server.timeout_s:g} s"
        except ServerGone as gone:
            error = unavailable(server.name, str(gone))
        except Exception as failure:  # what a server sent that the SDK could not read
            error = f"the MCP server {server.name} could not carry out the call: {reason(failure)}"
            log.warning("A call of %s failed: %s", name, server.hide_secrets(error))
        else:
            return digest(result, max_chars, server)
        return {"status": "error", "error": server.hide_secrets(error)}

    async def close(self) -> None:
        """Ends every connection; a stdio server's process is stopped (killed if it lingers).
        A later `open` connects afresh."""
        connections, self._connections = list(self._connections.values()), {}
        self.tools, self._untold, self._offered = {}, [], False
        await asyncio.gather(*(connection.close() for connection in connections))


_DEFAULT_VALIDATOR = validator_for({})
"""The draft a schema that names none is read as (2020-12, which MCP's tools take)."""


def _validator(input_schema: dict[str, Any]) -> Validator:
    """The validator of a tool's input schema; SchemaError for one that is no JSON schema, or
    not of an object (a call's arguments are one)."""
    validator_class = validator_for(input_schema, default=_DEFAULT_VALIDATOR)
    validator_class.check_schema(input_schema)
    if input_schema.get("type") != "object":
        raise SchemaError("the type at its root is not 'object'")
    return validator_class(dict(input_schema))


def fair_shares(lengths: Sequence[int], each: int, total: int) -> list[int]:
    """How many characters each of texts of `lengths` may keep: at most `each`, and `total`
    in all. Short ones are kept whole, and what they leave goes to the longer ones."""
    limits = [0] * len(lengths)
    room = total
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    for position, index in enumerate(order):
        limits[index] = min(lengths[index], each, room // (len(order) - position))
        room -= limits[index]
    return limits


def unavailable(server: str, problem: str) -> str:
    return f"The MCP server {server} is unavailable: {problem}."


def namespaced(server: str, tool: str, taken: Mapping[str, Any]) -> str:
    """`{server}__{tool}` as OpenAI's names allow (other characters become `_`); one too
    long, or already taken by another tool, ends with a digest of the whole instead."""
    whole = f"{server}__{tool}"
    name = re.sub(r"[^a-zA-Z0-9_-]", "_", whole)
    if TOOL_NAME.fullmatch(name) and name not in taken:
        return name
    return f"{name[:55]}_{hashlib.sha256(whole.encode()).hexdigest()[:8]}"


def _shortened(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def reason(error: BaseException) -> str:
    """What went wrong, in one line: the first error an exception group holds."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    said = " ".join(str(error).split())
    if isinstance(error, OSError) and error.strerror:
        said = f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    return said or type(error).__name__


def digest(result: CallToolResult, max_chars: int, server: McpServerConfig) -> dict[str, Any]:
    """What the model reads of a call's result: the text of its content (images, audio and
    resources named by type and size), and its structured content as JSON where that says
    more than the text (SDKs write a tool's return value both ways), cut to `max_chars`."""
    text = server.hide_secrets("\n".join(_block_text(block) for block in result.content))
    if result.is_error:
        said = text or "the tool failed, and said nothing"
        return {"status": "error", "error": cut(said, max_chars)}
    structured = result.structured_content
    if structured is None or (text and _as_json(text) in (structured, _sole_result(structured))):
        return {"status": "ok", "content": cut(text, max_chars)}
    encoded = server.hide_secrets(json.dumps(structured))
    if not text:
        return {"status": "ok", "structured": _json_within(encoded, max_chars)}
    half = max_chars // 2
    return {"status": "ok", "content": cut(text, half), "structured": _json_within(encoded, half)}


def _block_text(block: Any) -> str:
    if block.type == "text":
        return block.text
    if block.type in ("image", "audio"):
        return f"[{block.type} {block.mime_type}, {_data_size(block.mime_type, block.data)}]"
    if block.type == "resource_link":
        kind = f" {block.mime_type}" if block.mime_type else ""
        return f"[resource link {block.uri}{kind}]"
    if block.type == "resource":
        resource = block.resource
        if hasattr(resource, "text"):
            return resource.text
        kind = f" {resource.mime_type}" if resource.mime_type else ""
        return f"[resource {resource.uri}{kind}, {_data_size('', resource.blob)}]"
    return f"[{block.type} content]"


def _data_size(mime: str, data: str) -> str:
    """Bytes of base64 `data`, with pixels where an image's header says them."""
    try:
        size = image_size(mime, data) if mime.startswith("image/") else {}
        size.setdefault("bytes", len(binascii.a2b_base64(data)))
    except (binascii.Error, ValueError):
        return "data that is not base64"
    pixels = f", {size['width']}x{size['height']} pixels" if "width" in size else ""
    return f"{size['bytes']} bytes{pixels}"


def _as_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _json_within(encoded: str, limit: int) -> Any:
    """The JSON value where it fits `limit`, else its text cut to it."""
    return json.loads(encoded) if len(encoded) <= limit else cut(encoded, limit)


def _sole_result(structured: Any) -> Any:
    """The value of a `{"result": value}` object, which SDKs make of a plain return value."""
    if isinstance(structured, dict) and set(structured) == {"result"}:
        return structured["result"]
    return _NOTHING


_NOTHING = object()


class _Connection:
    """One server's connection, held by a task of its own from connecting to closing: the
    SDK's transports must be entered and left in the one task, and a connection that fails
    cancels the task that holds it, never the run."""

    def __init__(self, server: McpServerConfig) -> None:
        self.server = server
        self.listed: list[Tool] = []
        self.problem: str | None = None
        """Why the server cannot be used (None while it can)."""
        self._client: Client | None = None
        self._connected = asyncio.Event()
        self._closing = asyncio.Event()
        self._scope: anyio.CancelScope | None = None
        self._task = asyncio.ensure_future(self._hold())

    async def _hold(self) -> None:
        try:
            with anyio.CancelScope() as self._scope:
                async with AsyncExitStack() as stack:
                    client = await stack.enter_async_context(await self._client_of(stack))
                    self.listed = await _list_tools(client)
                    self._client = client
                    self._connected.set()
                    await self._closing.wait()
        except OSError as error:  # the command could not be started
            self._give_up(f"{self.server.command} could not be started: {reason(error)}")
        except Exception as error:
            self._give_up(reason(error))
        finally:
            self._client = None
            self._connected.set()

    async def _client_of(self, stack: AsyncExitStack) -> Client:
        server = self.server
        if server.command is not None:
            parameters = StdioServerParameters(
                command=server.command, args=list(server.args), env=dict(server.env), cwd=server.cwd
            )
            return Client(parameters)
        assert server.url is not None
        http = await stack.enter_async_context(
            httpx2.AsyncClient(headers=dict(server.headers), timeout=HTTP_TIMEOUT)
        )
        return Client(streamable_http_client(server.url, http_client=http))

    def _give_up(self, problem: str) -> None:
        """The server cannot be used: said in the log once, in one line."""
        if self.problem is None:
            self.problem = self.server.hide_secrets(problem)
            log.warning("The MCP server %s is unavailable: %s", self.server.name, self.problem)

    async def ready(self) -> None:
        """Once connected with its tools listed, or given up (`problem` says why)."""
        timeout = self.server.connect_timeout_s
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except asyncio.TimeoutError:  # the connection goes in the background; `close` waits for it
            self._give_up(f"it did not connect within {timeout:g} s")
            self._cancel()

    async def call(self, tool: str, arguments: dict[str, Any]) -> CallToolResult:
        """The server's result; TimeoutError past the server's timeout, ServerGone where the
        connection ended before or while it ran."""
        client = self._client
        if client is None or self._closing.is_set():
            raise ServerGone(self.problem or "it is not connected")
        calling = asyncio.ensure_future(client.call_tool(tool, arguments))
        try:
            await asyncio.wait(
                [calling, self._task],
                timeout=self.server.timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:  # a stop, a timeout, or the server gone: the call goes
            if not calling.done():
                calling.cancel()
                calling.add_done_callback(_retrieved)
        if calling.done():
            try:
                return calling.result()
            except MCPError as error:
                if error.code != CONNECTION_CLOSED:
                    raise
                self._give_up("its connection closed")  # the process ended, say
                self._closing.set()
                raise ServerGone(self.problem) from None
        if self._task.done():
            raise ServerGone(self.problem or "its connection ended")
        raise TimeoutError

    def _cancel(self) -> None:
        if self._scope is not None:
            self._scope.cancel()
        else:  # not begun yet
            self._task.cancel()

    async def close(self) -> None:
        """Ends the connection: a stdio server's process is stopped (the SDK closes its input,
        then terminates it, then kills it, each within seconds)."""
        self._closing.set()
        if not self._connected.is_set():
            self._cancel()
        await asyncio.wait([self._task])


def _retrieved(task: asyncio.Future[Any]) -> None:
    """A call given up on: whatever it ended with is of no interest."""
    if not task.cancelled():
        task.exception()


async def _list_tools(client: Client) -> list[Tool]:
    tools: list[Tool] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if cursor is None:
            break
    return tools
