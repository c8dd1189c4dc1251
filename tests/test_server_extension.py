"""The server extension: its status endpoint, and authentication on every endpoint it adds."""

from __future__ import annotations

import json
import re

import pytest
from jupyter_server.utils import url_path_join

from jupyter_notebook_agent.server.app import NotebookAgent
from jupyter_notebook_agent.server.handlers import ROUTES

from .agent_api import SPEC

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


async def test_status_names_the_model_and_the_sandbox_and_never_the_key(jp_fetch, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-key")
    response = await jp_fetch("notebook-agent", "status")
    body = response.body.decode()
    status = json.loads(body)
    assert status["model"] == {
        "backend": "openai",
        "name": "gpt-4o-mini",
        "base_url": None,
        "problem": None,
        "api_key_set": True,
        "source": "server",
    }
    assert status["execution"] == "auto" and status["max_steps"] == 30
    assert status["kernel"] == {"name": "python3-sandbox", "sandboxed": True, "problem": None}
    assert "sk-secret" not in body


async def test_status_says_why_code_has_nowhere_safe_to_run(jp_fetch, monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    status = json.loads((await jp_fetch("notebook-agent", "status")).body)
    assert status["kernel"]["name"] is None and status["kernel"]["sandboxed"] is False
    assert "no Docker engine answers" in status["kernel"]["problem"]
    assert "c.NotebookAgent.allow_unsandboxed" in status["kernel"]["problem"]


@pytest.mark.parametrize(
    "jp_server_config",
    [
        {
            "ServerApp": {"jpserver_extensions": {"jupyter_notebook_agent": True}},
            "NotebookAgent": {
                "warm_pool_size": 0,
                "model": "openai:qwen2.5-coder:7b",
                "base_url": "http://127.0.0.1:8000/v1",
                "allow_unsandboxed": True,
                "execution": "ask",
                "max_steps": 12,
            },
        }
    ],
)
async def test_status_follows_the_configuration(jp_fetch):
    status = json.loads((await jp_fetch("notebook-agent", "status")).body)
    assert status["model"] == {
        "backend": "openai",
        "name": "qwen2.5-coder:7b",
        "base_url": "http://127.0.0.1:8000/v1",
        "problem": None,
        "api_key_set": status["model"]["api_key_set"],  # whether $OPENAI_API_KEY is set
        "source": "server",
    }
    assert (status["execution"], status["max_steps"]) == ("ask", 12)
    assert status["kernel"] == {"name": "python3-sandbox", "sandboxed": True, "problem": None}


def route_templates(pattern: str) -> list[str]:
    """A route's paths in the spec's notation: `{name}` per group, one path per alternative."""
    alternatives = re.search(r"\(\?P<\w+>(\w+(?:\|\w+)+)\)", pattern)
    if alternatives:
        return [
            path
            for word in alternatives.group(1).split("|")
            for path in route_templates(pattern.replace(alternatives.group(0), word))
        ]
    return [re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", pattern)]


def extension_routes(serverapp, base_url: str) -> list[str]:
    """Every URL this extension registered, with its path parameters filled in."""
    (extension,) = serverapp.extension_manager.extension_apps["jupyter_notebook_agent"]
    assert isinstance(extension, NotebookAgent)
    return [
        url_path_join(base_url, re.sub(r"\{\w+\}", "x", template))
        for pattern, *_ in extension.handlers
        for template in route_templates(pattern)
    ]


async def test_every_endpoint_requires_authentication(
    jp_serverapp, http_server_client, jp_base_url
):
    routes = extension_routes(jp_serverapp, jp_base_url)
    assert routes, "the extension registered no handlers"
    for route in routes:
        for method in METHODS:
            body = b"{}" if method in ("POST", "PUT", "PATCH") else None
            response = await http_server_client.fetch(
                route, method=method, body=body, raise_error=False
            )
            assert response.code in (403, 405), f"{method} {route} answered {response.code}"
    # And with the token the same routes answer: the check above is not vacuous.
    authorised = await http_server_client.fetch(
        routes[0],
        headers={"Authorization": f"token {jp_serverapp.identity_provider.token}"},
        raise_error=False,
    )
    assert authorised.code == 200


def test_every_route_is_in_the_rest_spec_and_every_spec_path_is_a_route():
    routes = {
        template.removeprefix("/notebook-agent")
        for pattern, _ in ROUTES
        for template in route_templates(pattern)
    }
    assert routes == set(SPEC["paths"]), "rest-api.yml and the handlers disagree"
