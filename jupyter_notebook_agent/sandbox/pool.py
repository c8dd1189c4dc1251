"""A warm pool of sandbox kernels, owned by the server process, so a first execution is fast.

Each entry is a whole sandbox kernel started ahead of need, with an empty staging folder mounted at
the path of the server's root, and checked ready (it answered kernel_info). A kernel claims one in
milliseconds: the notebook's folder is lent into the staging folder (sandbox/lending.py), and the
kernel adopts the container and its connection, and leaves the notebook's folder in a file that
the kernel reads before it runs any code (an IPython pre_execute hook the pool installed), so no
round trip waits. Only a server that can make mounts (one run as root) keeps a pool.
An entry is handed out once, never returned; the pool refills in the background, and replaces
entries that grow old.
A kernel with mounts of its own, another image, or a folder outside the root takes the cold path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from traitlets.config import Config

from . import SANDBOX_KERNEL
from .image import default_image
from .lending import release_views

log = logging.getLogger(__name__)
#: The longest wait before the pool replaces old kernels or retries ones that failed to start.
RECYCLE_EVERY_S = 10.0
#: How long after a claim that leaves kernels ready the pool waits to start a replacement: a
#: container starting meanwhile slows the claimed kernel's first replies several times over.
REFILL_DELAY_S = 1.0
#: Where a claim leaves the notebook's folder, in the kernel's socket folder (mounted alike).
FOLDER_FILE = "folder"
#: Run in each warm kernel: before any code runs, move to the folder a claim left, once.
MOVE_ON_CLAIM = """
def _move_on_claim(path):
    import os
    shell = get_ipython()
    def move():
        try:
            with open(path) as file:
                folder = file.read()
        except FileNotFoundError:
            return
        os.chdir(folder)
        shell.events.unregister("pre_execute", move)
    shell.events.register("pre_execute", move)
_move_on_claim({path!r})
del _move_on_claim
"""


@dataclass
class WarmKernel:
    manager: AsyncKernelManager
    client: AsyncKernelClient
    """Connected and ready, so that a claim can nudge the kernel into its folder at once."""
    started: float


class WarmPool:
    """The server's warm kernels. `WarmPool.current` is the one the provisioner claims from."""

    current: WarmPool | None = None

    def __init__(
        self, root: Path, *, size: int = 2, max_age_s: float = 1800.0, config: Config | None = None
    ) -> None:
        self.root = root.resolve()
        self.size = size
        self.max_age_s = max_age_s
        self.config = Config(config or {})
        # The pool's own kernels start cold, with nothing lent yet: they are what others claim.
        self.config.merge(Config({"DockerSandbox": {"use_warm_pool": False, "warm": True}}))
        self.ready: list[WarmKernel] = []
        self._starting: set[asyncio.Task[None]] = set()
        self._recycler: asyncio.Task[None] | None = None
        self._grown = asyncio.Event()
        self._closed = False

    @property
    def image(self) -> str:
        return self.config.get("DockerSandbox", {}).get("image") or default_image()

    def start(self) -> None:
        """Fills the pool and keeps it fresh, in the background; makes it the current pool."""
        WarmPool.current = self
        self.refill()
        self._recycler = asyncio.create_task(self._recycle())

    def refill(self) -> None:
        if self._closed:
            return
        for _ in range(self.size - len(self.ready) - len(self._starting)):
            task = asyncio.create_task(self._start_one())
            self._starting.add(task)
            task.add_done_callback(self._starting.discard)

    async def _start_one(self) -> None:
        manager = AsyncKernelManager(kernel_name=SANDBOX_KERNEL, config=self.config)
        client = None
        try:
            await manager.start_kernel(cwd=str(self.root))
            client = manager.client()  # after the start, which settles the connection
            client.start_channels()
            await client.wait_for_ready(timeout=120)
            path = str(manager.provisioner.socket_dir / FOLDER_FILE)
            reply = await client.execute_interactive(
                MOVE_ON_CLAIM.format(path=path), silent=True, store_history=False, timeout=30
            )
            if reply["content"]["status"] != "ok":
                raise RuntimeError(f"the pool's setup failed in the kernel: {reply['content']}")
        except Exception:
            log.exception("a warm sandbox kernel did not start; the pool will try again")
            if client:
                client.stop_channels()
            with contextlib.suppress(Exception):
                await manager.shutdown_kernel(now=True)
            return
        self.ready.append(WarmKernel(manager, client, time.monotonic()))
        self._grown.set()

    async def full(self) -> None:
        """Returns once every place in the pool holds a ready kernel."""
        while len(self.ready) < self.size:
            self._grown.clear()
            await self._grown.wait()

    def claim(self, image: str, cwd: str) -> WarmKernel | None:
        """A ready kernel for a notebook in `cwd`, or None when it must start cold."""
        if image != self.image or not Path(cwd).resolve().is_relative_to(self.root):
            return None
        fresh = [w for w in self.ready if time.monotonic() - w.started < self.max_age_s]
        if not fresh:
            return None
        warm = fresh[0]
        self.ready.remove(warm)
        if self.ready:  # a container's start would slow the claimed kernel's first moments
            asyncio.get_running_loop().call_later(REFILL_DELAY_S, self.refill)
        else:
            self.refill()
        return warm

    async def _recycle(self) -> None:
        """Replaces old kernels, and tops up after starts that failed."""
        while True:
            await asyncio.sleep(min(max(self.max_age_s / 10, 1.0), RECYCLE_EVERY_S))
            for warm in [w for w in self.ready if time.monotonic() - w.started >= self.max_age_s]:
                self.ready.remove(warm)
                await self._discard(warm)
            self.refill()

    @staticmethod
    async def _discard(warm: WarmKernel) -> None:
        warm.client.stop_channels()
        await warm.manager.shutdown_kernel(now=True)

    async def close(self) -> None:
        """Stops refilling and removes every kernel not yet claimed. Starts under way are let
        finish, then removed: cancelled midway, the engine would still create their containers,
        with nothing left to remove them."""
        self._closed = True
        if WarmPool.current is self:
            WarmPool.current = None
        if self._recycler:
            self._recycler.cancel()
            await asyncio.gather(self._recycler, return_exceptions=True)
        await asyncio.gather(*self._starting, return_exceptions=True)
        for warm in self.ready:
            await self._discard(warm)
        self.ready.clear()
        await asyncio.to_thread(release_views, self.root)
