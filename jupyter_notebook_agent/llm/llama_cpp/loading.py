"""Loading a GGUF file with llama.cpp: where the file is, whether it is whole, and which layers
the GPU takes."""

from __future__ import annotations

import ctypes
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..base import ModelError
from .hub import HubFile

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "the llama.cpp backend needs the extra [local]: pip install 'jupyter-notebook-agent[local]' "
    "(it builds llama.cpp; see the README for GPU builds)"
)


TOOL_CALL_FORMATS = ("native", "json")


@dataclass
class LlamaCppOptions:
    """How a local model is run."""

    n_ctx: int = 8192
    """Tokens of context: the whole conversation of a run must fit."""
    threads: int | None = None
    """CPU threads; None lets llama.cpp choose."""
    gpu_layers: int = -1
    """Layers to offload to the GPU: -1 all (when the build can offload), 0 none."""
    max_tokens: int = 4096
    """Tokens one answer may take."""
    temperature: float = 0.2
    """Sampling temperature: low, for code."""
    seed: int | None = None
    """A fixed sampling seed makes runs repeatable; None draws one."""
    tool_calls: str = "native"
    """How the model writes tool calls: "native", in its chat template's own format where the
    template has one (else in JSON), or "json", always in the JSON envelope."""


def resolve_path(name: str) -> Path:
    """The GGUF file a model name means: a path, or `hf:OWNER/REPO/FILE.gguf` in the hub's cache.
    Nothing is downloaded here."""
    if hub_file := HubFile.of(name):
        path = hub_file.cached()
        if path is None:
            raise ModelError(
                f"{hub_file} is not downloaded yet: run `jupyter-notebook-agent model download "
                f"{hub_file}` (or use the panel's download button)"
            )
        return path
    path = Path(name).expanduser()
    if not path.is_file():
        if is_bare_name(name):
            raise NotAModelFile(name)
        raise ModelError(f"no model file at {path}: give the path of a .gguf file")
    return path


def is_bare_name(name: str) -> bool:
    """A name, not a path (`gpt-4o-mini`): most likely a hosted model's, given where a local
    model was expected."""
    return not ({"/", os.sep} & set(name) or name.endswith(".gguf") or name.startswith("~"))


class NotAModelFile(ModelError):
    """A local model named by a bare name that is no file here: a hosted model's name, say,
    with no endpoint set up to serve it."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"{name} is not a model file on this machine: give the path of a .gguf file, or an "
            "endpoint's URL (--base-url) to use a hosted model"
        )
        self.name = name


def check_gguf(path: Path) -> dict[str, Any]:
    """The file's metadata, read without loading the weights; ModelError when the file is not
    a whole GGUF model (an interrupted download, say)."""
    import gguf

    try:
        reader = gguf.GGUFReader(path)
    except ValueError as error:
        if "magic" in str(error):
            raise ModelError(f"{path} is not a GGUF model file") from None
        raise ModelError(
            f"{path} is truncated or damaged ({path.stat().st_size} bytes; an interrupted "
            f"download?): {error}"
        ) from None
    return {name: field.contents() for name, field in reader.fields.items() if _scalar(field)}


def _scalar(field: Any) -> bool:
    """Strings and numbers; the vocabulary's long arrays are left out."""
    return len(field.types) == 1


@dataclass
class Offload:
    """Where a loaded model's layers run."""

    layers: int
    on_gpu: int
    note: str = ""
    """Why the GPU was not used, when it was not."""


_OFFLOADED = re.compile(r"offloaded (\d+)/(\d+) layers to GPU")


def load_llama(path: Path, options: LlamaCppOptions) -> tuple[Any, Offload]:
    """A llama_cpp.Llama on every layer the GPU can take; if GPU initialisation fails, the CPU,
    with one clear log line."""
    import llama_cpp

    gpu_layers = options.gpu_layers if llama_cpp.llama_supports_gpu_offload() else 0
    note = "" if gpu_layers else "this llama.cpp build cannot offload to a GPU"
    try:
        llama, lines = _load(path, options, gpu_layers)
    except ValueError as error:
        if not gpu_layers:
            raise ModelError(f"llama.cpp could not load {path}: {error}") from error
        note = f"GPU initialisation failed ({error})"
        log.warning("%s: %s; running on the CPU", path.name, note)
        llama, lines = _load(path, options, 0)
    found = _OFFLOADED.search(lines)
    layers = llama_cpp.llama_model_n_layer(llama._model.model) + 1
    on_gpu = int(found.group(1)) if found else 0
    return llama, Offload(int(found.group(2)) if found else layers, on_gpu, note)


def _load(path: Path, options: LlamaCppOptions, gpu_layers: int) -> tuple[Any, str]:
    """Loads with llama.cpp's log captured (it says how many layers went to the GPU)."""
    import llama_cpp
    from llama_cpp import _logger

    from .sampling import GrammarCheckedLlama

    lines: list[str] = []

    @llama_cpp.llama_log_callback
    def capture(level: int, text: bytes, user_data: Any) -> None:
        lines.append(text.decode(errors="replace"))

    llama_cpp.llama_log_set(capture, ctypes.c_void_p(0))
    try:
        llama = GrammarCheckedLlama(
            str(path),
            n_ctx=options.n_ctx,
            n_threads=options.threads,
            n_gpu_layers=gpu_layers,
            seed=llama_cpp.LLAMA_DEFAULT_SEED if options.seed is None else options.seed,
            verbose=False,
        )
    finally:
        llama_cpp.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))
    return llama, "".join(lines)
