"""A client of the extension's REST and WebSocket API that holds every answer to rest-api.yml."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012
from tornado.httpclient import HTTPClientError

import jupyter_notebook_agent

SPEC_PATH = Path(jupyter_notebook_agent.__file__).parent / "server" / "rest-api.yml"
SPEC = yaml.safe_load(SPEC_PATH.read_text())
_REGISTRY = Registry().with_resource("spec", DRAFT202012.create_resource(SPEC))


def _validator(schema: dict[str, Any]) -> Draft202012Validator:
    """Validates against a schema of the spec, its `#/components/...` references resolved."""
    rooted = json.loads(json.dumps(schema).replace('"#/', '"spec#/'))
    return Draft202012Validator(rooted, registry=_REGISTRY)


def spec_operation(method: str, path: str) -> dict[str, Any]:
    """The operation of the spec whose path template matches the concrete path."""
    for template, item in SPEC["paths"].items():
        pattern = re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path) and method.lower() in item:
            return item[method.lower()]
    raise AssertionError(f"{method} {path} is not in rest-api.yml")


def response_schema(method: str, path: str, status: int) -> dict[str, Any]:
    responses = spec_operation(method, path)["responses"]
    assert str(status) in responses, f"{method} {path} answered {status}, not in rest-api.yml"
    response = responses[str(status)]
    if "$ref" in response:
        response = SPEC["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    return response["content"]["application/json"]["schema"]


def check_against_spec(method: str, path: str, status: int, body: Any) -> None:
    _validator(response_schema(method, path, status)).validate(body)


def check_event(event: dict[str, Any]) -> None:
    _validator({"$ref": "#/components/schemas/Event"}).validate(event)


class AgentAPI:
    """`jp_fetch` and `jp_ws_fetch` for this extension; answers are checked against the spec."""

    def __init__(self, jp_fetch: Any, jp_ws_fetch: Any) -> None:
        self.fetch, self.ws_fetch = jp_fetch, jp_ws_fetch

    async def call(
        self,
        method: str,
        route: str,
        body: Any = None,
        *,
        expect: int = 200,
        params: dict[str, str] | None = None,
    ) -> Any:
        kwargs: dict[str, Any] = {"method": method}
        if method in ("POST", "PUT"):
            kwargs["body"] = body if isinstance(body, (str, bytes)) else json.dumps(body or {})
        if params:
            kwargs["params"] = params
        try:
            response = await self.fetch("notebook-agent", *route.split("/"), **kwargs)
            status, raw = response.code, response.body
        except HTTPClientError as error:
            assert error.response is not None
            status, raw = error.code, error.response.body
        answer = json.loads(raw)
        assert status == expect, f"{method} {route}: {status} {answer}"
        check_against_spec(method, "/" + route, status, answer)
        return answer

    async def start(self, path: str, prompt: str = "do the task", **options: Any) -> dict:
        body = {"path": path, "prompt": prompt, **options}
        return await self.call("POST", "runs", body, expect=201)

    async def run(self, run_id: str) -> dict:
        return await self.call("GET", f"runs/{run_id}")

    async def finished(self, run_id: str, timeout_s: float = 60) -> dict:
        """The run, once it has finished."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            run = await self.run(run_id)
            if run["state"] == "finished":
                return run
            assert asyncio.get_running_loop().time() < deadline, f"run still going: {run}"
            await asyncio.sleep(0.05)

    async def events(self, run_id: str, first: int = 0, role: str = "viewer") -> Any:
        return await self.ws_fetch(
            "notebook-agent",
            "runs",
            run_id,
            "events",
            params={"from": str(first), "role": role},
        )


async def receive_until(socket: Any, stop: str, timeout_s: float = 60) -> list[dict[str, Any]]:
    """Events from the socket up to and including the first of type `stop`."""
    events: list[dict[str, Any]] = []
    while True:
        message = await asyncio.wait_for(socket.read_message(), timeout_s)
        assert message is not None, f"the socket closed after {events}"
        event = json.loads(message)
        check_event(event)
        events.append(event)
        if event["type"] == stop:
            return events


class NotebookKernel:
    """The person's side of a notebook's kernel: its channels over the server's WebSocket, as
    JupyterLab uses them, to run the person's cells."""

    def __init__(self, jp_ws_fetch: Any, kernel_id: str) -> None:
        self.ws_fetch, self.kernel_id = jp_ws_fetch, kernel_id
        self.socket: Any = None
        self.session = uuid.uuid4().hex

    async def __aenter__(self) -> NotebookKernel:
        self.socket = await self.ws_fetch("api", "kernels", self.kernel_id, "channels")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.socket.close()

    def send(self, code: str) -> str:
        """Sends the cell; its msg_id, for `outcome`."""
        msg_id = uuid.uuid4().hex
        header = {
            "msg_id": msg_id,
            "msg_type": "execute_request",
            "username": "person",
            "session": self.session,
            "date": "2026-01-01T00:00:00Z",
            "version": "5.3",
        }
        content = {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        }
        message = {"header": header, "parent_header": {}, "metadata": {}, "content": content}
        self.socket.write_message(json.dumps(message | {"channel": "shell", "buffers": []}))
        return msg_id

    async def outcome(self, msg_id: str, timeout_s: float = 60) -> tuple[str, int | None]:
        """What the cell printed (errors as `ename: evalue`) and its execution count, once the
        kernel is idle after it."""
        text, count = "", None
        while True:
            raw = await asyncio.wait_for(self.socket.read_message(), timeout_s)
            assert raw is not None, "the kernel's WebSocket closed"
            message = json.loads(raw)
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = message["header"]["msg_type"], message["content"]
            if kind == "stream":
                text += content["text"]
            elif kind == "error":
                text += f"{content['ename']}: {content['evalue']}"
            elif kind == "execute_input":
                count = content["execution_count"]
            elif kind == "status" and content["execution_state"] == "idle":
                return text, count

    async def run(self, code: str, timeout_s: float = 60) -> tuple[str, int | None]:
        return await self.outcome(self.send(code), timeout_s)
