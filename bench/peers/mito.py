"""Mito AI's headless runner, `mito-ai run "REQUEST" -o NOTEBOOK`: its agent answers in JSON held
to a schema (`response_format`), no tool calls, and runs its code in a local ipykernel of its own
environment, in the folder it is started in; the notebook it saves has its cells, not their
outputs. It takes an OpenAI-compatible endpoint from OLLAMA_BASE_URL (the base, `/v1` and all)
and OLLAMA_MODEL, and allows no more than 50 turns, with no option to change that.

One thing is changed, by the command that starts it: its client gives up on a request after 30 s
(then retries it), which suits hosted models; a small local model on a CPU takes minutes over the
13,000 tokens of its first prompt, so the harness lets a request take as long as the task may."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from jupyter_notebook_agent.agent import AgentConfig
from jupyter_notebook_agent.sandbox import SANDBOX_KERNEL
from jupyter_notebook_agent.sandbox.image import PYTHON_PACKAGES
from peers.environment import ensure_venv

NAME = "mito"
REQUIREMENTS = ("mito-ai-cli==0.1.1", *PYTHON_PACKAGES)
"""The runner, and the libraries its code needs, at the versions our sandbox kernel has."""

NO_ONE_TO_ASK = "No one is here to answer: use your best judgement and go on.\n" * 50
"""Its standard input: the answers to its ask_user_question, which reads them from there."""

SETTINGS_PREFIXES = (
    *("OPENAI_", "ANTHROPIC_", "GEMINI_", "AZURE_OPENAI_", "LITELLM_", "ABACUS_", "OLLAMA_"),
    *("JUPYTER_", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"),
)
"""Settings of ours that would send it to another provider, another kernel or a proxy."""

NOWHERE = "http://127.0.0.1:9"
"""A proxy that refuses every connection: its telemetry, or any other call out, fails at once."""


def install() -> Path:
    """Its environment's bin folder."""
    return ensure_venv(NAME, REQUIREMENTS)


LAUNCHER = (
    "import sys\n"
    "from mito_ai_core.clients.openai_client import OpenAIClient\n"
    "OpenAIClient.timeout = float(sys.argv.pop(1))\n"
    "from mito_ai_cli.main import main\n"
    "sys.exit(main())\n"
)
"""`mito-ai`, with its request timeout (seconds, its first argument) in place of the 30 s."""


def command(bin_folder: Path, request: str, notebook: Path, request_timeout: float) -> list[str]:
    return [str(bin_folder / "python"), "-c", LAUNCHER, str(request_timeout),
            "run", request, "-o", str(notebook)]  # fmt: skip


def environment(home: Path, base_url: str, model: str) -> dict[str, str]:
    """Its settings for one task: the endpoint, and a home of its own (its chat threads, user
    file and kernelspecs are read from there) whose user file turns telemetry off."""
    (home / ".mito").mkdir(parents=True, exist_ok=True)
    (home / ".mito" / "user.json").write_text(json.dumps({"mitosheet_telemetry": False}))
    kept = {k: v for k, v in os.environ.items() if not k.upper().startswith(SETTINGS_PREFIXES)}
    proxies = {name: NOWHERE for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")}
    return (
        kept
        | proxies
        | {
            "HOME": str(home),
            "NO_PROXY": "127.0.0.1,localhost",
            "OLLAMA_BASE_URL": base_url,
            "OLLAMA_MODEL": model,
        }
    )


def with_outputs(notebook: Path, folder: Path) -> Path:
    """Its notebook run again from the top in our sandbox kernel, in the task's folder, beside
    the one it saved: the checkers read outputs, which it does not save."""
    executed = notebook.with_suffix(".executed.ipynb")
    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name=SANDBOX_KERNEL,
        timeout=int(AgentConfig.execution_timeout_s),
        allow_errors=True,
        resources={"metadata": {"path": str(folder)}},
    )
    client.execute()
    nbformat.write(nb, executed)
    return executed
