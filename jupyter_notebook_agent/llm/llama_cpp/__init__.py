"""The llama-cpp backend: a GGUF model run in this process by llama.cpp (the extra `[local]`).

`model` streams turns, `grammar` holds tool calls to valid JSON (`sampling` checks each token
against it), `chat_template` makes the prompts (for a file without a template, llama.cpp's
built-in one for its architecture), `native_calls` learns a template's own tool-call format,
`loading` finds, checks and loads the file (`hardware`: which GPU builds fit this machine), and
`hub` fetches models from the Hugging Face hub.
"""

from .loading import (
    INSTALL_HINT,
    TOOL_CALL_FORMATS,
    LlamaCppOptions,
    NotAModelFile,
    Offload,
    check_gguf,
    is_bare_name,
    load_llama,
    resolve_path,
)
from .model import LlamaCppModel

__all__ = [
    "INSTALL_HINT",
    "TOOL_CALL_FORMATS",
    "LlamaCppModel",
    "LlamaCppOptions",
    "NotAModelFile",
    "Offload",
    "check_gguf",
    "is_bare_name",
    "load_llama",
    "resolve_path",
]
