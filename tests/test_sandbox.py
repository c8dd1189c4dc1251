"""The sandbox kernel against a real Docker engine: what generated code can and cannot reach."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import docker
import docker.errors
import nbformat
import pytest
from jupyter_client.ioloop import AsyncIOLoopKernelManager
from traitlets.config import Config

from jupyter_notebook_agent.kernels import Execution, JupyterKernelSession
from jupyter_notebook_agent.sandbox import SANDBOX_KERNEL
from jupyter_notebook_agent.sandbox.image import ImageError, ensure_image
from jupyter_notebook_agent.sandbox.provisioner import LABEL

from .conftest import RECORDINGS


@pytest.fixture(scope="session")
def sandbox_image() -> str:
    """The kernel image, built once if this machine does not have it yet."""
    return ensure_image()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """The notebook's folder, private to the person (under root too: the kernel is lent it)."""
    folder = tmp_path / "work"
    folder.mkdir(mode=0o700)
    return folder


@pytest.fixture
def start_sandbox(
    sandbox_image: str, workdir: Path, jp_asyncio_loop: asyncio.AbstractEventLoop
) -> Iterator[Callable[..., Awaitable[JupyterKernelSession]]]:
    """Starts sandbox kernels (with settings of `c.DockerSandbox`), and shuts them all down."""
    sessions: list[JupyterKernelSession] = []

    async def start(**settings: object) -> JupyterKernelSession:
        config = Config({"DockerSandbox": {"image": sandbox_image, **settings}})
        session = await JupyterKernelSession.start(SANDBOX_KERNEL, cwd=str(workdir), config=config)
        sessions.append(session)
        return session

    yield start
    for session in sessions:
        jp_asyncio_loop.run_until_complete(session.shutdown())


@pytest.fixture
def sandbox(start_sandbox, jp_asyncio_loop: asyncio.AbstractEventLoop) -> JupyterKernelSession:
    return jp_asyncio_loop.run_until_complete(start_sandbox())


def stdout(execution: Execution) -> str:
    assert execution.status == "ok", execution
    return "".join(o.text for o in execution.outputs if o.output_type == "stream")


async def test_host_files_outside_the_mount_are_invisible(sandbox, workdir, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")
    (workdir / "data.csv").write_text("a,b\n1,2\n")
    code = (
        f"import os\nprint(os.path.exists({str(secret)!r}), os.getcwd() == {str(workdir)!r},"
        " open('data.csv').read().splitlines()[1])"
    )
    assert stdout(await sandbox.execute(code, 30)) == "False True 1,2\n"


async def test_writes_land_in_the_mount_and_tmp_and_fail_elsewhere(sandbox, workdir):
    code = """
results = []
for path in ['/etc/evil', '/usr/evil', '/home/evil', '/var/evil', '/root/evil']:
    try:
        open(path, 'w').write('x')
        results.append(path + ' written')
    except OSError as error:
        results.append(path + ' ' + type(error).__name__)
open('/tmp/ok', 'w').write('tmp')
open('result.txt', 'w').write('from the sandbox')
print(results)
"""
    printed = stdout(await sandbox.execute(code, 30))
    assert "written" not in printed
    assert printed.count("Error") == 5
    assert (workdir / "result.txt").read_text() == "from the sandbox"


async def test_there_is_no_network_and_no_dns(sandbox):
    code = """
import socket
outcomes = []
for target in [("1.1.1.1", 53), ("deb.debian.org", 80)]:
    try:
        socket.create_connection(target, timeout=3)
        outcomes.append("connected")
    except OSError as error:
        outcomes.append(type(error).__name__)
import os
print(outcomes, sorted(os.listdir('/sys/class/net')))
"""
    printed = stdout(await sandbox.execute(code, 30))
    assert "connected" not in printed
    assert printed.endswith("['lo']\n")


async def test_the_user_is_not_root_and_has_no_capabilities(sandbox):
    code = """
import os
lines = open('/proc/self/status').read().splitlines()
status = dict(line.split(':\\t') for line in lines if ':\\t' in line)
fields = [status[name].strip() for name in ('CapEff', 'CapPrm', 'NoNewPrivs')]
print(os.getuid(), os.geteuid(), *fields)
"""
    uid, euid, effective, permitted, no_new_privs = stdout(await sandbox.execute(code, 30)).split()
    assert uid != "0" and euid != "0"
    assert int(effective, 16) == 0 and int(permitted, 16) == 0
    assert no_new_privs == "1"


async def test_setuid_escalation_fails(sandbox):
    code = """
import os, subprocess
try:
    os.setuid(0)
    print('became root')
except PermissionError:
    print('setuid refused')
setuid_binaries = subprocess.run(['find', '/', '-xdev', '-perm', '-4000', '-type', 'f'],
                                 capture_output=True, text=True).stdout.split()
print(len(setuid_binaries), os.geteuid())
"""
    first, second = stdout(await sandbox.execute(code, 60)).splitlines()
    assert first == "setuid refused"
    assert second.split()[1] != "0"


async def test_the_docker_socket_is_absent(sandbox):
    sockets = ("/var/run/docker.sock", "/run/docker.sock")
    code = f"import os\nprint([p for p in {sockets!r} if os.path.lexists(p)])"
    assert stdout(await sandbox.execute(code, 30)) == "[]\n"


async def test_a_process_bomb_stops_at_the_pids_limit(sandbox):
    code = """
import os, time
children = []
try:
    for _ in range(2000):
        pid = os.fork()
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        children.append(pid)
    print('unbounded')
except OSError as error:
    print('stopped after', len(children), error.strerror)
for pid in children:
    os.kill(pid, 9)
for pid in children:
    os.waitpid(pid, 0)
"""
    printed = stdout(await sandbox.execute(code, 60))
    assert printed.startswith("stopped after")
    assert int(printed.split()[2]) < 256
    assert stdout(await sandbox.execute("print(1 + 1)", 30)) == "2\n"  # the kernel still answers


async def test_memory_past_the_limit_kills_the_kernel_which_is_reported_and_restarted(
    start_sandbox,
):
    sandbox = await start_sandbox(memory="256m")
    died = await sandbox.execute("x = 1\nblob = b'x' * (600 * 1024 * 1024)", 60)
    assert died.status == "died"
    assert "out of memory" in died.note and "256m" in died.note
    assert died.restarted
    assert stdout(await sandbox.execute("print('x' in globals(), 6 * 7)", 30)) == "False 42\n"


async def test_a_cpu_spin_is_stopped_by_the_execution_timeout(sandbox):
    spun = await sandbox.execute("y = 5\nwhile True:\n    pass", 2)
    assert spun.status == "timeout"
    assert "interrupted; state is kept" in spun.note
    assert stdout(await sandbox.execute("print(y)", 30)) == "5\n"


def test_the_cli_runs_generated_code_in_the_sandbox_by_default(
    sandbox_image, workdir, replay_server, run_cli
):
    out = workdir / "sine.ipynb"
    with replay_server(RECORDINGS / "sine_plot.json") as server:
        result = run_cli("run", "Plot a sine wave", "-o", out, "--base-url", server.base_url,
                         "--image", sandbox_image)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Unsandboxed" not in result.stdout
    nb = nbformat.read(out, as_version=4)
    assert nb.metadata.kernelspec.name == SANDBOX_KERNEL
    assert nb.cells[2].outputs[0].text == "max = 1.000, mean = 0.000\n"
    assert any("image/png" in o.get("data", {}) for o in nb.cells[3].outputs)


def test_without_a_docker_engine_the_cli_refuses_and_says_how_to_fix_it(run_cli, tmp_path):
    dead = {"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"}
    recording = f"replay:{RECORDINGS / 'sine_plot.json'}"
    refused = run_cli("run", "t", "--model", recording, env=dead)
    assert refused.returncode == 2
    assert "no Docker engine answers" in refused.stderr
    assert "install Docker and start it" in refused.stderr
    assert "--allow-unsandboxed" in refused.stderr
    allowed = run_cli("run", "t", "-o", "n.ipynb", "--model", recording, "--allow-unsandboxed",
                      env=dead)  # fmt: skip
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "Unsandboxed: no Docker engine answers" in allowed.stdout
    assert json.loads((tmp_path / "n.ipynb").read_text())["metadata"]["kernelspec"]["name"] == (
        "python3"
    )


@pytest.fixture
def orphan(sandbox_image: str, tmp_path: Path) -> tuple[str, Path]:
    """A sandbox container and socket folder left by a server that crashed: its pid is gone."""
    crashed = subprocess.Popen(["true"])
    crashed.wait()
    sockets = tmp_path / "orphan-sockets"
    sockets.mkdir()
    container = docker.from_env().containers.run(
        sandbox_image,
        ["sleep", "600"],
        detach=True,
        network_mode="none",
        labels={
            LABEL: "1",
            f"{LABEL}.owner": f"{socket.gethostname()}:{crashed.pid}",
            f"{LABEL}.socket-dir": str(sockets),
        },
    )
    return container.id, sockets


async def test_containers_orphaned_by_a_crash_are_removed_at_the_next_start(orphan, start_sandbox):
    container_id, sockets = orphan
    mine = await start_sandbox()
    with pytest.raises(docker.errors.NotFound):
        docker.from_env().containers.get(container_id)
    assert not sockets.exists()
    assert mine.manager.provisioner.container.status in ("created", "running")


async def test_a_running_kernel_is_known_alive_without_asking_the_engine(sandbox):
    """Every open of a notebook's kernel and every check of the restarter asked the engine, a
    few milliseconds from a thread; this machine's /proc answers for a container it runs."""
    provisioner = sandbox.manager.provisioner
    container = provisioner.container
    engine = container.collection
    unreachable = docker.DockerClient(base_url="unix:///nonexistent.sock", version="1.41")
    container.collection = unreachable.containers
    try:
        assert await provisioner.poll() is None
    finally:
        container.collection = engine
    container.kill()
    container.wait()
    assert await provisioner.poll() == 137  # a stopped one is asked of the engine, for why
    assert provisioner.exit_reason == "its container stopped with exit code 137"


async def test_a_restart_that_comes_after_the_kernel_was_shut_down_starts_nothing(
    sandbox_image: str, workdir: Path
):
    """The server's restarter sees a dead kernel, and the person closes its notebook before the
    restarter acts on it: its restart then came after the final shutdown, and started a container,
    sockets and mounts that nothing owned any more."""
    config = Config({"DockerSandbox": {"image": sandbox_image, "use_warm_pool": False}})
    manager = AsyncIOLoopKernelManager(kernel_name=SANDBOX_KERNEL, config=config)
    await manager.start_kernel(cwd=str(workdir))
    provisioner = manager.provisioner
    socket_dir = provisioner.socket_dir
    labelled = {"label": f"{LABEL}.kernel-id={manager.kernel_id}"}
    provisioner.container.kill()
    assert not await manager.is_alive()  # what the restarter's poll has just seen
    await manager.shutdown_kernel(now=True)  # the notebook closed meanwhile
    with pytest.raises(RuntimeError, match="was shut down"):
        await manager._restarter.poll()  # and then it acts
    assert docker.from_env().containers.list(all=True, filters=labelled) == []
    assert provisioner.socket_dir is None and not socket_dir.exists()
    assert provisioner.lending is None


@pytest.mark.parametrize(
    ("outside", "reason"),
    [
        (lambda c: c.kill(), "its container stopped with exit code 137"),
        (lambda c: c.remove(force=True), "its container was removed"),
    ],
    ids=["stopped", "removed"],
)
async def test_a_container_stopped_or_removed_from_outside_is_a_dead_kernel(
    sandbox, outside, reason
):
    await sandbox.execute("x = 1", 30)
    outside(sandbox.manager.provisioner.container)
    died = await sandbox.execute("open('ran-after-death', 'w').write('x')", 30)
    assert died.status == "died"
    assert died.note.startswith(f"the kernel died ({reason}) and was restarted")
    printed = stdout(await sandbox.execute("import os; print('x' in globals(), os.listdir())", 30))
    assert printed == "False []\n"  # and what was sent to the dead kernel never ran


async def test_a_missing_image_says_how_to_build_it_and_leaves_nothing(workdir, tmp_path):
    config = Config(
        {
            "DockerSandbox": {
                "image": "jupyter-notebook-agent-kernel:missing",
                "socket_root": str(tmp_path),
            }
        }
    )
    before = set(tmp_path.iterdir())
    with pytest.raises(ImageError) as raised:
        await JupyterKernelSession.start(SANDBOX_KERNEL, cwd=str(workdir), config=config)
    assert "jupyter-notebook-agent-kernel:missing is missing" in str(raised.value)
    assert "jupyter-notebook-agent image build --tag jupyter-notebook-agent-kernel:missing" in str(
        raised.value
    )
    assert set(tmp_path.iterdir()) == before  # no socket folder left behind


def test_by_default_the_kernel_has_no_network_and_talks_over_unix_sockets(sandbox):
    container = sandbox.manager.provisioner.container
    assert container.attrs["HostConfig"]["NetworkMode"] == "none"
    assert sandbox.manager.transport == "ipc"


async def test_over_tcp_the_kernel_works_on_loopback_ports_and_says_egress_is_open(
    start_sandbox, caplog
):
    sandbox = await start_sandbox(transport="tcp")
    assert stdout(await sandbox.execute("print(6 * 7)", 30)) == "42\n"
    assert sandbox.manager.transport == "tcp"
    host = sandbox.manager.provisioner.container.attrs["HostConfig"]
    assert host["NetworkMode"] == "bridge"
    bindings = [b for bound in host["PortBindings"].values() for b in bound]
    assert len(bindings) == 5 and {b["HostIp"] for b in bindings} == {"127.0.0.1"}
    assert "network egress is NOT blocked" in caplog.text
