"""An OpenAI-compatible HTTP server that streams a recording: real SSE chunks for real clients.

Tests point the real `openai` client at it; demos and UI tests point a whole server at it.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web

from ..llm.base import ModelTurn, TextDelta
from ..llm.replay import delta_delays, load_recording, turn_deltas, turn_number


@dataclass
class ReplayScript:
    """What the server answers: the recorded turns, and faults to inject before them."""

    turns: list[ModelTurn]
    model: str = "replay"
    speed: float = 0.0
    """0 streams at once; 1 keeps the recorded timing."""
    api_key: str | None = None
    """When set, requests must carry it as a bearer token, or get 401."""
    faults: list[int] = field(default_factory=list)
    """HTTP status codes to answer, one per request, before serving turns."""
    retry_after_ms: int | None = None
    """Sent with each fault as `retry-after-ms`; None leaves the client to its own backoff."""
    requests: list[dict[str, Any]] = field(default_factory=list)
    """Every request body received, in order, for tests to inspect."""
    arrival_times: list[float] = field(default_factory=list)
    """When each request arrived (time.monotonic)."""


def _error(handler: tornado.web.RequestHandler, status: int, message: str, code: str) -> None:
    handler.set_status(status)
    handler.set_header("Content-Type", "application/json")
    handler.finish({"error": {"message": message, "type": code, "code": code}})


class ChatCompletionsHandler(tornado.web.RequestHandler):
    def initialize(self, scripts: dict[str, ReplayScript]) -> None:
        self.scripts = scripts

    async def post(self) -> None:
        try:
            body = json.loads(self.request.body)
        except ValueError:
            return _error(self, 400, "the request body is not JSON", "invalid_request_error")
        model = body.get("model") if isinstance(body, dict) else None
        script = self.scripts.get(model) if isinstance(model, str) else None
        if script is None and len(self.scripts) > 1:
            return _error(self, 404, f"The model `{model}` does not exist.", "model_not_found")
        script = self.script = script or next(iter(self.scripts.values()))
        if (
            script.api_key
            and self.request.headers.get("Authorization") != f"Bearer {script.api_key}"
        ):
            return _error(self, 401, "Incorrect API key provided.", "invalid_api_key")
        script.requests.append(body)
        script.arrival_times.append(time.monotonic())
        if script.faults:
            status = script.faults.pop(0)
            if script.retry_after_ms is not None:
                self.set_header("retry-after-ms", str(script.retry_after_ms))
            return _error(self, status, f"injected fault {status}", "server_error")
        if body.get("model") != script.model:
            message = f"The model `{body.get('model')}` does not exist."
            return _error(self, 404, message, "model_not_found")
        if not body.get("stream"):
            return _error(self, 400, "this server only streams", "invalid_request_error")
        number = turn_number(body.get("messages", []))
        if number >= len(script.turns):
            message = f"the recording has {len(script.turns)} turns; asked for turn {number + 1}"
            return _error(self, 400, message, "invalid_request_error")
        await self._stream(script.turns[number])

    async def _stream(self, turn: ModelTurn) -> None:
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        base = {"id": f"chatcmpl-{id(turn)}", "object": "chat.completion.chunk"}
        base |= {"created": int(time.time()), "model": self.script.model}
        deltas = list(turn_deltas(turn))
        delays = delta_delays(turn, len(deltas), self.script.speed)
        for delta, delay in zip(deltas, delays, strict=True):
            if delay:
                await asyncio.sleep(delay)
            if isinstance(delta, TextDelta):
                payload: dict[str, Any] = {"content": delta.text}
            else:
                function = {"arguments": delta.arguments} | (
                    {"name": delta.name} if delta.name else {}
                )
                call = {"index": delta.index, "function": function}
                call |= {"id": delta.id, "type": "function"} if delta.id else {}
                payload = {"tool_calls": [call]}
            await self._send(base, [{"index": 0, "delta": payload, "finish_reason": None}])
        finish = "length" if turn.cut_short else "tool_calls" if turn.tool_calls else "stop"
        await self._send(base, [{"index": 0, "delta": {}, "finish_reason": finish}])
        usage = turn.usage
        total = usage.prompt_tokens + usage.completion_tokens
        await self._send(
            base,
            [],
            usage={
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": total,
            },
        )
        self.write("data: [DONE]\n\n")
        self.finish()

    async def _send(
        self, base: dict[str, Any], choices: list[dict[str, Any]], **extra: Any
    ) -> None:
        self.write(f"data: {json.dumps(base | {'choices': choices} | extra)}\n\n")
        await self.flush()


class ModelsHandler(tornado.web.RequestHandler):
    def initialize(self, scripts: dict[str, ReplayScript]) -> None:
        self.scripts = scripts

    def get(self) -> None:
        """Every recording's model, to a client with a key one of them takes (or any client,
        where none wants a key), as an endpoint lists the models a key may use."""
        keys = {f"Bearer {script.api_key}" for script in self.scripts.values() if script.api_key}
        if keys and self.request.headers.get("Authorization") not in keys:
            return _error(self, 401, "Incorrect API key provided.", "invalid_api_key")
        models = [{"id": name, "object": "model"} for name in self.scripts]
        self.finish({"object": "list", "data": models})


def make_app(scripts: dict[str, ReplayScript]) -> tornado.web.Application:
    return tornado.web.Application(
        [
            (r"/v1/chat/completions", ChatCompletionsHandler, {"scripts": scripts}),
            (r"/v1/models", ModelsHandler, {"scripts": scripts}),
        ]
    )


def script_from_file(path: str | Path, **options: Any) -> ReplayScript:
    model, turns = load_recording(path)
    return ReplayScript(turns=turns, model=model, **options)


class ReplayServerThread:
    """Serves a script on 127.0.0.1 from a thread of its own, so a test can drive a subprocess;
    or several, each under its recorded model's name."""

    def __init__(self, script: ReplayScript | list[ReplayScript], port: int = 0) -> None:
        scripts = script if isinstance(script, list) else [script]
        self.script = scripts[0]
        self.scripts = {each.model: each for each in scripts}
        self._sockets = tornado.netutil.bind_sockets(port, "127.0.0.1")
        self.port = self._sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = tornado.httpserver.HTTPServer(make_app(self.scripts))
        server.add_sockets(self._sockets)
        self._loop.run_forever()
        server.stop()

    def __enter__(self) -> ReplayServerThread:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
