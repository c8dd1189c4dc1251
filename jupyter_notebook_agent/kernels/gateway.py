"""Kernels on a Jupyter Enterprise Gateway (or Kernel Gateway), through jupyter_server's classes.

A server started with `--gateway-url` needs none of this to start kernels there: its kernel
manager is then jupyter_server's gateway one. What the agent adds: a kernel client whose channels
survive a long silent computation, answer without a ~40 ms stall per message and wait without
keeping a core busy; errors that name the gateway and the timeout to raise; and the command
line's kernel start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import time
from collections.abc import Callable, Iterator
from queue import Empty
from typing import Any

import websocket
from jupyter_server.gateway import managers
from jupyter_server.gateway.gateway_client import GatewayClient, gateway_request
from tornado.escape import json_decode, utf8
from tornado.web import HTTPError

from .session import JupyterKernelSession

#: The longest pause between two looks at a channel's queue while it stays empty.
MAX_POLL_S = 0.02
#: Words of a gateway's refusal that say its own wait for the kernel ran out.
_LAUNCH_TIMED_OUT = re.compile(r"too long|timed? ?out|did not start|didn't start", re.IGNORECASE)


class GatewayError(Exception):
    """The gateway did not start or connect a kernel; the message says what to do."""


class GatewayKernelClient(managers.GatewayKernelClient):
    """jupyter_server's client of a gateway kernel, with three of its habits changed.

    Its WebSocket kept the KERNEL_LAUNCH_TIMEOUT it connected with as the timeout of every
    receive, so a cell that printed nothing for that long (40 s by default) ended the channels;
    it acknowledged the gateway's packets late, and the gateway (Nagle's algorithm on) held each
    next message of a reply until then, about 40 ms; and it polled its queues with
    `asyncio.sleep(0)`, a busy loop that held a core while a cell ran.
    """

    def stop_channels(self) -> None:
        """Also for channels that never opened (the gateway refused the WebSocket)."""
        if self.channel_socket is not None:
            super().stop_channels()

    def _route_responses(self) -> None:
        """The router thread: each message into its channel's queue, as jupyter_server's does,
        with no timeout between messages and each packet acknowledged at once (TCP_QUICKACK,
        which Linux resets, so before every receive)."""
        assert self.channel_socket is not None and self._channel_queues is not None
        self.channel_socket.settimeout(None)
        quick_ack = getattr(socket, "TCP_QUICKACK", None)
        try:
            while not self._channels_stopped:
                if quick_ack is not None:
                    self.channel_socket.sock.setsockopt(socket.IPPROTO_TCP, quick_ack, 1)
                raw = self.channel_socket.recv()
                if not raw:
                    break
                message = json_decode(utf8(raw))
                self._channel_queues[message["channel"]].put_nowait(message)
        except websocket.WebSocketConnectionClosedException:
            pass  # the channels were stopped, or the gateway went
        except Exception as error:
            if not self._channels_stopped:
                self.log.warning("The gateway kernel's channels ended: %s", error)
        for queue in self._channel_queues.values():
            queue.response_router_finished = True

    async def get_shell_msg(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return await _receive(self.shell_channel, kwargs.get("timeout"))

    async def get_iopub_msg(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return await _receive(self.iopub_channel, kwargs.get("timeout"))

    async def get_control_msg(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return await _receive(self.control_channel, kwargs.get("timeout"))

    async def get_stdin_msg(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return await _receive(self.stdin_channel, kwargs.get("timeout"))


async def _receive(channel: managers.ChannelQueue, timeout: float | None) -> dict[str, Any]:
    """The channel's next message; queue.Empty after `timeout` seconds. While none comes, the
    pauses between looks grow to MAX_POLL_S, so a burst is read at once and a silence is cheap."""
    deadline = None if timeout is None else time.monotonic() + timeout
    pause = 0.0
    while True:
        try:
            message = channel.get(block=False)
        except Empty:
            if channel.response_router_finished:
                raise RuntimeError("the gateway closed the kernel's channels") from None
            if deadline is not None and time.monotonic() >= deadline:
                raise
            await asyncio.sleep(pause)
            pause = min(max(2 * pause, 0.001), MAX_POLL_S)
        else:
            channel.task_done()
            return message


def use_agent_client(manager: managers.GatewayKernelManager) -> None:
    """Makes the manager's clients the agent's GatewayKernelClient."""
    manager.client_factory = GatewayKernelClient


def explain(error: BaseException, doing: str) -> GatewayError:
    """What went wrong with the gateway while `doing` (e.g. "starting the kernel 'python3'"),
    naming its URL and, for a timeout, which one to raise and how."""
    client = GatewayClient.instance()
    url = client.url
    launch_s = GatewayClient.KERNEL_LAUNCH_TIMEOUT
    raise_launch = (
        f"A kernel's start may take up to KERNEL_LAUNCH_TIMEOUT ({launch_s} s) on the gateway, "
        "and GatewayClient.request_timeout is kept at least launch_timeout_pad "
        f"({client.launch_timeout_pad:g} s) above it; "
        "to allow slower starts (a Kubernetes pod pulling its image), raise KERNEL_LAUNCH_TIMEOUT "
        "in the environment of this server or command, and request_timeout follows."
    )
    cause = error.__cause__ if isinstance(error, HTTPError) else error
    reason = _reason(error)
    if isinstance(cause, ConnectionError | socket.gaierror):
        what = "its host is unknown" if isinstance(cause, socket.gaierror) else str(cause)
        message = (
            f"no kernel gateway answers at {url} ({what}) while {doing}: check that the gateway "
            "runs and that --gateway-url (c.GatewayClient.url) names it"
        )
    elif "Timeout while connecting" in reason:
        message = (
            f"the kernel gateway at {url} did not accept a connection within "
            f"GatewayClient.connect_timeout ({client.connect_timeout:g} s) while {doing}; raise it "
            "(c.GatewayClient.connect_timeout or JUPYTER_GATEWAY_CONNECT_TIMEOUT) if the gateway "
            "is only slow to reach"
        )
    elif "Timeout during request" in reason:
        message = (
            f"the kernel gateway at {url} did not answer within GatewayClient.request_timeout "
            f"({client.request_timeout:g} s) while {doing}. {raise_launch}"
        )
    elif isinstance(error, websocket.WebSocketTimeoutException | socket.timeout):
        message = (
            f"the kernel's channels (a WebSocket to the gateway at {url}) did not open within "
            f"KERNEL_LAUNCH_TIMEOUT ({launch_s} s) while {doing}; raise KERNEL_LAUNCH_TIMEOUT"
        )
    elif isinstance(error, HTTPError) and _LAUNCH_TIMED_OUT.search(reason):
        message = f"the kernel gateway at {url} gave up while {doing}: {reason}. {raise_launch}"
    else:
        message = f"the kernel gateway at {url} failed while {doing}: {reason}"
    return GatewayError(message)


def _reason(error: BaseException) -> str:
    """The words of an error; for a gateway's refusal, the reason the gateway gave (which
    jupyter_server's own message repeats, with advice about the URL)."""
    answer = getattr(error.__cause__, "response", None)
    if isinstance(error, HTTPError) and answer is not None:
        try:
            payload = json.loads(answer.body)
        except ValueError:
            payload = {}
        said = isinstance(payload, dict) and (payload.get("reason") or payload.get("message"))
        if said:
            return f"HTTP {answer.code}: {said}"
    if isinstance(error, HTTPError):
        said = error.log_message % error.args if error.log_message and error.args else ""
        return said or error.reason or f"HTTP {error.status_code}"
    return str(error) or type(error).__name__


@contextlib.contextmanager
def explained(doing: str, *, gateway: bool = True) -> Iterator[None]:
    """A failure while `doing` becomes what it means on the gateway (`explain`); a kernel of
    this machine (`gateway` false) keeps its own errors."""
    try:
        yield
    except Exception as error:
        if not gateway:
            raise
        raise explain(error, doing) from error


async def connected_session(
    manager: Any,
    kernel_name: str,
    *,
    gateway: bool = True,
    shared: bool = False,
    on_wait: Callable[[], None] | None = None,
) -> JupyterKernelSession:
    """The agent's session of a started kernel, connected and ready; a gateway's kernel is
    reached over the agent's own client. `shared`: a notebook's kernel (see JupyterKernelSession),
    which may first be busy with the person's cell (`on_wait` is told)."""
    if gateway:
        use_agent_client(manager)
    session = JupyterKernelSession(manager, shared=shared)
    with explained(f"connecting to the kernel {kernel_name!r}", gateway=gateway):
        await session.connect(on_wait)
    return session


def use_gateway(url: str) -> None:
    """Points jupyter_server's GatewayClient, a singleton of the process, at the gateway."""
    GatewayClient.instance().url = url


async def kernel_specs(url: str) -> dict[str, Any]:
    """The gateway's kernelspecs, as a kernel spec manager's get_all_specs() gives them (which
    GatewayKernelSpecManager does only inside a server)."""
    use_gateway(url)
    try:
        response = await gateway_request(
            managers.GatewayKernelSpecManager().base_endpoint, method="GET"
        )
    except Exception as error:
        raise explain(error, "listing its kernelspecs") from error
    return json_decode(response.body)["kernelspecs"]


async def start_kernel(url: str, kernel_name: str, cwd: str) -> JupyterKernelSession:
    """A kernel of the gateway's kernelspec, connected and ready; the gateway shuts it down when
    the session does. `cwd` reaches the gateway as KERNEL_WORKING_DIR."""
    use_gateway(url)
    manager = managers.GatewayKernelManager(kernel_name=kernel_name)
    with explained(f"starting the kernel {kernel_name!r}"):
        await manager.start_kernel(kernel_name=kernel_name, cwd=cwd)
    return await connected_session(manager, kernel_name)
