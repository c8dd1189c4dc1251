"""The Jupyter server extension: its configuration (`c.NotebookAgent.*`) and its handlers."""

from __future__ import annotations

import asyncio
from pathlib import Path

from jupyter_server.extension.application import ExtensionApp
from jupyter_server.serverapp import ServerApp
from traitlets import Bool, Enum, Float, Integer, Unicode

from ..llm import Model, load_model, parse_model_string
from ..llm.base import ModelError
from ..sandbox import docker_problem
from ..sandbox.image import build_instructions, default_image, image_exists
from ..sandbox.pool import WarmPool
from .handlers import ROUTES
from .runs import RunRegistry


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
    api_key = Unicode(
        "",
        config=True,
        help="API key of the endpoint; default: $OPENAI_API_KEY. It stays in the server: never "
        "sent to the browser, a notebook, a log or a kernel.",
    )
    max_steps = Integer(
        30, config=True, help="Model turns a run may take before it fails; a request may ask fewer."
    )
    time_limit = Float(1800.0, config=True, help="Seconds a whole run may take.")
    execution_timeout = Float(
        120.0,
        config=True,
        help="Seconds one execution may take before it is interrupted (then the kernel restarted).",
    )
    max_prompt_chars = Integer(
        100_000, config=True, help="Longest prompt or instruction a request may carry (else 413)."
    )
    kernel_name = Unicode(
        "",
        config=True,
        help="Kernelspec the agent runs code in; default: the sandbox. Any other needs "
        "allow_unsandboxed unless it is a sandbox too.",
    )
    finished_runs_kept = Integer(
        200,
        config=True,
        help="Finished runs the server remembers (with their events); older ones are forgotten. "
        "What they wrote stays in the notebooks.",
    )
    save_interval = Float(
        0.5,
        config=True,
        help="Seconds between the server's writes of a run's cells into a notebook no frontend "
        "has open, so that a streaming cell is not a write per token.",
    )
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
    registry: RunRegistry
    _models: dict[str, Model]

    def initialize_settings(self) -> None:
        self._models = {}
        self.registry = RunRegistry(
            self.serverapp.contents_manager,
            self.serverapp.kernel_manager,
            log=self.log,
            write_delay_s=self.save_interval,
            finished_runs_kept=self.finished_runs_kept,
        )

    def initialize_handlers(self) -> None:
        self.handlers.extend(ROUTES)

    def make_model(self, name: str = "") -> Model:
        """The configured model, or another `name` of the configured backend (a request may
        pick the model, never the endpoint or the key). One per name, shared by the runs:
        making a client costs milliseconds of the server's loop, and clients are safe to share."""
        backend, configured = parse_model_string(self.model)
        if name:
            asked, _ = parse_model_string(name)
            if name.startswith(f"{asked}:") and asked != backend:
                raise ModelError(
                    f"the model {name!r} is not of the server's backend {backend!r} "
                    "(c.NotebookAgent.model)"
                )
            name = name.removeprefix(f"{backend}:")
        spec = f"{backend}:{name or configured}"
        if spec not in self._models:
            try:
                self._models[spec] = load_model(
                    spec, base_url=self.base_url or None, api_key=self.api_key or None
                )
            except ModelError as error:
                raise ModelError(
                    f"{error} (the server's settings: c.NotebookAgent.model, "
                    "c.NotebookAgent.base_url, c.NotebookAgent.api_key)"
                ) from None
        return self._models[spec]

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
        """Runs stop and save what they wrote, then the warm kernels go."""
        await self.registry.close()
        for model in self._models.values():
            await model.aclose()
        if self.pool:
            await self.pool.close()


if __name__ == "__main__":
    # `python -m jupyter_notebook_agent.server.app --help-all` lists every setting.
    NotebookAgent.launch_instance()
