"""The Jupyter server extension: its configuration (`c.NotebookAgent.*`) and its handlers."""

from __future__ import annotations

import asyncio
from pathlib import Path

from jupyter_server.extension.application import ExtensionApp
from jupyter_server.serverapp import ServerApp
from traitlets import Bool, Enum, Integer, Unicode

from ..sandbox import docker_problem
from ..sandbox.image import build_instructions, default_image, image_exists
from ..sandbox.pool import WarmPool
from .handlers import StatusHandler


class NotebookAgent(ExtensionApp):
    """Runs the notebook agent for the people using this Jupyter server."""

    name = "jupyter_notebook_agent"

    model = Unicode(
        "gpt-4o-mini",
        config=True,
        help="Model string `[backend:]name`: `gpt-4o-mini`, `openai:qwen2.5-coder`, "
        "`replay:/path/recording.json`.",
    )
    base_url = Unicode(
        "", config=True, help="Base URL of an OpenAI-compatible endpoint; empty for OpenAI's."
    )
    max_steps = Integer(30, config=True, help="Model turns a run may take before it fails.")
    execution = Enum(
        ["auto", "ask"],
        "auto",
        config=True,
        help="`auto` runs each proposed code cell at once; `ask` runs it once it is accepted.",
    )
    allow_unsandboxed = Bool(
        False,
        config=True,
        help="Run generated code in a local kernel on this machine when no sandbox is available.",
    )

    warm_pool_size = Integer(
        2,
        config=True,
        help="Sandbox kernels kept started ahead of need, so a first execution is fast; 0: none.",
    )

    pool: WarmPool | None = None

    def initialize_handlers(self) -> None:
        self.handlers.append((r"/notebook-agent/status", StatusHandler))

    async def _start_jupyter_server_extension(self, serverapp: ServerApp) -> None:
        """Starts the warm pool where sandbox kernels can run; it never builds the image."""
        if self.warm_pool_size < 1:
            return
        problem = await asyncio.to_thread(docker_problem)
        if problem is None and not await asyncio.to_thread(image_exists, default_image()):
            problem = f"the sandbox image is missing ({build_instructions(default_image())})"
        if problem:
            self.log.warning("No warm pool of sandbox kernels: %s", problem)
            return
        self.pool = WarmPool(
            Path(serverapp.root_dir), size=self.warm_pool_size, config=serverapp.config
        )
        self.pool.start()

    async def stop_extension(self) -> None:
        if self.pool:
            await self.pool.close()
