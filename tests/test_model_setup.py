"""The model set up from the JupyterLab panel: saved on the server, in effect at once and after a
restart, checked with plain messages; an endpoint's models listed; a hub download cancelled.
The endpoint is the replay server over HTTP, the hub a small one over HTTP, both for the real
clients (openai, huggingface_hub)."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
import tornado.httpserver
import tornado.iostream
import tornado.netutil
import tornado.web

from jupyter_notebook_agent.llm.base import ModelTurn
from jupyter_notebook_agent.testing.replay_server import ReplayScript, ReplayServerThread

from .agent_api import AgentAPI
from .conftest import SECRET, add_cell_turn, complete, free_port
from .test_server_runs import rest, start_jupyter

ABSENT = "hf:tests/absent-GGUF/absent.gguf"
UNREACHABLE = (
    "the model hub cannot be reached from this server: use a model file on disk or an endpoint"
)


@pytest.fixture(autouse=True)
def no_openai(monkeypatch: pytest.MonkeyPatch) -> None:
    """No model configured in any way: no key or endpoint in the environment either."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


@pytest.fixture
def settings_path(tmp_path: Path) -> Path:
    return tmp_path / "settings" / "model.json"


@pytest.fixture
def saved() -> str | None:
    """What the settings file holds as the server starts (None: there is none)."""
    return None


@pytest.fixture
def jp_server_config(settings_path: Path, saved: str | None) -> dict[str, Any]:
    """A server with no model configured (its default local model is not downloaded), running
    code in a local kernel; its panel's settings in a test's folder."""
    if saved is not None:
        settings_path.parent.mkdir(parents=True)
        if saved == "<folder>":
            settings_path.mkdir()
        else:
            settings_path.write_text(saved)
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_notebook_agent": True}},
        "NotebookAgent": {
            "warm_pool_size": 0,
            "kernel_name": "python3",
            "allow_unsandboxed": True,
            "save_interval": 0.05,
            "model_settings_path": str(settings_path),
        },
        "LlamaCpp": {"default_model": ABSENT},
    }


def endpoint(replay: ReplayServerThread, **fields: Any) -> dict[str, Any]:
    """A PUT model body for the replayed endpoint, with its key unless `fields` say otherwise."""
    return {"model": "openai:test-model", "base_url": replay.base_url, "api_key": SECRET} | fields


def make_notebook(root: Path, name: str = "analysis.ipynb") -> str:
    nbformat.write(nbformat.v4.new_notebook(), root / name)
    return name


def no_traceback(records: list[logging.LogRecord]) -> bool:
    return not [r for r in records if r.exc_info or "Uncaught" in r.getMessage()]


async def test_an_endpoint_set_up_in_the_panel_serves_the_next_run(
    api: AgentAPI, replay, jp_root_dir, settings_path, caplog
):
    before = await api.call("GET", "status")
    assert before["model"]["source"] == "server"
    assert before["model"]["api_key_set"] is False
    assert "not downloaded yet" in before["model"]["problem"]

    with caplog.at_level(logging.DEBUG):
        answer = await api.call("PUT", "model", endpoint(replay))
        assert answer["model"] == {
            "backend": "openai",
            "name": "test-model",
            "base_url": replay.base_url,
            "problem": None,
            "api_key_set": True,
            "source": "panel",
        }
        assert answer["local_model"] is None  # nothing to download for an endpoint's model
        status = await api.call("GET", "status")
        assert status == answer
        assert SECRET not in json.dumps(answer) + json.dumps(status)

        # Saved for the server alone: the key is in the file, which no one else can read.
        assert settings_path.stat().st_mode & 0o777 == 0o600
        assert json.loads(settings_path.read_text())["api_key"] == SECRET
        assert not list(settings_path.parent.glob(".model-*"))  # no temporary file left

        replay.script.turns = [add_cell_turn("print(6 * 7)"), complete("It is 42.")]
        run = await api.start(make_notebook(jp_root_dir), "six times seven")
        finished = await api.finished(run["id"])
    assert finished["outcome"]["reason"] == "completed", finished
    assert finished["model"] == "test-model"
    assert replay.script.requests, "the run never asked the replayed endpoint"
    assert SECRET not in caplog.text
    assert "The model set up in the panel is in effect: openai:test-model" in caplog.text


async def test_a_key_left_out_is_kept_an_empty_one_cleared_an_empty_model_resets(
    api: AgentAPI, replay, settings_path
):
    await api.call("PUT", "model", endpoint(replay))
    kept = await api.call("PUT", "model", endpoint(replay, api_key=None))
    assert kept["model"]["api_key_set"] is True and kept["model"]["problem"] is None
    left_out = endpoint(replay)
    del left_out["api_key"]
    kept = await api.call("PUT", "model", left_out)
    assert kept["model"]["api_key_set"] is True
    assert json.loads(settings_path.read_text())["api_key"] == SECRET

    cleared = await api.call("PUT", "model", endpoint(replay, api_key=""))
    assert cleared["model"]["api_key_set"] is False
    assert cleared["model"]["source"] == "panel"
    assert json.loads(settings_path.read_text())["api_key"] == ""
    # Nor does a key left out now bring the earlier one back.
    assert (await api.call("PUT", "model", left_out))["model"]["api_key_set"] is False

    reset = await api.call("PUT", "model", {"model": ""})
    assert not settings_path.exists()
    assert reset["model"]["source"] == "server"
    assert (reset["model"]["backend"], reset["model"]["name"]) == ("llama-cpp", ABSENT)
    assert reset["model"]["base_url"] is None
    assert reset["local_model"]["reference"] == ABSENT


async def test_a_key_corrected_in_the_panel_serves_the_next_run(api: AgentAPI, replay, jp_root_dir):
    """The same model string with another key: the model made with the first is not reused."""
    replay.script.turns = [complete("done")]
    await api.call("PUT", "model", endpoint(replay, api_key="sk-wrong-key"))
    refused = await api.finished((await api.start(make_notebook(jp_root_dir, "a.ipynb")))["id"])
    assert refused["outcome"]["reason"] == "model_error", refused
    await api.call("PUT", "model", endpoint(replay, api_key=SECRET))
    served = await api.finished((await api.start(make_notebook(jp_root_dir, "b.ipynb")))["id"])
    assert served["outcome"]["reason"] == "completed", served


async def test_runs_under_way_keep_their_model_and_the_next_gets_the_new_one(
    api: AgentAPI, replay, jp_root_dir
):
    """The first run's model talks for a while; the setup changes meanwhile, twice, to another
    endpoint (another replay server, another model): the first run ends on its own model, which
    the second change, closing what the first set aside, leaves open for it."""
    replay.script.speed = 1
    slow_end = ModelTurn(
        content="thinking " * 20, tool_calls=complete().tool_calls, ttft_s=0.01, duration_s=1.0
    )
    replay.script.turns = [add_cell_turn("x = 1"), slow_end]
    other = ReplayScript(turns=[complete("second")], model="other-model", api_key="sk-other")
    with ReplayServerThread(other) as second:
        await api.call("PUT", "model", endpoint(replay))
        first = await api.start(make_notebook(jp_root_dir, "one.ipynb"))
        for _ in range(1000):
            if replay.script.requests:
                break
            await asyncio.sleep(0.01)
        body = {"model": "other-model", "base_url": second.base_url, "api_key": "sk-other"}
        for _ in range(2):
            assert (await api.call("PUT", "model", body))["model"]["name"] == "other-model"
        later = await api.start(make_notebook(jp_root_dir, "two.ipynb"))
        assert (await api.finished(later["id"]))["outcome"]["summary"] == "second"
        done = await api.finished(first["id"])
    assert done["model"] == "test-model" and done["outcome"]["reason"] == "completed", done
    assert len(replay.script.requests) == 2 and len(other.requests) == 1


async def test_a_model_file_on_the_server_can_be_set_up(api: AgentAPI, tiny_gguf):
    status = await api.call("PUT", "model", {"model": f"llama-cpp:{tiny_gguf}"})
    assert status["model"]["backend"] == "llama-cpp"
    assert status["model"]["name"] == str(tiny_gguf)
    assert status["model"]["problem"] is None
    assert status["model"]["api_key_set"] is False


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "must be a JSON object"),
        ({}, "the field 'model' is missing"),
        ({"model": 3}, "the field 'model' must be a string"),
        ({"model": "gpt-4o", "base_url": 1}, "the field 'base_url' must be a string"),
        ({"model": "gpt-4o", "api_key": 5}, "the field 'api_key' must be a string or null"),
        ({"model": "gpt-4o", "base_url": "ftp://host/v1"}, "is not an http(s) URL"),
        ({"model": "gpt-4o", "base_url": "localhost:8000"}, "is not an http(s) URL"),
        ({"model": "gpt-4o", "base_url": "http://me:pw@host/v1"}, "holds credentials"),
        ({"model": "gpt-4o", "api_key": "two words"}, "the API key must be one word"),
        ({"model": "llama-cpp:/nowhere/x.gguf"}, "no model file at /nowhere/x.gguf on this server"),
        ({"model": "llama-cpp:/nowhere/x.bin"}, "/nowhere/x.bin is not a .gguf file"),
        ({"model": "llama-cpp:models/x.gguf"}, "models/x.gguf is not an absolute path"),
        ({"model": "llama-cpp:gpt-4o-mini"}, "gpt-4o-mini is not a model file on this server"),
        ({"model": "llama-cpp:hf:owner-only"}, "is not hf:OWNER/REPO/FILE.gguf"),
        ({"model": "llamacpp:/models/x.gguf"}, "'llamacpp' is not a backend"),
        ({"model": "hf:owner/repo/x.gguf"}, "'hf' is not a backend"),
        ({"model": "/models/x.gguf"}, "give it as llama-cpp:/models/x.gguf"),
        ({"model": "https://api.example.com/v1"}, "the model is a URL"),
        ({"model": "openai:"}, "names no model"),
        ({"model": "replay:/nowhere/recording.json"}, "no recording at /nowhere/recording.json"),
        ({"model": "gpt\n4o"}, "must be one line"),
        ({"model": "llama-cpp:~nosuchuser/m.gguf"}, "names a home folder this server does not"),
    ],
)
async def test_a_setup_that_cannot_work_is_400_with_a_plain_message(
    api: AgentAPI, settings_path, caplog, body, words
):
    with caplog.at_level(logging.DEBUG):
        answer = await api.call("PUT", "model", body, expect=400)
        assert words in answer["message"]
        assert "pw" not in answer["message"] and "two words" not in answer["message"]
        assert not settings_path.exists()
        assert (await api.call("GET", "status"))["model"]["source"] == "server"
    assert no_traceback(caplog.records)


async def test_an_endpoints_models_are_listed_or_the_failure_said(api: AgentAPI, replay):
    scripts = [
        ReplayScript(turns=[], model=name, api_key=SECRET) for name in ("zeta", "alpha", "mid")
    ]
    with ReplayServerThread(scripts) as several:
        listed = await api.call(
            "POST", "model/endpoint-models", {"base_url": several.base_url, "api_key": SECRET}
        )
        assert listed == {"models": ["alpha", "mid", "zeta"]}

        refused = await api.call(
            "POST",
            "model/endpoint-models",
            {"base_url": several.base_url, "api_key": "sk-wrong-key"},
            expect=400,
        )
        assert refused["message"] == "the endpoint refused the key (HTTP 401)"
        # No key given, none in effect (no server key goes to an endpoint the panel names).
        refused = await api.call(
            "POST", "model/endpoint-models", {"base_url": several.base_url}, expect=400
        )
        assert refused["message"] == "the endpoint refused the key (HTTP 401)"

        # A key set up in the panel for another endpoint does not go to this one either.
        await api.call("PUT", "model", endpoint(replay))
        for key in ({}, {"api_key": None}):
            body = {"base_url": several.base_url} | key
            await api.call("POST", "model/endpoint-models", body, expect=400)

        no_list = several.base_url.removesuffix("/v1")  # answers 404 to /models
        missing = await api.call(
            "POST", "model/endpoint-models", {"base_url": no_list, "api_key": SECRET}, expect=400
        )
        assert missing["message"] == (
            "the endpoint answered HTTP 404 to /models: it may not list its models; type the "
            "model's name instead"
        )

    nobody = f"http://127.0.0.1:{free_port()}/v1"
    unreachable = await api.call(
        "POST", "model/endpoint-models", {"base_url": nobody, "api_key": SECRET}, expect=400
    )
    assert unreachable["message"].startswith("the endpoint cannot be reached from this server: ")
    assert len(unreachable["message"]) > len("the endpoint cannot be reached from this server: ")
    for answer in (refused, missing, unreachable):
        assert SECRET not in answer["message"] and "sk-wrong-key" not in answer["message"]

    for body, words in [
        ({}, "the field 'base_url' is missing"),
        ({"base_url": "not a url"}, "is not an http(s) URL"),
        ({"base_url": nobody, "api_key": 7}, "'api_key' must be a string or null"),
    ]:
        bad = await api.call("POST", "model/endpoint-models", body, expect=400)
        assert words in bad["message"]


class Troubled(tornado.web.RequestHandler):
    """An endpoint in trouble, whose error repeats the key it was given, as some do."""

    def get(self) -> None:
        key = self.request.headers.get("Authorization", "").removeprefix("Bearer ")
        self.set_status(500)
        self.finish({"error": {"message": f"the backend crashed serving {key}\nand more"}})


class NotAList(tornado.web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "text/html")
        self.finish("<html>a web page</html>")


async def test_an_endpoint_in_trouble_is_said_in_one_line_without_the_key(api: AgentAPI):
    server = HTTPThread([(r"/troubled/models", Troubled), (r"/page/models", NotAList)])
    try:
        body = {"base_url": f"{server.url}/troubled", "api_key": SECRET}
        answer = await api.call("POST", "model/endpoint-models", body, expect=400)
        assert answer["message"] == (
            "the endpoint answered HTTP 500 to /models: the backend crashed serving ***"
        )
        body = {"base_url": f"{server.url}/page", "api_key": SECRET}
        answer = await api.call("POST", "model/endpoint-models", body, expect=400)
        assert answer["message"].startswith("the endpoint's answer to /models is not a list")
    finally:
        server.close()


def start_server(root: Path, settings: Path, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A real `jupyter server` with no model configured, reading its panel's settings from
    `settings`; its log to `log`."""
    port = free_port()
    options = [
        f"--NotebookAgent.model_settings_path={settings}",
        f"--LlamaCpp.default_model={ABSENT}",
    ]
    return start_jupyter(root, port, options, log), port


async def test_the_setup_outlives_the_server(api: AgentAPI, replay, settings_path, tmp_path):
    await api.call("PUT", "model", endpoint(replay))
    root = tmp_path / "second-root"
    root.mkdir()
    make_notebook(root)
    log = tmp_path / "second.log"
    server, port = await asyncio.to_thread(start_server, root, settings_path, log)
    try:
        status = await asyncio.to_thread(rest, port, "GET", "notebook-agent/status")
        assert status["model"]["source"] == "panel"
        assert (status["model"]["name"], status["model"]["base_url"]) == (
            "test-model",
            replay.base_url,
        )
        assert status["model"]["api_key_set"] is True and status["model"]["problem"] is None
        replay.script.turns = [complete("done again")]
        run = await asyncio.to_thread(
            rest, port, "POST", "notebook-agent/runs", {"path": "analysis.ipynb", "prompt": "x"}
        )
        for _ in range(600):
            run = await asyncio.to_thread(rest, port, "GET", f"notebook-agent/runs/{run['id']}")
            if run["state"] == "finished":
                break
            await asyncio.sleep(0.05)
        assert run["outcome"]["summary"] == "done again", run
    finally:
        server.terminate()
        await asyncio.to_thread(server.wait, 30)
    said = log.read_text()
    assert (
        f"The model set up in the panel is in effect (openai:test-model, kept in {settings_path})"
        in said
    )
    assert SECRET not in said


@pytest.mark.parametrize(
    "saved",
    ["{not json", '["a list"]', '{"model": 5}', '{"base_url": "http://x/v1"}', "<folder>"],
)
async def test_a_settings_file_that_cannot_be_used_is_set_aside_with_one_warning(
    capfd, api: AgentAPI, replay, settings_path, saved
):
    """The server started (the fixture's: capfd is set up first, to hear it start) on its own
    configuration, and said why, once (the extension logs to stderr as it starts)."""
    status = await api.call("GET", "status")
    assert status["model"]["source"] == "server"
    assert status["model"]["name"] == ABSENT
    said = capfd.readouterr().err
    warnings = [line for line in said.splitlines() if "are not used" in line]
    assert len(warnings) == 1, said[-3000:]
    assert warnings[0].startswith("[W ") and str(settings_path) in warnings[0]
    assert "Traceback" not in said
    if saved != "<folder>":  # the panel's next save replaces the file
        assert (await api.call("PUT", "model", endpoint(replay)))["model"]["source"] == "panel"


class HTTPThread:
    """A Tornado app served on 127.0.0.1 from a thread of its own, at `url`."""

    def __init__(self, routes: list[tuple[str, type[tornado.web.RequestHandler]]]) -> None:
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        self.url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
        self._loop = asyncio.new_event_loop()

        def serve() -> None:
            asyncio.set_event_loop(self._loop)
            server = tornado.httpserver.HTTPServer(tornado.web.Application(routes))
            server.add_sockets(sockets)
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


class FakeHub(HTTPThread):
    """A Hugging Face hub over HTTP on 127.0.0.1, for the real hub client: every file of its
    repositories `tests/fake-*` is `content`. A download sends a first part, then waits for
    `release` before sending the rest."""

    def __init__(self, content: bytes) -> None:
        self.content = content
        self.release = threading.Event()
        self.aborted = threading.Event()
        """Set when a client left a download before its end."""
        self.ranges: list[str | None] = []
        hub = self

        class File(tornado.web.RequestHandler):
            def hub_headers(self, length: int) -> None:
                self.set_header("X-Repo-Commit", "1" * 40)
                self.set_header("ETag", '"fake-etag"')
                self.set_header("Content-Length", str(length))

            def head(self, *_: str) -> None:
                self.hub_headers(len(hub.content))

            async def get(self, *_: str) -> None:
                asked = self.request.headers.get("Range")
                hub.ranges.append(asked)
                start = int(asked.removeprefix("bytes=").split("-")[0]) if asked else 0
                if start:
                    self.set_status(206)
                self.hub_headers(len(hub.content) - start)
                try:
                    for offset in range(start, len(hub.content), 16384):
                        self.write(hub.content[offset : offset + 16384])
                        await self.flush()
                        if offset > start:
                            await asyncio.to_thread(hub.release.wait, 60)
                        await asyncio.sleep(0.005)  # time for a client's leaving to show
                except tornado.iostream.StreamClosedError:
                    hub.aborted.set()

        super().__init__([(r"/tests/fake-[^/]+/resolve/[^/]+/.+", File)])


@pytest.fixture
def fake_hub(tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """The hub client pointed at a FakeHub serving the tiny model, reporting progress every
    8 KiB (its own chunks are 10 MB)."""
    from huggingface_hub import constants

    hub = FakeHub(tiny_gguf.read_bytes())
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    template = hub.url + "/{repo_id}/resolve/{revision}/{filename}"
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 8192)
    yield hub
    hub.release.set()
    hub.close()


async def download_state(api: AgentAPI, wanted: str) -> dict:
    for _ in range(600):
        download = await api.call("GET", "local-model/download")
        if download["state"] == wanted:
            return download
        await asyncio.sleep(0.02)
    raise AssertionError(f"the download is not {wanted}: {download}")


async def test_a_download_is_cancelled_and_can_be_asked_again(
    api: AgentAPI, fake_hub: FakeHub, tiny_gguf
):
    reference = f"hf:tests/fake-{uuid.uuid4().hex[:8]}-GGUF/tiny.gguf"
    status = await api.call("PUT", "model", {"model": f"llama-cpp:{reference}"})
    assert status["local_model"]["reference"] == reference
    size = tiny_gguf.stat().st_size
    for _ in range(300):  # asked of the hub in the background
        if (await api.call("GET", "status"))["local_model"]["size"] == size:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the hub's size never came")

    started = await api.call("POST", "local-model/download", expect=202)
    assert started["state"] == "running"
    for _ in range(300):
        download = await api.call("GET", "local-model/download")
        if download["done"] > 0:
            break
        await asyncio.sleep(0.02)
    assert download["total"] == size
    cancelled = await api.call("DELETE", "local-model/download")
    assert cancelled["state"] == "cancelled" and cancelled["error"] is None
    fake_hub.release.set()  # the hub sends on; the client's next progress ends the download
    await asyncio.to_thread(fake_hub.aborted.wait, 10)
    assert fake_hub.aborted.is_set(), "the download went on after it was cancelled"
    after = await api.call("GET", "local-model/download")
    assert after["state"] == "cancelled" and after["done"] < size
    assert (await api.call("GET", "status"))["local_model"]["downloaded"] is False
    # Cancelling again changes nothing.
    assert await api.call("DELETE", "local-model/download") == after

    await api.call("POST", "local-model/download", expect=202)  # afresh
    done = await download_state(api, "done")
    assert done["done"] == size and len(fake_hub.ranges) == 2
    status = await api.call("GET", "status")
    assert status["local_model"]["downloaded"] is True
    assert status["model"]["problem"] is None


async def test_cancelling_with_no_download_under_way_changes_nothing(api: AgentAPI):
    assert await api.call("DELETE", "local-model/download") is None
    await api.call("POST", "local-model/download", expect=202)
    failed = await download_state(api, "failed")  # no hub reachable from the tests
    assert failed["error"] == UNREACHABLE
    assert await api.call("DELETE", "local-model/download") == failed


async def test_a_download_the_hub_refuses_says_why_in_one_line(api: AgentAPI, fake_hub):
    """The FakeHub has no such repository: it answers 404."""
    reference = "hf:tests/elsewhere-GGUF/tiny.gguf"
    await api.call("PUT", "model", {"model": f"llama-cpp:{reference}"})
    fake_hub.release.set()
    await api.call("POST", "local-model/download", expect=202)
    failed = await download_state(api, "failed")
    assert failed["error"] is not None and "\n" not in failed["error"]
    assert failed["error"] == f"could not download {reference}: the hub answered HTTP 404"


async def test_a_hosted_models_name_where_a_local_model_is_expected_says_what_to_do(
    api: AgentAPI, extension
):
    extension.llama_cpp.default_model = "gpt-4o-mini"
    status = await api.call("GET", "status")
    assert status["model"]["problem"] == (
        "gpt-4o-mini is not a model file on this server: set up an endpoint in the panel to "
        "use a hosted model"
    )


async def test_a_saved_key_goes_to_no_other_url(api: AgentAPI, replay, settings_path):
    """A key left out was the one saved, whatever URL came with it: a typed (or mistyped) URL
    got the key given for another endpoint, in its listing and in the runs after."""
    await api.call("PUT", "model", endpoint(replay))
    elsewhere = "http://127.0.0.1:9/v1"
    moved = await api.call(
        "PUT", "model", {"model": "openai:test-model", "base_url": elsewhere, "api_key": None}
    )
    assert moved["model"]["api_key_set"] is False
    assert json.loads(settings_path.read_text())["api_key"] == ""
    # Back at the first URL with its key given again, a listing without a key has it ...
    await api.call("PUT", "model", endpoint(replay))
    listed = await api.call(
        "POST", "model/endpoint-models", {"base_url": replay.base_url, "api_key": None}
    )
    assert listed["models"]
    # ... and one of another URL does not: that endpoint refuses a missing key.
    scripts = [ReplayScript(turns=[], model="other", api_key=SECRET)]
    with ReplayServerThread(scripts) as other:
        refused = await api.call(
            "POST", "model/endpoint-models", {"base_url": other.base_url}, expect=400
        )
    assert "refused the key" in refused["message"]


@pytest.mark.parametrize(
    "name", ["/models/Llama-3-8B", "models/qwen2.5-coder-7b-q4_k_m.gguf", "~/m.gguf"]
)
async def test_an_endpoints_model_named_like_a_path_is_taken(api: AgentAPI, replay, name):
    """llama.cpp's server lists its models by their files' paths: `openai:` says it is an
    endpoint's model all the same (these were refused as backends or model files)."""
    answer = await api.call("PUT", "model", endpoint(replay, model=f"openai:{name}"))
    assert (answer["model"]["backend"], answer["model"]["name"]) == ("openai", name)


async def test_a_server_can_keep_its_model_out_of_the_panel(api: AgentAPI, replay, extension):
    extension.allow_model_setup = False
    try:
        status = await api.call("GET", "status")
        assert status["allow_model_setup"] is False
        refused = await api.call("PUT", "model", endpoint(replay), expect=403)
        assert "set in its configuration" in refused["message"]
        await api.call("POST", "model/endpoint-models", {"base_url": replay.base_url}, expect=403)
    finally:
        extension.allow_model_setup = True
