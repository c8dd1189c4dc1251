"""`jupyter-notebook-agent run "TASK"`: the agent, headless, leaving a notebook and a transcript."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from jupyter_client.kernelspec import KernelSpecManager
from rich.console import Console
from rich.markdown import Markdown
from rich.markup import escape
from traitlets.config import Config

from ._version import __version__
from .agent import AgentConfig, Event, RunOutcome
from .agent.approval import ToolPermissions
from .agent.events import RunFinished
from .agent.observers import load_observers
from .agent.run import RunSpec, assemble
from .agent.transcript import TranscriptWriter
from .kernels import JupyterKernelSession
from .llm import OPENAI_DEFAULT_MODEL, Model, ModelError, default_model, load_model
from .llm.llama_cpp import TOOL_CALL_FORMATS, LlamaCppOptions
from .llm.llama_cpp.hub import DEFAULT_LOCAL_MODEL, HubFile, default_local_model
from .llm.replay import RecordingModel
from .mcp.bridge import TOKEN_VARIABLE, Bridge, bridge_token, client_config, endpoint
from .mcp.client import SERVER_NAME, McpConfigError, McpServerConfig, parse_servers
from .notebook import NotebookDocument
from .notebook.document import keep_run_record
from .sandbox import SandboxUnavailable, choose_kernel


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jupyter-notebook-agent",
        description="An AI agent that writes and runs notebook cells in a sandboxed kernel.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="do a task and write the notebook it leaves")
    run.add_argument("task", help="what to do, in plain words")
    run.add_argument("-o", "--output", type=Path, help="the notebook to write (.ipynb)")
    run.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    run.add_argument(
        "--model",
        default=os.environ.get("NOTEBOOK_AGENT_MODEL"),
        help="[backend:]name, e.g. gpt-4o-mini, openai:qwen2.5-coder, llama-cpp:model.gguf, "
        f"replay:rec.json (default: $NOTEBOOK_AGENT_MODEL, else {OPENAI_DEFAULT_MODEL} when "
        "OPENAI_API_KEY or a base URL is set, else the default local model, once downloaded)",
    )
    run.add_argument("--base-url", help="OpenAI-compatible endpoint (default: OpenAI's)")
    for flag, kind, default, meaning in (
        ("--max-steps", int, AgentConfig.max_steps, "model turns at most"),
        ("--timeout", float, AgentConfig.execution_timeout_s, "seconds one execution may take"),
        ("--time-limit", float, AgentConfig.time_limit_s, "seconds the whole run may take"),
    ):
        run.add_argument(flag, type=_positive(kind), default=default, help=meaning)
    run.add_argument(
        "--max-retries", type=_positive(int, 0), default=4, help="retries of a failed model request"
    )
    run.add_argument("--workdir", type=Path, help="the kernel's working directory")
    run.add_argument(
        "--mount",
        action="append",
        default=[],
        metavar="HOST:CONTAINER",
        help="another folder for the sandbox kernel to see (repeatable)",
    )
    run.add_argument("--image", help="the sandbox kernel's container image")
    run.add_argument("--kernel", metavar="KERNELSPEC", help="kernelspec to run code in")
    run.add_argument(
        "--gateway-url",
        metavar="URL",
        default=os.environ.get("JUPYTER_GATEWAY_URL") or None,
        help="run the kernel on this Jupyter Enterprise Gateway or Kernel Gateway, with its "
        "kernelspecs (default: $JUPYTER_GATEWAY_URL; none: this machine)",
    )
    _add_local_model_options(run)
    run.add_argument("--record", type=Path, help="write the model's turns to a replayable file")
    run.add_argument(
        "--transcript", type=Path, help="JSON-lines transcript (default: beside the notebook)"
    )
    run.add_argument(
        "--allow-unsandboxed",
        action="store_true",
        help="allow generated code to run in a local kernel on this machine, as you",
    )
    mcp = run.add_argument_group("MCP servers")
    mcp.add_argument(
        "--mcp-servers",
        type=Path,
        metavar="FILE",
        help='JSON file of MCP servers whose tools the agent may call, by name: {"name": '
        '{"command": ..., "args": [...], "env": {...}}} or {"name": {"url": ..., "headers": '
        "{...}}}, as c.NotebookAgent.mcp_servers (see README.md)",
    )
    mcp.add_argument(
        "--allow-mcp-tool",
        action="append",
        default=[],
        metavar="SERVER__TOOL",
        help="let the agent call this MCP tool (SERVER__* : all of a server's tools); with no "
        "one to ask, a tool neither allowed here nor by its server's 'approval': 'allow' is "
        "denied, and the model told (repeatable)",
    )
    run.set_defaults(handler=run_command)
    image = commands.add_parser("image", help="the sandbox kernel's container image")
    image_commands = image.add_subparsers(dest="image_command", required=True)
    build = image_commands.add_parser(
        "build", help="build the image (default: from Debian packages, with no registry; as root)"
    )
    build.add_argument("--tag", help="the image's tag (default: the one `image name` prints)")
    build.add_argument(
        "--dockerfile",
        action="store_true",
        help="docker build the shipped Dockerfile instead (pulls python:3.12-slim)",
    )
    build.add_argument(
        "--mirror", metavar="URL", help="Debian mirror for debootstrap (default: apt's own)"
    )
    image_commands.add_parser("name", help="print the default image's tag")
    image.set_defaults(handler=image_command)
    model = commands.add_parser("model", help="local GGUF models")
    model_commands = model.add_subparsers(dest="model_command", required=True)
    download = model_commands.add_parser(
        "download", help="download a GGUF model into the Hugging Face cache, with progress"
    )
    download.add_argument(
        "reference",
        nargs="?",
        default=default_local_model(),
        help="hf:OWNER/REPO/FILE.gguf (default: $NOTEBOOK_AGENT_LOCAL_MODEL or "
        f"{DEFAULT_LOCAL_MODEL})",
    )
    model.set_defaults(handler=model_command)
    doctor = commands.add_parser(
        "doctor", help="what this machine offers: Python, Docker and the sandbox, models, GPU"
    )
    doctor.set_defaults(handler=doctor_command)
    mcp_config = commands.add_parser(
        "mcp-config",
        help="what MCP clients take to work in this Jupyter server's notebooks (JSON)",
    )
    mcp_config.add_argument(
        "--url", help="the Jupyter server's URL (default: the running server's)"
    )
    mcp_config.add_argument(
        "--token", help=f"its token (default: the running server's, else ${TOKEN_VARIABLE})"
    )
    mcp_config.set_defaults(handler=mcp_config_command)
    bridge = commands.add_parser(
        "mcp-bridge",
        help="serve the server's MCP endpoint over stdio, for MCP clients that take a command",
    )
    bridge.add_argument("--url", required=True, help="the MCP endpoint's URL")
    bridge.set_defaults(handler=mcp_bridge_command)
    return parser


def _add_local_model_options(run: argparse.ArgumentParser) -> None:
    local = run.add_argument_group("local models (llama-cpp:)")
    defaults = LlamaCppOptions()
    local.add_argument(
        "--n-ctx", type=_positive(int, 256), default=defaults.n_ctx, help="tokens of context"
    )
    local.add_argument("--threads", type=_positive(int), help="CPU threads (default: llama.cpp's)")
    local.add_argument(
        "--gpu-layers",
        type=int,
        default=defaults.gpu_layers,
        help="layers to offload to the GPU (-1: all that the build can, 0: none)",
    )
    local.add_argument("--seed", type=int, help="a fixed sampling seed, for repeatable runs")
    local.add_argument(
        "--tool-calls",
        choices=TOOL_CALL_FORMATS,
        default=defaults.tool_calls,
        help="native: in the model's own format where its chat template has one (else JSON); "
        "json: always in the JSON envelope",
    )


def _positive(kind: type, minimum: float = 1) -> Any:
    def convert(text: str) -> Any:
        value = kind(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}")
        return value

    return convert


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.handler(args, parser)


def run_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    console = Console(highlight=False)
    output = (args.output or _default_output(args.task)).resolve()
    if output.suffix != ".ipynb":
        parser.error(f"--output must name an .ipynb file, not {output.name}")
    if output.exists() and not args.overwrite:
        parser.error(f"{output} exists; choose another --output, or pass --overwrite")
    if not output.parent.is_dir():
        parser.error(f"the folder {output.parent} does not exist")
    workdir = (args.workdir or output.parent).resolve()
    if not workdir.is_dir():
        parser.error(f"--workdir {workdir} is not a folder")
    for mount in args.mount:
        host, sep, container = mount.partition(":")
        if not (sep and host and container.startswith("/")):
            parser.error(f"--mount {mount!r} is not HOST:CONTAINER with an absolute CONTAINER")
        if not Path(host).exists():
            parser.error(f"--mount: {host} does not exist")
    try:
        servers = _mcp_servers(args.mcp_servers, args.allow_mcp_tool)
    except McpConfigError as error:
        parser.error(str(error))
    gateway = args.gateway_url
    if gateway and (args.mount or args.image):
        parser.error("--mount and --image configure the sandbox on this machine, not a gateway's")
    try:
        specs = _gateway_kernel_specs(gateway) if gateway else KernelSpecManager().get_all_specs()
        kernel = choose_kernel(args.kernel, args.allow_unsandboxed, specs, gateway)
    except SandboxUnavailable as error:
        parser.error(str(error))
    if not kernel.sandboxed and (args.mount or args.image):
        parser.error(f"--mount and --image configure the sandbox kernel, not {kernel.name!r}")
    try:
        model = load_model(
            args.model or _unconfigured_model(args, console),
            base_url=args.base_url,
            max_retries=args.max_retries,
            local=LlamaCppOptions(
                n_ctx=args.n_ctx,
                threads=args.threads,
                gpu_layers=args.gpu_layers,
                seed=args.seed,
                tool_calls=args.tool_calls,
            ),
        )
    except ModelError as error:
        parser.error(str(error))
    if args.record:
        model = RecordingModel(model, args.record)
    where = f"the gateway {escape(gateway)}" if gateway else "this machine, as you"
    if not kernel.sandboxed:
        why = f" {escape(kernel.problem)}." if kernel.problem else ""
        console.print(
            f"[bold yellow]Unsandboxed:[/]{why} Generated code runs in the kernel "
            f"{kernel.name!r} on {where} (--allow-unsandboxed)."
        )
    elif gateway:
        console.print(f"[dim]Kernel {kernel.name!r} on {where}[/]")
    spec = specs[kernel.name]["spec"]
    kernelspec = {
        "name": kernel.name,
        "display_name": spec.get("display_name", kernel.name),
        "language": spec.get("language", "python"),
    }
    transcript = args.transcript or output.with_suffix(".transcript.jsonl")
    outcome = asyncio.run(
        _run(args, model, kernelspec, output, workdir, transcript, console, servers)
    )
    console.print(f"Notebook: {output}\nTranscript: {transcript}")
    return 0 if outcome.success else 1


def _mcp_servers(path: Path | None, allowed: list[str]) -> tuple[McpServerConfig, ...]:
    """The servers of `--mcp-servers`, each `--allow-mcp-tool` naming one of them;
    McpConfigError says what is wrong."""
    servers: list[McpServerConfig] = []
    if path is not None:
        try:
            servers = parse_servers(json.loads(path.read_text(encoding="utf-8")))
        except OSError as error:
            raise McpConfigError(f"--mcp-servers {path}: {error.strerror}") from None
        except ValueError as error:  # not JSON, or the configuration's mistake
            raise McpConfigError(f"--mcp-servers {path}: {error}") from None
    names = {server.name for server in servers}
    for tool in allowed:
        server, _, name = tool.partition("__")
        if not (SERVER_NAME.fullmatch(server) and name):
            raise McpConfigError(f"--allow-mcp-tool {tool!r} is not SERVER__TOOL or SERVER__*")
        if server not in names:
            raise McpConfigError(
                f"--allow-mcp-tool {tool!r}: no MCP server {server!r} in --mcp-servers"
            )
    return tuple(servers)


def _gateway_kernel_specs(url: str) -> dict[str, Any]:
    """The gateway's kernelspecs; SandboxUnavailable, naming the gateway, when it fails."""
    from .kernels.gateway import GatewayError, kernel_specs

    try:
        return asyncio.run(kernel_specs(url))
    except GatewayError as error:
        raise SandboxUnavailable(str(error)) from None


def _unconfigured_model(args: argparse.Namespace, console: Console) -> str:
    """The model when none was named: OpenAI's default where a key or endpoint is set; else the
    default local model, offered for download first where it is missing (nothing downloads
    unasked). ModelError says what to do when it cannot be had."""
    reference = default_local_model()
    spec = default_model(args.base_url, None, reference)
    if spec == OPENAI_DEFAULT_MODEL:
        return spec
    advice = (
        "no model is configured: set OPENAI_API_KEY (or --base-url for another endpoint), "
        "pass --model, or download the default local model: jupyter-notebook-agent model download"
    )
    try:
        hub_file = HubFile.of(reference)
        if hub_file is None:  # a path: loading it says whether it is there
            return spec
        if hub_file.cached() is not None:
            console.print(f"[dim]No model configured: using the local model {reference}[/]")
            return spec
    except ImportError:
        raise ModelError(f"{advice} (after installing the extra [local])") from None
    if not sys.stdin.isatty():
        raise ModelError(advice)
    size = hub_file.size()
    weight = f" ({size / 1e9:.1f} GB)" if size else ""
    console.print(
        f"No model is configured. The default local model is {reference}{weight}; it runs on "
        "this machine, and your data stays here."
    )
    if input("Download it into the Hugging Face cache and use it? [y/N] ").strip().lower() != "y":
        raise ModelError(advice)
    hub_file.download()
    return spec


def model_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """`model download`: the consent is the command itself; progress goes to the terminal."""
    try:
        path = HubFile.parse(args.reference).download()
    except ImportError:
        parser.error("downloading models needs the extra [local]")
    except ModelError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(path)
    return 0


def mcp_config_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Prints the MCP client entries for a server: the one given, else the running one."""
    url, token = args.url, args.token
    if not url:
        from jupyter_server.serverapp import list_running_servers

        running = list(list_running_servers())
        if not running:
            parser.error("no Jupyter server is running here: start one, or give --url")
        url, token = running[-1]["url"], token or running[-1].get("token", "")
    command = [sys.executable, "-m", "jupyter_notebook_agent.cli"]  # this environment's
    config = client_config(endpoint(url), token or bridge_token(), command)
    print(json.dumps(config, indent=2))
    return 0


def mcp_bridge_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    asyncio.run(Bridge(args.url, bridge_token()).serve_stdio())
    return 0


def doctor_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .doctor import findings

    console = Console(highlight=False)
    for finding in findings(default_local_model()):
        mark = "[green]ok[/]" if finding.ok else "[yellow]--[/]"
        console.print(f"{mark}  [bold]{finding.topic}[/]: {escape(finding.detail)}", soft_wrap=True)
        if finding.advice and not finding.ok:
            console.print(f"    {escape(finding.advice)}", soft_wrap=True)
    return 0


def image_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """`image build` and `image name`: progress goes to stderr, the tag alone to stdout."""
    import signal

    from .sandbox import image

    if args.image_command == "name":
        print(image.default_image())
        return 0
    if args.dockerfile and args.mirror:
        parser.error("--mirror is for the Debian build; the --dockerfile build does not use it")

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    # A build killed with SIGTERM still removes its root filesystem folder (about 1 GB).
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))
    try:
        if args.dockerfile:
            tag = image.build_with_dockerfile(args.tag, log=log)
        else:
            tag = image.build_rootfs_image(args.tag, mirror=args.mirror, log=log)
    except image.ImageError as error:
        if error.output:
            log(error.output)
        log(f"error: {error}")
        return 1
    print(tag)
    return 0


async def _run(
    args: argparse.Namespace,
    model: Model,
    kernelspec: dict[str, str],
    output: Path,
    workdir: Path,
    transcript_path: Path,
    console: Console,
    mcp_servers: tuple[McpServerConfig, ...],
) -> RunOutcome:
    notebook = NotebookDocument()
    transcript = TranscriptWriter(transcript_path)

    def save_each_step(event: Event) -> None:
        """A crash or a kill mid-run still leaves the work done so far."""
        if event["type"] == "step":
            notebook.write(output)

    config = AgentConfig(
        max_steps=args.max_steps,
        time_limit_s=args.time_limit,
        execution_timeout_s=args.timeout,
        cell_state="accepted",
        mcp_servers=mcp_servers,
    )

    async def start_kernel() -> JupyterKernelSession:
        if args.gateway_url:
            from .kernels.gateway import start_kernel

            return await start_kernel(args.gateway_url, kernelspec["name"], str(workdir))
        sandbox = {"mounts": args.mount} | ({"image": args.image} if args.image else {})
        return await JupyterKernelSession.start(
            kernelspec["name"], cwd=str(workdir), config=Config({"DockerSandbox": sandbox})
        )

    notebook.nb.metadata["kernelspec"] = kernelspec
    permissions = ToolPermissions(
        set(args.allow_mcp_tool),
        no_one_to_ask="a headless run asks no one; --allow-mcp-tool allows a tool",
    )
    spec = RunSpec(
        args.task, model, start_kernel, notebook, output.name, config, permissions=permissions
    )
    agent = assemble(spec, [transcript, *load_observers(), Progress(console), save_each_step])
    try:
        outcome = await agent.run(args.task)
    except Exception as error:  # the notebook is saved whatever went wrong
        console.print(f"[bold red]Error:[/] {escape(str(error))}")
        outcome = RunOutcome(False, "error", str(error))
        agent.events.emit(RunFinished.of(outcome))
    finally:
        keep_run_record(notebook.nb, spec.record.to_json())
        notebook.write(output)
        transcript.close()
        await agent.close()
        await model.aclose()
    return outcome


def _default_output(task: str) -> Path:
    """A new file named after the task, so that no existing notebook is ever replaced."""
    stem = re.sub(r"[^a-z0-9]+", "-", task.lower())[:40].strip("-") or "notebook-agent"
    candidate, number = Path(f"{stem}.ipynb"), 1
    while candidate.exists():
        number += 1
        candidate = Path(f"{stem}-{number}.ipynb")
    return candidate


class Progress:
    """Live progress on the terminal: the step, each tool, a short digest of what came back."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.step = ""
        self.last_error = ""

    def __call__(self, event: Event) -> None:
        kind = event["type"]
        if kind == "run_started":
            task, model = escape(event["task"]), escape(event["model"])
            self.console.print(f"[bold]Task:[/] {task}  [dim](model {model})[/]")
        elif kind == "step":
            self.step = f"step {event['step']}/{event['max_steps']}"
        elif kind == "model_turn" and event["content"]:
            prose = escape(event["content"].strip())
            self.console.print(f"[dim]{self.step}[/]  [italic]{prose}[/]")
        elif kind == "tool_result":
            result = event["result"]
            status = result.get("status", "")
            colour = {"ok": "green", "error": "red"}.get(status, "yellow")
            cell = f" {result['cell_id']}" if "cell_id" in result else ""
            name, digest = escape(event["name"]), escape(_short(result))
            self.console.print(
                f"[dim]{self.step}[/]  {name}{cell}  [{colour}]{status}[/]  {digest}",
                soft_wrap=True,
            )
        elif kind == "error":
            self.last_error = event["message"]
            self.console.print(f"[bold red]{escape(self.last_error)}[/]")
        elif kind == "run_finished":
            verdict = "[bold green]Done[/]" if event["success"] else "[bold red]Failed[/]"
            self.console.print(f"{verdict} ({event['reason']})")
            if event["summary"] != self.last_error:
                self.console.print(Markdown(event["summary"]))


def _short(result: dict[str, Any], width: int = 100) -> str:
    """One line of what a tool gave back."""
    if "error" in result:
        text = result["error"]
    elif result.get("note"):
        text = result["note"]
    elif "content" in result or "structured" in result:  # an MCP tool's
        structured = json.dumps(result["structured"]) if "structured" in result else ""
        text = f"{result.get('content', '')} {structured}"
    else:
        parts = []
        for output in result.get("outputs", []):
            if output["type"] == "error":
                parts.append(f"{output['ename']}: {output['evalue']}")
            elif output["type"] == "image":
                size = f" {output['width']}x{output['height']}" if "width" in output else ""
                parts.append(f"[{output['mime']}{size}]")
            else:
                parts.append(output["text"].strip())
        text = " | ".join(parts)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


if __name__ == "__main__":
    sys.exit(main())
