"""The sandbox kernelspec under the Jupyter server's own kernel manager, as a person picks it."""

from __future__ import annotations

import json

import docker
import pytest
from jupyter_client.asynchronous.client import AsyncKernelClient

from jupyter_notebook_agent.sandbox import SANDBOX_KERNEL
from jupyter_notebook_agent.sandbox.image import ensure_image


@pytest.fixture
def jp_server_config(tmp_path) -> dict:
    ensure_image()
    return {"ServerApp": {"jpserver_extensions": {"jupyter_notebook_agent": True}}}


async def run(client: AsyncKernelClient, code: str) -> list[str]:
    texts: list[str] = []

    def collect(msg: dict) -> None:
        if msg["header"]["msg_type"] == "stream":
            texts.append(msg["content"]["text"])

    reply = await client.execute_interactive(code, output_hook=collect, timeout=60)
    assert reply["content"]["status"] == "ok"
    return texts


async def test_the_server_starts_interrupts_restarts_and_shuts_down_a_sandbox_kernel(
    jp_fetch, jp_serverapp
):
    specs = json.loads((await jp_fetch("api", "kernelspecs")).body)
    assert specs["kernelspecs"][SANDBOX_KERNEL]["spec"]["display_name"] == "Python 3 (sandbox)"

    started = await jp_fetch(
        "api", "kernels", method="POST", body=json.dumps({"name": SANDBOX_KERNEL})
    )
    kernel_id = json.loads(started.body)["id"]
    manager = jp_serverapp.kernel_manager.get_kernel(kernel_id)
    container = manager.provisioner.container
    assert container is not None and container.labels["org.jupyter-notebook-agent.sandbox"] == "1"

    client = manager.client()
    client.start_channels()
    await client.wait_for_ready(timeout=60)
    assert await run(client, "import os; print(os.getuid() != 0)") == ["True\n"]

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
