"""Requests generated from rest-api.yml (schemathesis), valid and invalid, against a real server
process: none gets a 5xx, and none leaves a traceback in the server's log."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from jupyter_notebook_agent.testing.replay_server import ReplayScript, ReplayServerThread

from .agent_api import SPEC_PATH
from .conftest import SECRET, complete, free_port
from .test_server_runs import TOKEN, start_server

SCHEMA = schemathesis.openapi.from_path(SPEC_PATH)
#: Requests in all, spread over the operations; bounded so that the suite stays quick.
EXAMPLES = 400


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, Path, subprocess.Popen]]:
    """A server whose root holds a notebook, on a model that completes every task at once."""
    root = tmp_path_factory.mktemp("fuzz-root")
    log = root.parent / "server.log"
    nbformat.write(nbformat.v4.new_notebook(), root / "analysis.ipynb")
    script = ReplayScript(turns=[complete()] * 1000, model="test-model", api_key=SECRET)
    with ReplayServerThread(script) as replay:
        port = free_port()
        process = start_server(root, port, replay, log)
        try:
            yield f"http://127.0.0.1:{port}/notebook-agent", log, process
        finally:
            process.terminate()
            process.wait(30)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
@given(case=SCHEMA.as_strategy() | SCHEMA.as_strategy(GenerationMode.NEGATIVE))
def test_no_request_gets_a_server_error(server, case) -> None:
    base_url, _, _ = server
    response = case.call(base_url=base_url, headers={"Authorization": f"token {TOKEN}"})
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} {case.query} {case.body!r}: "
        f"{response.status_code} {response.text[:500]}"
    )


def test_the_log_holds_no_traceback(server) -> None:
    """After the fuzzing (this test runs after it): client errors were one line each."""
    _, log_file, process = server
    process.terminate()
    process.wait(30)
    log = log_file.read_text()
    assert "Traceback" not in log, log[log.find("Traceback") - 500 :][:3000]
    assert "Uncaught exception" not in log
