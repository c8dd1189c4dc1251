"""Thin Tornado handlers: parse and check the request, call into the run registry, answer JSON.

Every route is written down in rest-api.yml beside this file.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

import tornado.web
import tornado.websocket
from jupyter_server.auth.decorator import authorized, ws_authenticated
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from jupyter_server.extension.handler import ExtensionHandlerMixin

from .._version import __version__
from ..agent import Event
from ..llm import Model, ModelError, parse_model_string
from ..mcp.client import McpConfigError, McpServerConfig, servers_from_settings
from ..sandbox import SandboxUnavailable
from .asgi import AsgiExchange
from .mcp_endpoint import USER_KEY
from .model_settings import SetupError, endpoint_models
from .outside_agent import MODEL_PREFIX, OutsideAgent
from .runs import McpServers, Run, RunError, RunRegistry, RunRequest
from .starting import RunStarter


class RegistryMixin(ExtensionHandlerMixin):
    @property
    def registry(self) -> RunRegistry:
        return self.extensionapp.registry


#: The Authorizer's resource for the agent's own state: runs, events, the model's status.
AUTH_RESOURCE = "notebook-agent"


def runs_code(method: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """What starts or goes on with a run executes code in a kernel and writes into a notebook:
    the Authorizer must allow both, as for the person's own kernels and files."""
    return authorized("execute", "kernels")(authorized("write", "contents")(method))


class AgentHandler(RegistryMixin, APIHandler):
    """A JSON handler of this extension: RunError becomes its status and message. Each method is
    authenticated and authorized (jupyter_server's Authorizer: a read-only user, a hub's RBAC)."""

    auth_resource = AUTH_RESOURCE

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc_info = kwargs.get("exc_info")
        if exc_info and isinstance(exc_info[1], RunError):
            self.set_status(exc_info[1].status)
            self.finish(json.dumps({"message": str(exc_info[1])}))
            return
        super().write_error(status_code, **kwargs)

    @property
    def starter(self) -> RunStarter:
        return self.extensionapp.starter

    async def taken_up(self, run_id: str) -> Run:
        """The run to act on: this server's, or one only the store keeps (an earlier server's),
        taken up again with its model (else the server's) and the notebook's kernel."""
        if run_id in self.registry.runs:
            return self.registry.runs[run_id]
        path = await self.registry.stored_path(run_id)
        stored = await self.registry.describe(run_id)
        kernel_name = await self.starter.notebook_kernel(path)
        model: Model
        if stored["model"].startswith(MODEL_PREFIX):  # an outside agent's: its session is over
            model = OutsideAgent(stored["model"].removeprefix(MODEL_PREFIX), 0)
            model.end("the server restarted")
        else:
            try:
                model = await self.starter.model(stored["model"])
            except RunError:  # one this server no longer has: the one a new run gets
                model = await self.starter.model()
        steps = min(stored["max_steps"], self.extensionapp.max_steps)
        config = self.starter.agent_config(stored["execution"], steps)
        user = self.current_user.username
        return await self.registry.revive(run_id, path, stored, model, kernel_name, config, user)

    async def status(self) -> dict[str, Any]:
        """What the panel needs to know before a run: the model and whether code is sandboxed."""
        app = self.extensionapp
        backend, name = parse_model_string(app.model_in_effect)
        try:
            choice = await self.starter.choose_kernel()
            kernel = {"name": choice.name, "sandboxed": choice.sandboxed, "problem": choice.problem}
        except SandboxUnavailable as error:
            kernel = {"name": None, "sandboxed": False, "problem": str(error)}
        try:
            await app.make_model()
            problem = None
        except ModelError as error:
            problem = str(error)
        return {
            "version": __version__,
            "model": {
                "backend": backend,
                "name": name,
                "base_url": app.base_url or None,
                "problem": problem,
                "api_key_set": app.api_key_set,
                "source": app.model_setup.source,
            },
            "local_model": app.local_model_status(),
            "execution": app.execution,
            "max_steps": app.max_steps,
            "kernel": kernel,
            "allow_unsandboxed": app.allow_unsandboxed,
            "allow_model_setup": app.allow_model_setup,
            "store": {
                "path": self.registry.store.path and str(self.registry.store.path),
                "state": self.registry.store.state,
            },
        }

    def mcp_servers(self, listed: dict[str, Any]) -> tuple[McpServerConfig, ...]:
        """The person's own MCP servers, from their settings: 400 for one whose settings are
        wrong or whose name the server's configuration has; 403 for a command where the
        Authorizer lets this user run no terminal (a stdio server is a command on the server)."""
        try:
            servers = servers_from_settings(listed, self.extensionapp.mcp_secrets)
        except McpConfigError as error:
            raise RunError(400, str(error)) from None
        configured = {server.name for server in self.extensionapp.mcp_server_configs}
        for server in servers:
            if server.name in configured:
                raise RunError(
                    400, f"the server's configuration has an MCP server {server.name!r} already"
                )
            if server.command and not self.authorizer.is_authorized(
                self, self.current_user, "execute", "terminals"
            ):
                raise RunError(
                    403, f"the MCP server {server.name!r} is a command, which you may not run here"
                )
        return tuple(servers)

    def going_on_mcp_servers(self, body: dict[str, Any]) -> McpServers | None:
        """The MCP servers a run that goes on is offered: the configuration's and the person's
        as a request lists them (its `mcp_servers`: their settings now); None where it lists
        none, and the run keeps those it had."""
        if "mcp_servers" not in body:
            return None
        listed = self.mcp_servers(_field(body, "mcp_servers", dict))
        return self.extensionapp.mcp_server_configs + listed

    def body(self) -> dict[str, Any]:
        """The request's JSON object; an empty body is an empty object."""
        if not self.request.body:
            return {}
        try:
            body = json.loads(self.request.body)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise RunError(400, f"the request body is not valid JSON: {error}") from None
        if not isinstance(body, dict):
            raise RunError(400, "the request body must be a JSON object")
        return body


def refuse_outside_agents(run: Run, doing: str) -> None:
    """409 where the run is an outside agent's: only the agent itself can do that, and its
    session says nothing of it (the panel says to ask the agent)."""
    model = run.agent.model
    if isinstance(model, OutsideAgent):
        raise RunError(
            409, f"this run is {model.client}'s, an outside agent's: ask {model.client} to {doing}"
        )


_KINDS = {str: "a string", int: "an integer", bool: "true or false", dict: "an object"}


def _field(
    body: dict[str, Any],
    name: str,
    kind: type,
    default: Any = ...,
    choices: tuple[str, ...] = (),
) -> Any:
    """A field of the body, of the right JSON type (and one of `choices`, where given);
    RunError 400 naming it otherwise."""
    if name not in body:
        if default is ...:
            raise RunError(400, f"the field {name!r} is missing")
        return default
    value = body[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise RunError(400, f"the field {name!r} must be {_KINDS[kind]}")
    if choices and value not in choices:
        raise RunError(400, f"the field {name!r} must be {' or '.join(map(repr, choices))}")
    return value


def _key_field(body: dict[str, Any]) -> str | None:
    """The field `api_key`: a string, or null (or left out) for the key saved before."""
    value = body.get("api_key")
    if value is not None and not isinstance(value, str):
        raise RunError(400, "the field 'api_key' must be a string or null")
    return value


class StatusHandler(AgentHandler):
    """What the panel needs to know before a run: the model and whether code is sandboxed."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        self.finish(json.dumps(await self.status()))


def model_setup(method: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """Choosing the model decides where every later run sends its notebook and kernel: allowed
    as starting a run is (runs_code), and only where the server allows it at all."""

    @functools.wraps(method)
    async def checked(self: AgentHandler, *args: Any, **kwargs: Any) -> None:
        if not self.extensionapp.allow_model_setup:
            raise RunError(403, "this server's model is set in its configuration, not in the panel")
        await method(self, *args, **kwargs)

    return runs_code(checked)


class ModelHandler(AgentHandler):
    """The model set up in the panel: saved on the server, in effect for the runs after it."""

    @tornado.web.authenticated
    @authorized
    @model_setup
    async def put(self) -> None:
        """Sets the model, its endpoint and key (an empty model: back to the server's own);
        answers the status, whose model's `problem` says whether it can be used."""
        app = self.extensionapp
        body = self.body()
        model = _field(body, "model", str)
        base_url = _field(body, "base_url", str, "")
        api_key = _key_field(body)
        try:
            settings = app.model_setup.requested(model.strip(), base_url.strip(), api_key)
        except SetupError as error:
            raise RunError(400, str(error)) from None
        try:
            await app.set_up_model(settings)
        except OSError as error:  # the server's to fix: a folder it cannot write, a full disk
            path, reason = app.model_setup.path, error.strerror or error
            raise RunError(500, f"the model could not be saved in {path}: {reason}") from None
        self.finish(json.dumps(await self.status()))


class EndpointModelsHandler(AgentHandler):
    @tornado.web.authenticated
    @authorized
    @model_setup
    async def post(self) -> None:
        """The models an endpoint lists, for the panel to offer: asked from this server, which
        is where runs reach the endpoint from."""
        body = self.body()
        base_url = _field(body, "base_url", str).strip()
        key = self.extensionapp.model_setup.listing_key(base_url, _key_field(body))
        try:
            models = await endpoint_models(base_url, key)
        except SetupError as error:
            raise RunError(400, str(error)) from None
        self.finish(json.dumps({"models": models}))


class LocalModelDownloadHandler(AgentHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        """The download's progress alone: what the panel asks every second while it runs (the
        whole status would ask Docker and the kernelspecs each time)."""
        download = self.extensionapp.download
        self.finish(json.dumps(asdict(download) if download else None))

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        """Downloads the local model in effect from the hub: the person asked for it."""
        try:
            download = self.extensionapp.start_download()
        except ModelError as error:
            raise RunError(409, str(error)) from None
        self.set_status(202)
        self.finish(json.dumps(asdict(download)))

    @tornado.web.authenticated
    @authorized
    async def delete(self) -> None:
        """Cancels the download under way; the download as it is now (null: none was asked)."""
        download = self.extensionapp.cancel_download()
        self.finish(json.dumps(asdict(download) if download else None))


class RunsHandler(AgentHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        """A notebook's runs (`?path=`), or every run, oldest first."""
        path = self.get_query_argument("path", None)
        runs = await self.registry.describe_all(
            None if path is None else self.registry.api_path(path)
        )
        self.finish(json.dumps({"runs": runs}))

    @tornado.web.authenticated
    @authorized
    @runs_code
    async def post(self) -> None:
        app = self.extensionapp
        body = self.body()
        path = self.registry.api_path(_field(body, "path", str))
        prompt = _field(body, "prompt", str)
        if not prompt.strip():
            raise RunError(400, "the field 'prompt' is empty")
        if len(prompt) > app.max_prompt_chars:
            raise RunError(
                413, f"the prompt has {len(prompt)} characters; at most {app.max_prompt_chars}"
            )
        execution = _field(body, "execution", str, app.execution, ("auto", "ask"))
        max_steps = _field(body, "max_steps", int, app.max_steps)
        if not 1 <= max_steps <= app.max_steps:
            raise RunError(400, f"the field 'max_steps' must be from 1 to {app.max_steps}")
        model = _field(body, "model", str, "")
        writer = _field(body, "writer", str, "server", ("server", "frontend"))
        request = RunRequest(
            path,
            prompt,
            execution,
            max_steps,
            writer == "frontend",
            self.current_user.username,
            self.mcp_servers(_field(body, "mcp_servers", dict, {})),
        )
        run = await self.starter.start(request, model)
        self.set_status(201)
        self.set_header("Location", self.request.path.rstrip("/") + "/" + run.id)
        self.finish(json.dumps(run.to_json()))


class NotebookStateHandler(AgentHandler):
    """The agent's state of one notebook, named by the query's `path`."""

    def notebook_path(self) -> str:
        path = self.registry.api_path(self.get_query_argument("path"))
        if not path.endswith(".ipynb"):
            raise RunError(400, f"{path!r} is not a notebook (an .ipynb file)")
        return path


class ConversationHandler(NotebookStateHandler):
    """A notebook's conversation: what the model is sent of its earlier requests."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        """The thread; an empty one, kept nowhere, for a notebook that has none yet."""
        path = self.notebook_path()
        thread = await self.registry.stored_conversation(path)
        self.finish(json.dumps(thread.to_json() | {"path": path}))

    @tornado.web.authenticated
    @authorized
    async def delete(self) -> None:
        """Starts the thread afresh: the next request's model sees none of the earlier ones."""
        path = self.notebook_path()
        self.finish(json.dumps(self.registry.new_conversation(path).to_json() | {"path": path}))


class AllowedToolsHandler(NotebookStateHandler):
    """The MCP tools the person allowed always on a notebook ("Always allow this tool")."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        path = self.notebook_path()
        self.finish(json.dumps({"path": path, "tools": await self.registry.always_allowed(path)}))

    @tornado.web.authenticated
    @authorized
    async def delete(self) -> None:
        """Takes an "always" back: the tool's calls on the notebook wait for the person again."""
        path, tool = self.notebook_path(), self.get_query_argument("tool")
        self.finish(json.dumps({"path": path, "tools": await self.registry.ask_again(path, tool)}))


class RunHandler(AgentHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        self.finish(json.dumps(await self.registry.describe(run_id)))


class StopHandler(AgentHandler):
    @tornado.web.authenticated
    @authorized
    async def post(self, run_id: str) -> None:
        """Answers once the run has stopped: generation cancelled, execution interrupted."""
        run = await self.registry.live(run_id)
        await run.stop()
        self.finish(json.dumps(run.to_json()))


class ContinueHandler(AgentHandler):
    @tornado.web.authenticated
    @authorized
    @runs_code
    async def post(self, run_id: str) -> None:
        """An interrupted run goes on: its thread from the store, its cells by the same ids."""
        mcp_servers = self.going_on_mcp_servers(self.body())
        run = await self.taken_up(run_id)
        refuse_outside_agents(run, "go on with it")
        self.registry.go_on(run, mcp_servers)
        self.finish(json.dumps(run.to_json()))


class CellHandler(AgentHandler):
    @tornado.web.authenticated
    @authorized
    @runs_code
    async def post(self, run_id: str, cell_id: str, action: str) -> None:
        """A verdict on a cell of the run, also of one an earlier server left."""
        run = await self.taken_up(run_id)
        body = self.body()
        if action == "accept":
            self.registry.accept(run, cell_id)
        elif action == "reject":
            run.reject(cell_id, _field(body, "keep_state", bool, False))
        elif action == "restore":
            self.registry.restore(run, cell_id)
        else:
            refuse_outside_agents(run, "rewrite its cell")
            instruction = _field(body, "instruction", str, "")
            if len(instruction) > self.extensionapp.max_prompt_chars:
                raise RunError(413, "the instruction is longer than a prompt may be")
            mcp_servers = self.going_on_mcp_servers(body)
            self.registry.regenerate(run, cell_id, instruction, mcp_servers)
        self.finish(json.dumps(run.to_json()))


class ToolCallHandler(AgentHandler):
    @tornado.web.authenticated
    @authorized
    @runs_code
    async def post(self, run_id: str, call_id: str, action: str) -> None:
        """The person's decision on a call of an MCP tool the run waits on: approve (with
        `always`, every later call of the tool on the notebook too), or deny."""
        always = _field(self.body(), "always", bool, False)
        if always and action == "deny":
            raise RunError(400, "the field 'always' goes with approve, not with deny")
        run = await self.registry.live(run_id)
        run.decide_tool_call(call_id, "always" if always else action)  # type: ignore[arg-type]
        self.finish(json.dumps(run.to_json()))


class EventsHandler(
    WebSocketMixin, tornado.websocket.WebSocketHandler, RegistryMixin, JupyterHandler
):
    """The run's events from `?from=N` on, then live. `?role=writer` says that this client
    applies the cells to the open notebook, so the server stops writing the file meanwhile."""

    run: Run | None
    """The live run; None for one only the store keeps, whose `stored` events are all until
    it is taken up again."""
    stored: list[Event]
    role: str
    _unsubscribe: Any = None

    def set_default_headers(self) -> None:
        """Not the JSON headers of a REST reply: this is a WebSocket."""

    @ws_authenticated
    async def get(self, run_id: str) -> None:
        if not self.authorizer.is_authorized(self, self.current_user, "read", AUTH_RESOURCE):
            raise tornado.web.HTTPError(403, "not authorized to read the agent's runs")
        try:
            first = self.get_query_argument("from", "0")
            if not re.fullmatch(r"[0-9]{1,18}", first):  # not "²", nor 5,000 digits
                raise RunError(400, "the query argument 'from' must be a whole number")
            self.first = int(first)
            self.role = self.get_query_argument("role", "viewer")
            if self.role not in ("viewer", "writer"):
                raise RunError(400, "the query argument 'role' must be 'viewer' or 'writer'")
            self.run = self.registry.runs.get(run_id)
            self.stored = []
            if self.run is None:
                await self.registry.describe(run_id)  # 404 for none
                self.stored = await self.registry.store.events(run_id, self.first)
        except RunError as error:
            raise tornado.web.HTTPError(error.status, str(error)) from None
        await super().get(run_id)

    def open(self, run_id: str) -> None:  # type: ignore[override]
        super().open()
        for event in self.stored:  # of a run that ended with an earlier server
            self._send(event)
        run = self.run or self.registry.runs.get(run_id)
        if run is None:  # until it is taken up again
            self._unsubscribe = self.registry.await_revival(run_id, self._follow)
        else:
            self._follow(run)

    def _follow(self, run: Run) -> None:
        """Backlog, then live, with no await between: nothing is missed, nothing comes twice."""
        self.run = run
        for event in run.events.events[self.first + len(self.stored) :]:
            self._send(event)
        self._unsubscribe = run.events.subscribe(self._send)
        if self.role == "writer":
            run.writer.frontend_attached()

    def _send(self, event: Event) -> None:
        try:
            self.write_message(json.dumps(event))
        except tornado.websocket.WebSocketClosedError:
            self._stop_listening()

    def on_message(self, message: str | bytes) -> None:
        """Clients only listen; actions go over REST."""

    def on_close(self) -> None:
        # A writer that closes saying it handed over (the run finished, and the notebook it
        # applied every event to stays open) leaves the file to that notebook's own saves.
        active = self.run is not None and self.run.active
        self._stop_listening(handed_over=self.close_code == HANDED_OVER and not active)

    def _stop_listening(self, handed_over: bool = False) -> None:
        if self._unsubscribe is None:
            return
        self._unsubscribe()
        self._unsubscribe = None
        if self.role == "writer" and self.run is not None:
            self.run.writer.frontend_detached(handed_over)


#: The close code of a writer that applied every event of a finished run to a notebook that
#: stays open (it follows the notebook's next run now).
HANDED_OVER = 4000

_RUN = r"(?P<run_id>[^/]+)"


class McpHandler(AgentHandler):
    """The MCP endpoint (streamable HTTP): the SDK's transport behind the server's own auth, so
    an outside agent presents the server's token (or the hub's), as any client of its API."""

    exchange: AsgiExchange | None = None

    async def _serve(self) -> None:
        extra = {USER_KEY: self.current_user.username}
        self.exchange = AsgiExchange(self, extra)
        await self.exchange.run(self.extensionapp.mcp.handle)

    def on_connection_close(self) -> None:
        if self.exchange:
            self.exchange.closed.set()

    def finish(self, *args: Any, **kwargs: Any) -> Any:
        """The transport's own content type (JSON, or a stream of server-sent events)."""
        kwargs.setdefault("set_content_type", self._headers.get("Content-Type", "application/json"))
        return super().finish(*args, **kwargs)

    @tornado.web.authenticated
    @authorized
    @runs_code
    async def post(self) -> None:
        """A message from the outside agent: its tools add cells and run code."""
        await self._serve()

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        """The stream of the server's own messages to the outside agent."""
        await self._serve()

    @tornado.web.authenticated
    @authorized
    async def delete(self) -> None:
        """The outside agent ends its MCP session."""
        await self._serve()


ROUTES: list[tuple[str, type[JupyterHandler]]] = [
    (r"/notebook-agent/status", StatusHandler),
    (r"/notebook-agent/model", ModelHandler),
    (r"/notebook-agent/model/endpoint-models", EndpointModelsHandler),
    (r"/notebook-agent/local-model/download", LocalModelDownloadHandler),
    (r"/notebook-agent/runs", RunsHandler),
    (r"/notebook-agent/conversation", ConversationHandler),
    (r"/notebook-agent/allowed-tools", AllowedToolsHandler),
    (rf"/notebook-agent/runs/{_RUN}", RunHandler),
    (rf"/notebook-agent/runs/{_RUN}/stop", StopHandler),
    (rf"/notebook-agent/runs/{_RUN}/continue", ContinueHandler),
    (
        rf"/notebook-agent/runs/{_RUN}/cells/(?P<cell_id>[^/]+)/(?P<action>accept|reject|restore|regenerate)",
        CellHandler,
    ),
    (
        rf"/notebook-agent/runs/{_RUN}/tool-calls/(?P<call_id>[^/]+)/(?P<action>approve|deny)",
        ToolCallHandler,
    ),
    (rf"/notebook-agent/runs/{_RUN}/events", EventsHandler),
    (r"/notebook-agent/mcp", McpHandler),
]
