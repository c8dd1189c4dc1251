"""An ASGI application served by a Tornado handler: the MCP SDK's streamable-HTTP transport is
ASGI, and the Jupyter server is Tornado. The handler has authenticated and authorized the request
before the application sees it; a streamed response (server-sent events) is flushed as it comes,
and the application hears when the client goes away."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from tornado.web import RequestHandler

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]


class AsgiExchange:
    """One request through an ASGI application, on the handler's connection."""

    def __init__(self, handler: RequestHandler, extra: dict[str, Any] | None = None) -> None:
        self.handler = handler
        request = handler.request
        host, _, port = request.host.rpartition(":")
        self.scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": request.version.removeprefix("HTTP/"),
            "method": request.method,
            "scheme": request.protocol,
            "path": request.path,
            "raw_path": request.path.encode(),
            "query_string": request.query.encode(),
            "root_path": "",
            "headers": [
                (name.lower().encode("latin-1"), value.encode("latin-1"))
                for name, value in request.headers.get_all()
            ],
            "client": (request.remote_ip, 0),
            "server": (host or request.host, int(port) if port.isdigit() else 80),
            **(extra or {}),
        }
        self._body_sent = False
        self.closed = asyncio.Event()
        """The client went away (the handler's on_connection_close sets it)."""
        self.finished = False

    async def run(self, app: ASGIApp) -> None:
        await app(self.scope, self._receive, self._send)
        if not self.finished and not self.closed.is_set():
            self.handler.finish()

    async def _receive(self) -> Message:
        if not self._body_sent:
            self._body_sent = True
            return {"type": "http.request", "body": self.handler.request.body, "more_body": False}
        await self.closed.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: Message) -> None:
        if self.closed.is_set() or self.finished:
            return
        handler = self.handler
        if message["type"] == "http.response.start":
            handler.set_status(message["status"])
            handler.clear_header("Content-Type")
            for name, value in message.get("headers", []):
                handler.add_header(name.decode("latin-1"), value.decode("latin-1"))
        elif message["type"] == "http.response.body":
            if body := message.get("body"):
                handler.write(body)
            if message.get("more_body"):
                await handler.flush()
            else:
                self.finished = True
                await handler.finish()
