"""The sandbox kernelspec under the Jupyter server's own kernel manager, as a person picks it."""

from __future__ import annotations

import asyncio
import json

import docker
import nbformat
import pytest
from jupyter_client.asynchronous.client import AsyncKernelClient

from jupyter_notebook_agent.sandbox import SANDBOX_KERNEL
from jupyter_notebook_agent.sandbox.image import ensure_image
from jupyter_notebook_agent.sandbox.provisioner import LABEL, OWNER

from .agent_api import receive_until
from .conftest import SECRET, add_cell_turn, complete
from .test_warm_pool import filled


@pytest.fixture
def jp_server_config() -> dict:
    ensure_image()
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_notebook_agent": True}},
        "NotebookAgent": {"warm_pool_size": 1},
    }


async def run(client: AsyncKernelClient, code: str) -> list[str]:
    texts: list[str] = []

    def collect(msg: dict) -> None:
        if msg["header"]["msg_type"] == "stream":
            texts.append(msg["content"]["text"])

    reply = await client.execute_interactive(code, output_hook=collect, timeout=60)
    assert reply["content"]["status"] == "ok"
    return texts


async def test_a_notebook_gets_a_warm_sandbox_kernel_that_interrupts_restarts_and_shuts_down(
    jp_fetch, jp_serverapp, jp_root_dir, extension
):
    specs = json.loads((await jp_fetch("api", "kernelspecs")).body)
    assert specs["kernelspecs"][SANDBOX_KERNEL]["spec"]["display_name"] == "Python 3 (sandbox)"

    # What a server does once its loop runs (pytest-jupyter's server does not): the extension
    # starts its warm pool then.
    await jp_serverapp.extension_manager.start_all_extensions()
    warm = await filled(extension.pool)
    (jp_root_dir / "project").mkdir()
    session = {
        "path": "project/analysis.ipynb",
        "type": "notebook",
        "kernel": {"name": SANDBOX_KERNEL},
    }
    started = await jp_fetch("api", "sessions", method="POST", body=json.dumps(session))
    kernel_id = json.loads(started.body)["kernel"]["id"]
    manager = jp_serverapp.kernel_manager.get_kernel(kernel_id)
    container = manager.provisioner.container
    assert container.id == warm[0]  # the server's warm pool served it
    assert container is not None and container.labels["org.jupyter-notebook-agent.sandbox"] == "1"

    client = manager.client()
    client.start_channels()
    await client.wait_for_ready(timeout=60)
    printed = await run(client, "import os; print(os.getuid() != 0, os.getcwd())")
    assert printed == [f"True {jp_root_dir / 'project'}\n"]

    await jp_fetch("api", "kernels", kernel_id, "interrupt", method="POST", body="")
    await jp_fetch("api", "kernels", kernel_id, "restart", method="POST", body="")
    await client.wait_for_ready(timeout=60)
    assert manager.provisioner.container.id != container.id  # a fresh container
    assert await run(client, "print('after restart')") == ["after restart\n"]
    client.stop_channels()

    await jp_fetch("api", "kernels", kernel_id, method="DELETE")
    listed = json.loads((await jp_fetch("api", "kernels")).body)
    assert kernel_id not in {k["id"] for k in listed}
    assert docker.from_env().containers.list(all=True, filters={"id": container.id}) == []


async def test_a_run_over_rest_executes_in_a_warm_sandbox_kernel(
    api, extension, replay, jp_serverapp, jp_root_dir
):
    replay.script.turns = [
        add_cell_turn("import os, socket\nprint(os.getuid() != 0, os.getcwd())"),
        complete(),
    ]
    await jp_serverapp.extension_manager.start_all_extensions()
    extension.model, extension.base_url = "openai:test-model", replay.base_url
    extension.api_key = SECRET
    warm = await filled(extension.pool)
    folder = jp_root_dir / "project"
    folder.mkdir()
    nbformat.write(nbformat.v4.new_notebook(), folder / "analysis.ipynb")
    run = await api.start("project/analysis.ipynb")
    events = await receive_until(await api.events(run["id"]), "run_finished", 120)
    (outputs,) = [e for e in events if e["type"] == "cell_outputs"]
    assert outputs["outputs"][0]["text"] == f"True {folder}\n"
    assert events[-1]["success"]
    ready = [w.manager.provisioner.container.id for w in extension.pool.ready]
    assert warm[0] not in ready  # the run claimed a warm kernel
    # The kernel is the notebook's (a session's): it stays for the person once the run is done,
    # the one container besides the pool's, and nothing else starts behind anyone's back.
    finished = await api.finished(run["id"])
    await asyncio.sleep(5)
    assert jp_serverapp.kernel_manager.list_kernel_ids() == [finished["kernel_id"]]
    mine = {"label": f"{LABEL}.owner={OWNER}"}
    left = {c.id for c in docker.from_env().containers.list(all=True, filters=mine)}
    assert left == {w.manager.provisioner.container.id for w in extension.pool.ready} | {warm[0]}


async def test_a_run_stopped_while_its_kernel_starts_cold_names_the_session_it_made(
    api, extension, replay, jp_root_dir, jp_fetch
):
    """No warm pool: the stop lands while the notebook's new session starts its kernel cold.
    The stop returns once that session is made, so that the stopped run names its kernel and
    whoever closes the notebook next finds the session (a stop that returned before left a
    kernel that nothing closed)."""
    replay.script.turns = [add_cell_turn("print(1)"), complete()]
    extension.model, extension.base_url = "openai:test-model", replay.base_url
    extension.api_key = SECRET
    nbformat.write(nbformat.v4.new_notebook(), jp_root_dir / "cold.ipynb")
    run = await api.start("cold.ipynb")
    for _ in range(3000):
        if "cold.ipynb" in extension.registry._creating:
            break
        await asyncio.sleep(0.01)
    await api.call("POST", f"runs/{run['id']}/stop")
    stopped = await api.call("GET", f"runs/{run['id']}")
    sessions = json.loads((await jp_fetch("api", "sessions")).body)
    made = [s["kernel"]["id"] for s in sessions if s["path"] == "cold.ipynb"]
    assert stopped["state"] == "finished"
    assert stopped["kernel_id"] is not None and made == [stopped["kernel_id"]]


async def test_a_run_stopped_while_its_kernel_starts_leaves_no_container(
    api, extension, replay, jp_serverapp, jp_root_dir
):
    """Stop lands while a warm kernel is being claimed and started: the start finishes, and
    the kernel is the notebook's session's, rather than a container with no manager to remove
    it."""
    replay.script.turns = [add_cell_turn("print(1)"), complete()]
    await jp_serverapp.extension_manager.start_all_extensions()
    extension.model, extension.base_url = "openai:test-model", replay.base_url
    extension.api_key = SECRET
    mine = {"label": f"{LABEL}.owner={OWNER}"}
    for number in range(4):
        await filled(extension.pool)
        name = f"stopped-{number}.ipynb"
        nbformat.write(nbformat.v4.new_notebook(), jp_root_dir / name)
        run = await api.start(name)
        await receive_until(await api.events(run["id"]), "cell_proposed", 30)
        await api.call("POST", f"runs/{run['id']}/stop")
    await asyncio.sleep(3)
    await filled(extension.pool)
    left = {c.id for c in docker.from_env().containers.list(all=True, filters=mine)}
    kernels = jp_serverapp.kernel_manager
    sessions = {
        kernels.get_kernel(kernel_id).provisioner.container.id
        for kernel_id in kernels.list_kernel_ids()
    }
    assert len(sessions) == 4  # each notebook's own, held by its session
    assert left == {w.manager.provisioner.container.id for w in extension.pool.ready} | sessions
