"""The model a peer runs, served over an OpenAI-compatible endpoint on 127.0.0.1: a local GGUF by
llama-cpp-python's own server (in an environment of its own), any other model by the endpoint
that --base-url names. In front of either, a meter counts each task's requests and tokens (a peer
reports neither), and says a structured-answer request the way the server understands it."""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from serving import free_port, running, wait_ready

from jupyter_notebook_agent.llm import parse_model_string
from jupyter_notebook_agent.llm.llama_cpp import LlamaCppOptions
from jupyter_notebook_agent.llm.llama_cpp.chat_template import builtin_name
from jupyter_notebook_agent.llm.llama_cpp.loading import resolve_path
from peers.environment import CACHE, ensure_venv

GEMMA_TEMPLATE = (
    "{{ bos_token }}"
    "{% set system = messages[0].content + '\\n\\n' if messages[0].role == 'system' else '' %}"
    "{% for message in (messages[1:] if system else messages) %}"
    "<start_of_turn>{{ 'model' if message.role == 'assistant' else 'user' }}\n"
    "{{ system if loop.first else '' }}{{ message.content }}"
    "{% if not (loop.last and message.role == 'assistant' and not message.content) %}"
    "<end_of_turn>\n{% endif %}"
    "{% endfor %}"
)
"""Gemma's turns, the system message put before the first user message as Gemma's own template
and llama.cpp's built-in one do; the server adds an empty assistant turn to answer in."""

SERVER_CHAT_FORMATS = {"chatml": "chatml", "llama3": "llama-3"}
"""llama-cpp-python's server's names for the built-in templates our backend may choose."""


@dataclass
class Meter:
    """One task's traffic: its agent's turns (the requests for a structured answer), and the
    tokens of every request."""

    turns: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class MeteredEndpoint(ThreadingHTTPServer):
    """Relays POSTs under `url(key)` to `upstream`, counting them into `meters[key]`."""

    daemon_threads = True

    def __init__(self, upstream: str, api_key: str, local: LlamaCppOptions | None) -> None:
        super().__init__(("127.0.0.1", 0), _Relay)
        self.upstream, self.api_key = upstream.rstrip("/"), api_key
        self.local = local
        """Where the upstream is llama-cpp-python's server: how our side runs the model."""
        self.meters: dict[str, Meter] = {}
        self._lock = threading.Lock()

    def url(self, key: str) -> str:
        """The base URL a peer's task is given (`chat/completions` follows it)."""
        return f"http://127.0.0.1:{self.server_port}/{key}"

    def count(self, key: str, request: dict[str, Any], answer: bytes) -> None:
        try:
            usage = json.loads(answer).get("usage") or {}
        except (ValueError, AttributeError):  # a stream, or not JSON
            usage = {}
        with self._lock:
            meter = self.meters.setdefault(key, Meter())
            meter.turns += "response_format" in request
            meter.prompt_tokens += usage.get("prompt_tokens") or 0
            meter.completion_tokens += usage.get("completion_tokens") or 0


class _Relay(BaseHTTPRequestHandler):
    server: MeteredEndpoint

    def do_POST(self) -> None:
        key, _, path = self.path.lstrip("/").partition("/")
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.server.local:
            body = as_local_request(body, self.server.local)
        request = urllib.request.Request(
            f"{self.server.upstream}/{path}",
            data=json.dumps(body).encode(),
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {self.server.api_key}",
            },
        )
        kind = "application/json"
        try:
            with urllib.request.urlopen(request) as response:
                status, answer = response.status, response.read()
                kind = response.headers.get("Content-Type", kind)
        except urllib.error.HTTPError as error:
            status, answer = error.code, error.read()
        except OSError as error:  # no answer: the server is gone, or was never there
            status, answer = 502, json.dumps({"error": {"message": str(error)}}).encode()
        self.server.count(key, body, answer)
        with contextlib.suppress(ConnectionError):  # the peer gave up waiting: counted all the same
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the counts say what went through."""


def as_local_request(body: dict[str, Any], local: LlamaCppOptions) -> dict[str, Any]:
    """The request as llama-cpp-python's server takes it, with our side's limit on an answer
    where it sets none (the server's own is the whole context: a small model that never stops
    would hold it, and every request queued behind, for the rest of the task). The server holds
    an answer to a schema given as `json_object` with a `schema`, and refuses OpenAI's
    `json_schema` form of the same request."""
    body = {"max_tokens": local.max_tokens} | body
    form = body.get("response_format") or {}
    if form.get("type") != "json_schema":
        return body
    return body | {
        "response_format": {"type": "json_object", "schema": form["json_schema"]["schema"]}
    }


@contextmanager
def metered(
    upstream: str, api_key: str, local: LlamaCppOptions | None = None
) -> Iterator[MeteredEndpoint]:
    endpoint = MeteredEndpoint(upstream, api_key, local)
    thread = threading.Thread(target=endpoint.serve_forever, daemon=True)
    thread.start()
    try:
        yield endpoint
    finally:
        endpoint.shutdown()
        endpoint.server_close()


def check_servable(model: str, base_url: str | None) -> None:
    """ValueError, before anything runs, for a model that no endpoint here can serve."""
    backend, name = parse_model_string(model)
    if backend == "llama-cpp":
        resolve_path(name)
    elif backend != "openai" or not base_url:
        raise ValueError(
            f"a peer is given a llama-cpp: model, or an OpenAI-compatible one with --base-url, "
            f"not {model!r}"
        )


@dataclass(frozen=True)
class Served:
    endpoint: MeteredEndpoint
    model: str
    """The name the peer asks the endpoint for."""


@contextmanager
def serve(
    model: str, base_url: str | None, options: LlamaCppOptions, folder: Path
) -> Iterator[Served]:
    """The model, served for as long as the peer runs; `folder` takes the server's log."""
    backend, name = parse_model_string(model)
    if backend == "llama-cpp":
        gguf = resolve_path(name)
        with llama_server(gguf, options, folder) as upstream:
            with metered(upstream, "none", options) as endpoint:
                yield Served(endpoint, gguf.stem)
    else:
        assert base_url, "check_servable said so"
        key = os.environ.get("OPENAI_API_KEY", "none")
        with metered(base_url, key) as endpoint:
            yield Served(endpoint, name)


@contextmanager
def llama_server(gguf: Path, options: LlamaCppOptions, folder: Path) -> Iterator[str]:
    """llama-cpp-python's server on the GGUF, with the settings our side loads it with; yields
    its base URL."""
    version = importlib.metadata.version("llama-cpp-python")
    bin_folder = ensure_venv(
        "llama-server", [f"llama-cpp-python[server]=={version}"], cached_wheels(version)
    )
    port = free_port()
    command = [
        str(bin_folder / "python"), "-m", "llama_cpp.server", "--model", str(gguf),
        "--model_alias", gguf.stem, "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", str(options.n_ctx), "--n_gpu_layers", str(options.gpu_layers),
        # Logits of every position of the context: gigabytes, for nothing a chat needs.
        "--logits_all", "False",
        # Prompts' states kept in memory: a peer's short side requests (naming its chat, say)
        # would otherwise evict its conversation's prefix, as our side's in-process model
        # keeps it, and each turn would evaluate the whole conversation again.
        "--cache", "True",
        *(["--n_threads", str(options.threads)] if options.threads else []),
        *(["--seed", str(options.seed)] if options.seed is not None else []),
        *chat_format_args(gguf, folder),
    ]  # fmt: skip
    log = folder / "llama-server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    with running(process, log):
        wait_ready(f"http://127.0.0.1:{port}/", process, "v1/models")
        yield f"http://127.0.0.1:{port}/v1"


def cached_wheels(version: str) -> Path | None:
    """The folder of the llama-cpp-python wheel that scripts/setup.sh built (the newest, where
    several builds were made); None: pip builds it (minutes)."""
    wheels = sorted(
        (CACHE / "wheels").glob(f"*/llama_cpp_python-{version}-*.whl"),
        key=lambda wheel: wheel.stat().st_mtime,
    )
    return wheels[-1].parent if wheels else None


def chat_format_args(gguf: Path, folder: Path) -> list[str]:
    """The server's chat template: the GGUF's own where it has one (the server's default), else
    the one our backend chooses by architecture (`builtin_name`, which needs no llama_cpp: the
    runner cannot import it, as bench/llama_cpp.py shadows it). The server's own fallback is
    Llama 2's, and its named Gemma format drops the system message, which holds the whole of a
    peer's instructions."""
    metadata = gguf_metadata(gguf)
    if "tokenizer.chat_template" in metadata:
        return []
    chosen = builtin_name(metadata)
    if chosen == "gemma":
        config = folder / "gemma-chat-template.json"
        config.write_text(
            json.dumps(
                {
                    "chat_template": GEMMA_TEMPLATE,
                    "bos_token": "<bos>",
                    "eos_token": "<end_of_turn>",
                }
            )
        )
        return ["--chat_format", "hf-tokenizer-config", "--hf_tokenizer_config_path", str(config)]
    if chosen not in SERVER_CHAT_FORMATS:
        print(
            f"The server has no {chosen!r} chat template, which our side uses for {gguf.name}: "
            "it gets ChatML",
            file=sys.stderr,
        )
    return ["--chat_format", SERVER_CHAT_FORMATS.get(chosen, "chatml")]


def gguf_metadata(gguf: Path) -> dict[str, Any]:
    """What chooses a chat template, from the file's header."""
    from gguf import GGUFReader

    fields = GGUFReader(gguf).fields
    keys = (
        "general.architecture",
        "tokenizer.ggml.pre",
        "tokenizer.ggml.add_bos_token",
        "tokenizer.chat_template",
    )
    return {key: fields[key].contents() for key in keys if key in fields}
