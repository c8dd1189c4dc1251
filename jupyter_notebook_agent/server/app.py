"""The Jupyter server extension: its configuration (`c.NotebookAgent.*`) and its handlers."""

from __future__ import annotations

import asyncio
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from jupyter_core.paths import jupyter_data_dir
from jupyter_server.extension.application import ExtensionApp
from jupyter_server.serverapp import ServerApp
from traitlets import Bool, Dict, Enum, Float, Integer, Unicode, default
from traitlets.config import Configurable

from ..agent import AgentConfig
from ..agent.prompt import system_message
from ..agent.tools import TOOLS
from ..kernels import SECRET_PREFIXES, SECRET_VARIABLES
from ..llm import Model, default_model, load_model, parse_model_string
from ..llm.base import ModelError
from ..llm.llama_cpp import TOOL_CALL_FORMATS, LlamaCppOptions, NotAModelFile
from ..llm.llama_cpp.hub import HubFile, HubUnreachable, default_local_model
from ..mcp.client import McpConfigError, McpServerConfig
from ..notebook.outputs import OutputLimits
from ..sandbox import SANDBOX_KERNEL, docker_problem
from ..sandbox.image import build_instructions, default_image, image_exists
from ..sandbox.lending import folder_access
from ..sandbox.pool import WarmPool
from .handlers import ROUTES
from .kernel_websocket import prompt_kernel_websockets
from .mcp_endpoint import NotebookMcp
from .memory import keep_large_buffers_apart
from .model_settings import ModelSettings, ModelSetup
from .runs import RunLimits, RunRegistry
from .starting import RunStarter
from .store import RunStore


class LlamaCpp(Configurable):
    """How the server runs local GGUF models (`llama-cpp:` model strings), in its own process."""

    n_ctx = Integer(
        LlamaCppOptions.n_ctx, config=True, help="Tokens of context; a run's conversation must fit."
    )
    threads = Integer(0, config=True, help="CPU threads; 0 lets llama.cpp choose.")
    gpu_layers = Integer(
        LlamaCppOptions.gpu_layers,
        config=True,
        help="Layers offloaded to the GPU: -1 all that the build can, 0 none.",
    )
    tool_calls = Enum(
        TOOL_CALL_FORMATS,
        LlamaCppOptions.tool_calls,
        config=True,
        help="How models write tool calls: native, in a model's own format where its chat "
        "template has one (else JSON); json, always in the JSON envelope.",
    )
    default_model = Unicode(
        config=True,
        help="The local model offered for download when no model is configured "
        "(`hf:OWNER/REPO/FILE.gguf`; default: $NOTEBOOK_AGENT_LOCAL_MODEL, else a small coder "
        "model).",
    )

    @default("default_model")
    def _default_model(self) -> str:
        return default_local_model()

    def options(self) -> LlamaCppOptions:
        return LlamaCppOptions(
            n_ctx=self.n_ctx,
            threads=self.threads or None,
            gpu_layers=self.gpu_layers,
            tool_calls=self.tool_calls,
        )


@dataclass
class Download:
    """A model download the person asked for, as the panel shows it."""

    reference: str
    state: str = "running"
    """running, done, failed or cancelled."""
    done: int = 0
    """Bytes so far."""
    total: int = 0
    """Bytes in all (0 until the hub says)."""
    error: str | None = None


#: A download's error where the hub cannot be reached (HubUnreachable), in the panel's words.
HUB_UNREACHABLE = (
    "the model hub cannot be reached from this server: use a model file on disk or an endpoint"
)


class _DownloadCancelled(Exception):
    """Raised by a cancelled download's progress callback, to end its thread."""


class NotebookAgent(ExtensionApp):
    """Runs the notebook agent for the people using this Jupyter server."""

    name = "jupyter_notebook_agent"
    classes = [LlamaCpp]

    model = Unicode(
        "",
        config=True,
        help="Model string `[backend:]name`: `gpt-4o-mini`, `openai:qwen2.5-coder`, "
        "`llama-cpp:/path/model.gguf`, `llama-cpp:hf:OWNER/REPO/FILE.gguf`, "
        "`replay:/path/recording.json`. Empty: gpt-4o-mini where an API key or base URL is "
        "set, else the default local model (c.LlamaCpp.default_model), once downloaded.",
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
    allow_model_setup = Bool(
        True,
        config=True,
        help="Whether the people using this server may choose its model in the JupyterLab "
        "panel (saved in model_settings_path); False keeps the configured one.",
    )
    model_settings_path = Unicode(
        config=True,
        help="The file that keeps the model set up in the JupyterLab panel (mode 0600: it may "
        "hold an API key); while it exists it overrides model, base_url and api_key. Default: "
        "Jupyter's data folder, notebook_agent/model.json.",
    )
    # The defaults of a run are the agent's own (AgentConfig), which the command line uses too.
    max_steps = Integer(
        AgentConfig.max_steps,
        config=True,
        help="Model turns a run may take before it fails; a request may ask fewer.",
    )
    time_limit = Float(AgentConfig.time_limit_s, config=True, help="Seconds a whole run may take.")
    execution_timeout = Float(
        AgentConfig.execution_timeout_s,
        config=True,
        help="Seconds one execution may take before it is interrupted (then the kernel restarted).",
    )
    max_prompt_chars = Integer(
        100_000, config=True, help="Longest prompt or instruction a request may carry (else 413)."
    )
    kernel_name = Unicode(
        "",
        config=True,
        help="Kernelspec the agent runs code in; default: the sandbox, python3-sandbox (with "
        "--gateway-url, the gateway's). Any other needs allow_unsandboxed unless it is a sandbox "
        "too.",
    )
    finished_runs_kept = Integer(
        200,
        config=True,
        help="Finished runs the server holds in memory (with their events); older ones are "
        "read from the run store. What they wrote stays in the notebooks.",
    )
    store_path = Unicode(
        config=True,
        help="The run store: an SQLite file that keeps runs, their events and each notebook's "
        "conversation across restarts; empty: Jupyter's data folder, notebook_agent/runs.sqlite. "
        "'memory' keeps them in memory only.",
    )
    stored_runs_per_notebook = Integer(
        200,
        config=True,
        help="Finished runs the store keeps for each notebook; older ones (and their events) go.",
    )
    store_max_mb = Integer(
        1024,
        config=True,
        help="Megabytes the run store's data may take; past it the oldest finished runs go (with "
        "their events), whatever their notebook.",
    )
    save_interval = Float(
        0.5,
        config=True,
        help="Seconds between the server's writes of a run's cells into a notebook no frontend "
        "has open, so that a streaming cell is not a write per token.",
    )
    execution = Enum(
        ["auto", "ask"],
        AgentConfig.execution,
        config=True,
        help="`auto` runs each proposed code cell at once; `ask` runs it once it is accepted.",
    )
    allow_unsandboxed = Bool(
        False,
        config=True,
        help="Run generated code in a kernel that is no sandbox when no sandbox is available: a "
        "local one on this machine, or with --gateway-url a plain kernel of the gateway.",
    )

    max_stream_chars = Integer(
        OutputLimits.stream_chars,
        config=True,
        help="Characters of one stream output (stdout, stderr) a cell keeps: its head and its "
        "tail, with the cut marked.",
    )
    max_output_bytes = Integer(
        OutputLimits.output_bytes,
        config=True,
        help="Bytes of one rich output (an image, a table) a cell keeps; a larger one becomes a "
        "note.",
    )
    max_cell_output_bytes = Integer(
        OutputLimits.cell_bytes,
        config=True,
        help="Bytes of all of one cell's outputs; past it, further outputs are left out.",
    )

    @property
    def output_limits(self) -> OutputLimits:
        return OutputLimits(
            self.max_stream_chars, self.max_output_bytes, self.max_cell_output_bytes
        )

    mcp_servers = Dict(
        config=True,
        help="The MCP servers whose tools the agent may call, by name (letters, digits, dashes "
        "and single underscores): {'name': {'command': 'uvx', 'args': [...], 'env': {...}, "
        "'cwd': '...'}} runs a server over stdio; {'name': {'url': 'https://...', 'headers': "
        "{...}}} reaches one over streamable HTTP. Each may say 'approval': 'ask' (default: "
        "each call waits for the person's approval) or 'allow' (calls run at once), and per tool "
        "'tools': {'tool': 'ask' | 'allow' | 'deny'} (deny: never offered), 'timeout' (seconds "
        "a call may take, default 60) and 'connect_timeout' (default 10). The values of env and "
        "headers stay in the server: never sent to the browser, a notebook, a log or a kernel.",
    )
    max_active_runs = Integer(
        8,
        config=True,
        help="Runs working at once on this server (each may hold a sandbox kernel); one more is "
        "refused with 429 until one ends.",
    )
    max_active_runs_per_user = Integer(
        4,
        config=True,
        help="Runs working at once for one user, where the identity provider tells users apart.",
    )

    mcp_idle_timeout = Float(
        900.0,
        config=True,
        help="Seconds an outside agent's MCP session may go without a call before its run ends.",
    )
    mcp_max_calls = Integer(
        200,
        config=True,
        help="Calls an outside agent's MCP session may make in one notebook (its run's steps).",
    )
    warm_pool_size = Integer(
        2,
        config=True,
        help="Sandbox kernels kept started ahead of need, so a first execution is fast; 0: none.",
    )

    pool: WarmPool | None = None
    registry: RunRegistry
    mcp_server_configs: tuple[McpServerConfig, ...] = ()
    """The MCP servers of `mcp_servers` that could be read, for each run."""
    download: Download | None = None
    _models: dict[str, asyncio.Future[Model]]

    @default("store_path")
    def _store_in_data_folder(self) -> str:
        return str(Path(jupyter_data_dir()) / "notebook_agent" / "runs.sqlite")

    @default("model_settings_path")
    def _model_settings_in_data_folder(self) -> str:
        return str(Path(jupyter_data_dir()) / "notebook_agent" / "model.json")

    @default("api_key")
    def _api_key_from_environment(self) -> str:
        return os.environ.get("OPENAI_API_KEY", "")

    def initialize_settings(self) -> None:
        # The key and the MCP servers' secrets now live in this object alone: whatever the
        # server starts later (a kernel of the person's or of a run, sandboxed or not) inherits
        # an environment without them.
        self.api_key = self.api_key
        self.mcp_secrets = {
            name: os.environ.pop(name)
            for name in list(os.environ)
            if name.startswith(SECRET_PREFIXES)
        }
        """The variables the person's settings may name for their MCP servers (MCP_...)."""
        for name in SECRET_VARIABLES:
            os.environ.pop(name, None)
        self._models = {}
        self._retired: list[asyncio.Future[Model]] = []
        self._warming: set[asyncio.Future[None]] = set()
        self._closing: set[asyncio.Future[None]] = set()
        self._hub_sizes: dict[HubFile, int | None] = {}
        self.model_setup = ModelSetup(
            Path(self.model_settings_path),
            ModelSettings(self.model, self.base_url, self.api_key),
            self.log,
        )
        if saved := self.model_setup.load():
            self.model, self.base_url, self.api_key = saved.model, saved.base_url, saved.api_key
            self.log.info(
                "The model set up in the panel is in effect (%s, kept in %s): it overrides "
                "c.NotebookAgent.model, base_url and api_key until the panel resets it",
                saved.model,
                self.model_setup.path,
            )
        self.mcp_server_configs = self._read_mcp_servers()
        prompt_kernel_websockets(self.settings)  # what the server's web app takes next
        keep_large_buffers_apart()
        self.llama_cpp = LlamaCpp(parent=self)
        store = RunStore(
            None if self.store_path == "memory" else Path(self.store_path),
            runs_kept_per_notebook=self.stored_runs_per_notebook,
            max_bytes=self.store_max_mb << 20,
        )
        store.open()
        contents = self.serverapp.contents_manager
        self.registry = RunRegistry(
            contents,
            self.serverapp.kernel_manager,
            self.serverapp.session_manager,
            self.serverapp.kernel_spec_manager,
            unsandboxed_allowed=lambda: self.allow_unsandboxed,
            gateway=self.gateway_url,
            log=self.log,
            write_delay_s=self.save_interval,
            finished_runs_kept=self.finished_runs_kept,
            limits=RunLimits(self.max_active_runs, self.max_active_runs_per_user),
            store=store,
        )
        self.serverapp.event_logger.add_listener(
            schema_id=contents.event_schema_id, listener=self.registry.follow_rename
        )
        self.starter = RunStarter(self)
        self.mcp = NotebookMcp(self, self.mcp_idle_timeout, self.mcp_max_calls)

    def _read_mcp_servers(self) -> tuple[McpServerConfig, ...]:
        """The servers of `mcp_servers`; one whose settings are wrong is left out, the log
        says why in one line (naming the server and the field, never a value)."""
        servers = []
        for name, settings in self.mcp_servers.items():
            try:
                servers.append(McpServerConfig.parse(name, settings))
            except McpConfigError as error:
                self.log.error("c.NotebookAgent.mcp_servers: %s; runs go without it", error)
        return tuple(servers)

    @property
    def gateway_url(self) -> str | None:
        """The gateway that runs this server's kernels (`--gateway-url`); None: this machine."""
        gateway = self.serverapp.gateway_config
        return gateway.url if gateway.gateway_enabled else None

    def initialize_handlers(self) -> None:
        self.handlers.extend(ROUTES)

    @property
    def model_in_effect(self) -> str:
        """The configured model string, or the default for an unconfigured server."""
        return self.model or default_model(
            self.base_url, self.api_key, self.llama_cpp.default_model
        )

    @property
    def api_key_set(self) -> bool:
        """Whether the model in effect gets an API key (the key itself stays here)."""
        return bool(self.api_key or os.environ.get("OPENAI_API_KEY"))

    async def set_up_model(self, settings: ModelSettings | None) -> None:
        """Saves the model set up in the panel (None: back to the server's configuration) and
        puts it in effect at once: runs started from now on get it, runs under way keep theirs.
        OSError where it cannot be saved; nothing changes then."""
        await self.model_setup.update(settings)
        now = self.model_setup.in_effect  # the last saved, should two changes cross
        self.model, self.base_url, self.api_key = now.model, now.base_url, now.api_key
        self._retire_models()
        if settings is None:
            self.log.info("The model set up in the panel is reset: the server's own is in effect")
        else:
            self.log.info("The model set up in the panel is in effect: %s", settings.model)

    def _retire_models(self) -> None:
        """The models made so far are for settings no longer in effect: runs started from now
        on get models made afresh, and those set aside are closed once no run holds them."""
        self._retired.extend(self._models.values())
        self._models = {}
        task = asyncio.ensure_future(self._close_retired())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close_retired(self) -> None:
        """Closes the models set aside that no run in memory holds (a local model's memory
        is freed). A run that holds one may regenerate a cell with it later: it is closed at a
        later change, or as the server stops. Which runs hold what is looked at last, once no
        local model loads in the background (closing one waits for that)."""
        await asyncio.gather(*self._warming, return_exceptions=True)
        held = {id(run.agent.model) for run in self.registry.runs.values()}
        for made in list(self._retired):
            if made not in self._retired or not made.done():
                continue  # closed meanwhile, or still being made (a run may wait for it)
            if made.cancelled() or made.exception() is not None:
                self._retired.remove(made)
                continue
            model = made.result()
            if id(model) not in held:
                self._retired.remove(made)
                try:
                    await model.aclose()
                except Exception as error:
                    self.log.warning("Could not close the model %s: %s", model.name, error)

    @property
    def downloadable(self) -> HubFile | None:
        """The hub file of the local model in effect, if it comes from the hub."""
        backend, name = parse_model_string(self.model_in_effect)
        return HubFile.of(name) if backend == "llama-cpp" else None

    def local_model_status(self) -> dict[str, Any] | None:
        """For the panel: the hub model in effect, whether it is here, and its download."""
        hub_file = self.downloadable
        if hub_file is None:
            return None
        try:
            downloaded = hub_file.cached() is not None
        except ImportError:  # without the extra [local], the model's problem says so
            return None
        return {
            "reference": str(hub_file),
            "downloaded": downloaded,
            "download": asdict(self.download) if self.download else None,
            "size": self._hub_size(hub_file),
        }

    def _hub_size(self, hub_file: HubFile) -> int | None:
        """The file's size in bytes, asked of the hub once, in a thread of its own (a hub that
        cannot be reached takes a while to say so); None until it answered, or if it cannot."""
        if hub_file not in self._hub_sizes:
            self._hub_sizes[hub_file] = None

            def ask() -> None:
                try:
                    self._hub_sizes[hub_file] = hub_file.size()
                except Exception as error:  # without the extra [local], say
                    self.log.debug("The hub's size of %s is unknown: %s", hub_file, error)

            threading.Thread(target=ask, name="model-size", daemon=True).start()
        return self._hub_sizes[hub_file]

    def start_download(self) -> Download:
        """Downloads the hub model in effect, in the background, once at a time."""
        hub_file = self.downloadable
        if hub_file is None:
            raise ModelError(f"the server's model {self.model_in_effect!r} is not downloaded")
        if self.download and self.download.state == "running":
            return self.download
        download = self.download = Download(str(hub_file))

        def progress(done: int, total: int) -> None:
            if download.state == "cancelled":
                raise _DownloadCancelled
            download.done, download.total = done, total

        def fetch() -> None:
            """In a daemon thread: a download under way does not hold up the server's exit."""
            try:
                hub_file.download(progress)
            except HubUnreachable as error:
                self._download_failed(download, HUB_UNREACHABLE, error)
            except (ModelError, ImportError) as error:
                self._download_failed(download, str(error), error)
            else:
                if download.state == "running":  # else cancelled, and done meanwhile
                    download.state = "done"
                self.log.info("Downloaded %s", hub_file)

        threading.Thread(target=fetch, name="model-download", daemon=True).start()
        return download

    def _download_failed(self, download: Download, message: str, error: Exception) -> None:
        if download.state == "cancelled":
            self.log.info("Download of %s cancelled", download.reference)
            return
        download.state, download.error = "failed", message
        self.log.warning("Download of %s failed: %s", download.reference, error)

    def cancel_download(self) -> Download | None:
        """Cancels the download under way, if any: its thread ends at its next progress, and
        the hub client removes what it had fetched."""
        download = self.download
        if download is None or download.state != "running":
            return download
        download.state = "cancelled"
        threading.Thread(target=_abort_xet_transfers, name="model-download-abort").start()
        self.log.info("Cancelling the download of %s", download.reference)
        return download

    async def make_model(self, name: str = "") -> Model:
        """The configured model, or another `name` of the configured backend (a request may
        pick the model, never the endpoint or the key). One per name, shared by the runs, and
        made in a thread: a local model reads its file's header first (seconds, for a large
        vocabulary), which must not hold up the server. A model that could not be made is
        tried again next time (its file may have come)."""
        backend, configured = parse_model_string(self.model_in_effect)
        if name:
            asked, _ = parse_model_string(name)
            if name.startswith(f"{asked}:") and asked != backend:
                raise ModelError(
                    f"the model {name!r} is not of the server's backend {backend!r} "
                    "(c.NotebookAgent.model)"
                )
            name = name.removeprefix(f"{backend}:")
        spec = f"{backend}:{name or configured}"
        made = self._models.get(spec)
        if made is None:
            made = self._models[spec] = asyncio.ensure_future(self._load(spec))
        try:
            return await asyncio.shield(made)
        except ModelError:
            if self._models.get(spec) is made:
                del self._models[spec]
            raise

    async def _load(self, spec: str) -> Model:
        try:
            model = await asyncio.to_thread(
                load_model,
                spec,
                base_url=self.base_url or None,
                api_key=self.api_key or None,
                local=self.llama_cpp.options(),
            )
        except NotAModelFile as error:
            raise ModelError(
                f"{error.name} is not a model file on this server: set up an endpoint in the "
                "panel to use a hosted model"
            ) from None
        except ModelError as error:
            where = (
                "the model set up in the panel"
                if self.model_setup.source == "panel"
                else "the server's settings: c.NotebookAgent.model, c.NotebookAgent.base_url, "
                "c.NotebookAgent.api_key"
            )
            raise ModelError(f"{error} ({where})") from None
        except OSError as error:  # a folder, a name too long for the file system ...
            raise ModelError(f"the model {spec!r} cannot be read: {error.strerror}") from None
        if callable(getattr(model, "warm", None)):  # another package's model may have none
            self._warm(model)
        return model

    def _warm(self, model: Model) -> None:
        """Has the model make ready what takes long (a local model loads, and evaluates the
        agent's system prompt and tools) in the background: the first run waits for neither,
        and finds them in the KV cache."""
        system = [system_message()]

        async def warm() -> None:
            try:
                evaluated = await asyncio.to_thread(model.warm, system, TOOLS)
            except Exception as error:
                self.log.warning("Could not load %s: %s", model.name, error)
            else:
                if evaluated:
                    self.log.info(
                        "%s is loaded, its first %d prompt tokens cached", model.name, evaluated
                    )

        task = asyncio.ensure_future(warm())
        self._warming.add(task)
        task.add_done_callback(self._warming.discard)

    async def _start_jupyter_server_extension(self, serverapp: ServerApp) -> None:
        """Where sandbox kernels can run here: the sandbox becomes the notebooks' default
        kernel, and the warm pool starts (it never builds the image). Notebooks whose runs a
        killed server left active say they were interrupted."""
        await self.registry.mark_interrupted_in_notebooks()
        if self.gateway_url:
            self.log.info("No warm pool: kernels run on the gateway %s", self.gateway_url)
            return
        problem = await asyncio.to_thread(docker_problem)
        if problem is None and not await asyncio.to_thread(image_exists, default_image()):
            problem = f"the sandbox image is missing ({build_instructions(default_image())})"
        if problem:
            self.log.warning("Notebooks keep their default kernel, with no warm pool: %s", problem)
            return
        self._sandbox_by_default(serverapp)
        if self.warm_pool_size < 1:
            return
        if not folder_access().lends_later:
            self.log.info(
                "No warm pool: a running kernel cannot be lent a notebook's folder by a server "
                "that makes no mounts (one not run as root), so each kernel starts on its own"
            )
            return
        self.pool = WarmPool(
            Path(serverapp.root_dir), size=self.warm_pool_size, config=serverapp.config
        )
        self.pool.start()

    def _sandbox_by_default(self, serverapp: ServerApp) -> None:
        """New notebooks, and notebooks without kernel metadata, get the sandbox the agent runs
        code in (JupyterLab offers the default kernel first), unless the person chose a default
        kernel themselves or the agent runs code elsewhere."""
        kernels = serverapp.kernel_manager
        chosen = any(
            "default_kernel_name" in serverapp.config.get(cls.__name__, {})
            for cls in type(kernels).__mro__
        )
        wanted = self.kernel_name or SANDBOX_KERNEL
        if chosen or wanted != SANDBOX_KERNEL:
            return
        if SANDBOX_KERNEL in serverapp.kernel_spec_manager.find_kernel_specs():
            kernels.default_kernel_name = SANDBOX_KERNEL
            self.log.info("Notebooks get the sandbox kernel %s by default", SANDBOX_KERNEL)

    async def stop_extension(self) -> None:
        """Outside agents' sessions end, runs stop and save what they wrote, then the warm
        kernels go."""
        await self.mcp.stop()
        await self.registry.close()
        await asyncio.gather(*self._warming, *self._closing, return_exceptions=True)
        made_models = [*self._models.values(), *self._retired]
        for made in await asyncio.gather(*made_models, return_exceptions=True):
            if not isinstance(made, BaseException):
                await made.aclose()
        if self.pool:
            await self.pool.close()


def _abort_xet_transfers() -> None:
    """A file the hub keeps in Xet storage downloads in huggingface_hub's native transfer
    client, which logs an exception of the progress callback and goes on: it is aborted as an
    interrupt would (best effort: the call is huggingface_hub's own, not public)."""
    try:
        from huggingface_hub.utils._xet import abort_xet_session
    except ImportError:
        return
    try:
        abort_xet_session()
    except Exception:  # no transfer under way, or a version without it
        pass


if __name__ == "__main__":
    # `python -m jupyter_notebook_agent.server.app --help-all` lists every setting.
    NotebookAgent.launch_instance()
