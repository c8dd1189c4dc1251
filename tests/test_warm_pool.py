"""The warm pool: ready sandbox kernels claimed in milliseconds, each by one kernel only."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import docker
import docker.errors
import pytest
from traitlets.config import Config

from jupyter_notebook_agent.kernels import JupyterKernelSession
from jupyter_notebook_agent.sandbox import SANDBOX_KERNEL
from jupyter_notebook_agent.sandbox.pool import WarmPool
from jupyter_notebook_agent.sandbox.provisioner import LABEL, OWNER

from .test_sandbox import stdout


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The server's root folder, with a notebook folder inside it."""
    (tmp_path / "root" / "project").mkdir(parents=True)
    return tmp_path / "root"


async def filled(pool: WarmPool) -> list[str]:
    """Waits until the pool is full; returns its containers' ids."""
    await asyncio.wait_for(pool.full(), 60)
    return [w.manager.provisioner.container.id for w in pool.ready]


async def start(cwd: Path, **settings: object) -> tuple[JupyterKernelSession, float]:
    started = time.perf_counter()
    config = Config({"DockerSandbox": settings}) if settings else None
    session = await JupyterKernelSession.start(SANDBOX_KERNEL, cwd=str(cwd), config=config)
    return session, time.perf_counter() - started


def container_id(session: JupyterKernelSession) -> str:
    return session.manager.provisioner.container.id


async def test_a_kernel_claims_a_ready_container_moves_to_its_folder_and_the_pool_refills(root):
    pool = WarmPool(root, size=2)
    pool.start()
    try:
        warm = await filled(pool)
        first, took = await start(root / "project")
        second, _ = await start(root / "project")
        try:
            assert container_id(first) == warm[0] and container_id(second) == warm[1]
            assert took < 0.2  # a cold start takes most of a second
            printed = stdout(await first.execute("import os; print(os.getcwd())", 30))
            assert printed == f"{root / 'project'}\n"
            refilled = await filled(pool)
            assert not set(refilled) & set(warm)  # never handed out twice
            await first.restart()  # a restart keeps the kernel's connection
            assert stdout(await first.execute("print('again')", 30)) == "again\n"
            assert container_id(first) not in refilled
        finally:
            await first.shutdown()
            await second.shutdown()
    finally:
        await pool.close()


async def test_kernels_that_do_not_fit_start_cold(root, tmp_path):
    pool = WarmPool(root, size=1)
    pool.start()
    try:
        warm = await filled(pool)
        with_mounts, _ = await start(root / "project", mounts=[f"{tmp_path}:/data:ro"])
        (tmp_path / "elsewhere").mkdir()
        outside, _ = await start(tmp_path / "elsewhere")
        try:
            assert warm[0] not in (container_id(with_mounts), container_id(outside))
            assert [w.manager.provisioner.container.id for w in pool.ready] == warm
        finally:
            await with_mounts.shutdown()
            await outside.shutdown()
    finally:
        await pool.close()


async def test_old_kernels_are_replaced_and_closing_removes_the_unclaimed(root):
    pool = WarmPool(root, size=1, max_age_s=2)
    pool.start()
    first = await filled(pool)
    await asyncio.sleep(3.5)
    replaced = await filled(pool)
    assert replaced != first
    with pytest.raises(docker.errors.NotFound):
        docker.from_env().containers.get(first[0])
    await pool.close()
    with pytest.raises(docker.errors.NotFound):
        docker.from_env().containers.get(replaced[0])
    assert WarmPool.current is None


async def test_closing_while_kernels_start_leaves_no_container(root):
    pool = WarmPool(root, size=2)
    pool.start()
    await asyncio.sleep(0.3)  # both starts are under way, their containers being created
    await pool.close()
    mine = {"label": f"{LABEL}.owner={OWNER}"}
    assert docker.from_env().containers.list(all=True, filters=mine) == []


async def test_a_claimed_kernel_is_in_its_folder_before_it_runs_code(root):
    """Even a request that runs no code, a file name's completion, sees the notebook's folder."""
    (root / "project" / "data.csv").write_text("a\n1\n")
    pool = WarmPool(root, size=1)
    pool.start()
    try:
        await filled(pool)
        session, _ = await start(root / "project")
        try:
            await asyncio.wait_for(session.manager.provisioner.moving, 10)
            msg_id = session.client.complete("open('dat", 9)
            while (reply := await session.client.get_shell_msg(timeout=10))["parent_header"][
                "msg_id"
            ] != msg_id:
                pass
            assert "data.csv" in reply["content"]["matches"]
        finally:
            await session.shutdown()
    finally:
        await pool.close()
