"""`jupyter-notebook-agent doctor`: what this machine offers the agent, and what to do where it
falls short: Python, the Docker engine and the sandbox image, the model backends, the GPU."""

from __future__ import annotations

import os
import platform
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ._version import __version__


@dataclass
class Finding:
    topic: str
    ok: bool
    detail: str
    advice: str = ""
    """What to do about it, when not ok."""


def findings(local_model: str) -> list[Finding]:
    """Everything doctor reports; `local_model` is the default local model's hub reference."""
    found = [
        Finding("python", True, f"{platform.python_version()} ({sys.executable})"),
        Finding("jupyter-notebook-agent", True, __version__),
        *_sandbox(),
        _openai(),
    ]
    try:
        import llama_cpp
    except ImportError:
        from .llm.llama_cpp import INSTALL_HINT

        return [*found, Finding("llama-cpp", False, "not installed", INSTALL_HINT)]
    return [*found, *_llama_cpp(llama_cpp.__version__, local_model)]


def _sandbox() -> list[Finding]:
    from .sandbox import docker_problem
    from .sandbox.image import build_instructions, default_image, image_exists
    from .sandbox.lending import SANDBOX_UID, folder_access

    problem = docker_problem()
    if problem:
        advice = "or pass --allow-unsandboxed to run generated code on this machine, as you"
        return [Finding("docker", False, problem, advice)]
    tag = default_image()
    image = (
        Finding("sandbox image", True, tag)
        if image_exists(tag)
        else Finding("sandbox image", False, f"{tag} is missing", build_instructions(tag))
    )
    access = folder_access()
    folders = Finding(
        "notebook folders",
        access.mode != f"uid {SANDBOX_UID}",
        f"{access.mode}: {access.detail}",
        "apt-get install bindfs",
    )
    return [Finding("docker", True, "the engine answers"), image, folders]


def _openai() -> Finding:
    """Whether a key or an endpoint is configured; the key itself is never shown."""
    key, base_url = os.environ.get("OPENAI_API_KEY"), os.environ.get("OPENAI_BASE_URL")
    where = base_url or "OpenAI"
    if key or base_url:
        return Finding("openai backend", True, f"{where}, key {'set' if key else 'not set'}")
    return Finding(
        "openai backend", False, "no OPENAI_API_KEY or OPENAI_BASE_URL", "set one, or --base-url"
    )


def _llama_cpp(version: str, local_model: str) -> list[Finding]:
    from .llm.llama_cpp import LlamaCppOptions, load_llama
    from .llm.llama_cpp.hardware import GPU_BACKENDS, build_backends, machine_gpus, rebuild_hint
    from .llm.llama_cpp.hub import HubFile
    from .testing.tiny_model import write_tiny_gguf

    backends = build_backends()
    gpus = machine_gpus()
    found = [
        Finding("llama-cpp", True, f"llama-cpp-python {version}, built for {', '.join(backends)}")
    ]
    listed = "; ".join(f"{name} ({backend})" for backend, names in gpus.items() for name in names)
    hint = rebuild_hint(gpus, backends)
    found.append(
        Finding("gpu", not hint, listed or "none found", f"rebuild for it: {hint}" if hint else "")
    )
    # Load a tiny model the way a real one loads: proves the build works and shows the offload.
    with tempfile.TemporaryDirectory() as folder:
        try:
            llama, offload = load_llama(
                write_tiny_gguf(Path(folder) / "probe.gguf"), LlamaCppOptions(n_ctx=256)
            )
            llama.close()
        except Exception as error:
            found.append(Finding("offload", False, f"loading a probe model failed: {error}"))
        else:
            gpu_backends = [b for b in backends if b in GPU_BACKENDS]
            where = f"{offload.on_gpu}/{offload.layers} layers on {gpu_backends or 'no GPU'}"
            note = f" ({offload.note})" if offload.note else ""
            found.append(Finding("offload", True, where + note))
    hub_file = HubFile.of(local_model)
    if hub_file is None:  # a path, from $NOTEBOOK_AGENT_LOCAL_MODEL
        path: Path | None = Path(local_model).expanduser()
        advice = "set NOTEBOOK_AGENT_LOCAL_MODEL to a .gguf file"
    else:
        path, advice = hub_file.cached(), "jupyter-notebook-agent model download"
    here = path is not None and path.is_file()
    detail = f"{local_model}: {path}" if here else f"{local_model}: not here"
    found.append(Finding("default local model", here, detail, advice))
    return found
