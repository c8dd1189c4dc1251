"""The WebSocket between JupyterLab and a notebook's kernel, with its replies sent at once."""

from __future__ import annotations

from typing import Any

from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection


class PromptKernelWebsocketConnection(ZMQChannelsWebsocketConnection):
    """jupyter_server's kernel connection with Nagle's algorithm off. A reply is several
    messages in a row (busy, the reply, idle): with it on, each after the first waited for the
    browser's delayed acknowledgement, about 40 ms, on every cell the person or the agent ran."""

    async def connect(self) -> Any:
        self.websocket_handler.set_nodelay(True)
        return await super().connect()


def prompt_kernel_websockets(settings: dict[str, Any]) -> bool:
    """Makes the web app's kernel connections prompt, where they are jupyter_server's own (a
    gateway's, or one the person configured, stay as they are); whether it did."""
    if settings.get("kernel_websocket_connection_class") is not ZMQChannelsWebsocketConnection:
        return False
    settings["kernel_websocket_connection_class"] = PromptKernelWebsocketConnection
    return True
