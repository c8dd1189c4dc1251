"""Local models in the server: the default one offered when no model is configured, its download
on request, and runs on a llama.cpp model (the tiny random one the tests write) over REST."""

from __future__ import annotations

import asyncio
from typing import Any

import nbformat
import pytest

from .agent_api import AgentAPI, receive_until
from .conftest import put_in_hub_cache

REPO, FILE = "tests/default-GGUF", "tiny-q8.gguf"
DEFAULT = f"hf:{REPO}/{FILE}"


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    """No model configured, no OpenAI key or endpoint: the server offers its default local
    model. Code runs in a local kernel (the sandbox has tests of its own)."""
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_notebook_agent": True}},
        "NotebookAgent": {"warm_pool_size": 0, "kernel_name": "python3", "allow_unsandboxed": True},
        "LlamaCpp": {"default_model": DEFAULT},
    }


@pytest.fixture(autouse=True)
def no_openai(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


async def download_ended(api: AgentAPI) -> dict:
    """The status, once the download's own progress says it has ended."""
    for _ in range(200):
        download = await api.call("GET", "local-model/download")
        if download["state"] != "running":
            status = await api.call("GET", "status")
            assert status["local_model"]["download"] == download
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"the download still runs: {download}")


async def test_with_no_model_configured_the_default_local_model_is_offered(api, extension):
    extension.llama_cpp.default_model = "hf:tests/absent-GGUF/absent.gguf"
    status = await api.call("GET", "status")
    assert status["model"]["backend"] == "llama-cpp"
    assert status["model"]["name"] == "hf:tests/absent-GGUF/absent.gguf"
    assert "not downloaded yet" in status["model"]["problem"]
    assert status["local_model"] == {
        "reference": "hf:tests/absent-GGUF/absent.gguf",
        "downloaded": False,
        "download": None,
        "size": None,  # the hub cannot be reached from the tests
    }
    assert await api.call("GET", "local-model/download") is None
    # Nothing downloads until asked; asked, this one fails (no hub here), and says so.
    started = await api.call("POST", "local-model/download", expect=202)
    assert started["reference"] == "hf:tests/absent-GGUF/absent.gguf"
    status = await download_ended(api)
    download = status["local_model"]["download"]
    assert download["state"] == "failed"
    assert download["error"] == (
        "the model hub cannot be reached from this server: use a model file on disk or an endpoint"
    )
    assert status["model"]["problem"]


async def test_a_downloaded_default_is_used_and_runs_to_its_step_limit(
    api, hf_cache, tiny_gguf, jp_root_dir
):
    put_in_hub_cache(hf_cache, REPO, FILE, tiny_gguf)
    status = await api.call("GET", "status")
    assert status["model"]["problem"] is None
    assert status["local_model"]["downloaded"] is True
    # A download asked for a file already here ends at once.
    await api.call("POST", "local-model/download", expect=202)
    assert (await download_ended(api))["local_model"]["download"]["state"] == "done"

    nbformat.write(nbformat.v4.new_notebook(), jp_root_dir / "local.ipynb")
    run = await api.start("local.ipynb", "explore", max_steps=2)
    socket = await api.events(run["id"])
    events = await receive_until(socket, "run_finished")
    socket.close()
    steps = [e["step"] for e in events if e["type"] == "step"]
    assert steps in ([1], [1, 2])  # the model may call complete_task first: it is random
    turns = [e for e in events if e["type"] == "model_turn"]
    assert len(turns) == len(steps)
    # The server loaded the model when it was first asked about it, and evaluated the system
    # prompt and tools: the run's first step found them in the cache.
    first = turns[0]["usage"]
    assert first["cached_tokens"] > 0.8 * first["prompt_tokens"]
    assert sum(e["type"] == "tool_call" for e in events) == len(steps)  # one valid call a turn
    assert events[-1]["reason"] in ("max_steps", "completed", "gave_up")
    # Finished once its cells are written: run_finished is said before that.
    assert (await api.finished(run["id"], 60))["model"] == DEFAULT
    notebook = nbformat.read(jp_root_dir / "local.ipynb", as_version=4)
    nbformat.validate(notebook)


async def test_a_model_that_does_not_come_from_the_hub_has_nothing_to_download(api, extension):
    extension.model = "openai:some-model"
    answer = await api.call("POST", "local-model/download", expect=409)
    assert "is not downloaded" in answer["message"]
    assert (await api.call("GET", "status"))["local_model"] is None


async def test_a_configured_openai_model_without_a_key_says_how_to_set_one(api, extension):
    extension.model = "gpt-4o-mini"
    status = await api.call("GET", "status")
    assert "no API key" in status["model"]["problem"]
    assert "OPENAI_API_KEY" in status["model"]["problem"]


@pytest.mark.parametrize("name", ["folder", "x" * 300])
async def test_a_model_that_is_a_folder_or_an_impossible_name_is_400(api, jp_root_dir, name):
    """Were 500s: IsADirectoryError, and the file system's 'File name too long'."""
    (jp_root_dir / "folder").mkdir()
    nbformat.write(nbformat.v4.new_notebook(), jp_root_dir / "local.ipynb")
    body = {"path": "local.ipynb", "prompt": "x", "model": str(jp_root_dir / name)}
    answer = await api.call("POST", "runs", body, expect=400)
    assert "cannot be read" in answer["message"] or "no model file" in answer["message"]
