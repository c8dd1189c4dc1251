"""The extension under a JupyterHub-style base URL (`/user/NAME/`): REST and WebSocket answer
there and only there. The frontend under such a base URL: ui-tests/tests/base_url.spec.ts."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .agent_api import receive_until
from .conftest import add_cell_turn, complete, runs_server_config
from .test_server_runs import make_notebook, read

BASE_URL = "/user/agent-tester/"


@pytest.fixture
def jp_base_url() -> str:
    return BASE_URL


@pytest.fixture
def jp_server_config(replay) -> dict[str, Any]:
    """The runs' own set-up, under the base URL."""
    return runs_server_config(replay)


async def test_a_whole_run_under_a_base_url(api, replay, jp_fetch, jp_root_dir):
    replay.script.turns = [add_cell_turn("print(6 * 7)"), complete("It is 42.")]
    path = make_notebook(jp_root_dir)
    response = await jp_fetch(
        "notebook-agent",
        "runs",
        method="POST",
        body=json.dumps({"path": path, "prompt": "six times seven"}),
    )
    assert response.code == 201
    run = json.loads(response.body)
    assert response.headers["Location"] == f"{BASE_URL}notebook-agent/runs/{run['id']}"
    socket = await api.events(run["id"])
    events = await receive_until(socket, "run_finished")
    (outputs,) = [e for e in events if e["type"] == "cell_outputs"]
    assert outputs["outputs"][0]["text"] == "42\n"
    assert (await api.finished(run["id"]))["outcome"]["summary"] == "It is 42."
    assert read(jp_root_dir, path).cells[-1].outputs[0].text == "42\n"
    assert (await api.call("GET", "status"))["kernel"]["name"] == "python3"


async def test_nothing_answers_outside_the_base_url(http_server_client, jp_serverapp):
    headers = {"Authorization": f"token {jp_serverapp.identity_provider.token}"}
    for path in ("/notebook-agent/status", "/notebook-agent/runs"):
        outside = await http_server_client.fetch(path, headers=headers, raise_error=False)
        assert outside.code == 404, f"{path} answered {outside.code}"
    inside = await http_server_client.fetch(
        f"{BASE_URL}notebook-agent/status", headers=headers, raise_error=False
    )
    assert inside.code == 200
