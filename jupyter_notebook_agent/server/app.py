"""The Jupyter server extension: its configuration (`c.NotebookAgent.*`) and its handlers."""

from __future__ import annotations

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Enum, Integer, Unicode

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

    def initialize_handlers(self) -> None:
        self.handlers.append((r"/notebook-agent/status", StatusHandler))
