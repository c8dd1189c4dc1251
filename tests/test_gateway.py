"""Kernels on a real Jupyter Enterprise Gateway on 127.0.0.1: a Jupyter server started with
`--gateway-url` runs the agent's kernels there, and so does the command line; a gateway that is
down, slow or refusing is named, with what to do; and deploy/'s kernel image runs the agent's code
through the gateway's remote kernel protocol, under the restrictions of its Kubernetes pod.

The gateway runs from a virtual environment of its own (scripts/gateway-venv.sh): Enterprise
Gateway 3 needs jupyter_server 1 and jupyter_client 6. Its kernels are this test environment's
ipykernel as local processes, or deploy/'s image in Docker, since no cluster is reachable.
"""

from __future__ import annotations

import asyncio
import fcntl
import getpass
import io
import ipaddress
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import docker
import nbformat
import pytest
import yaml
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from jupyter_notebook_agent.sandbox import SANDBOX_KERNEL, SandboxUnavailable, choose_kernel
from jupyter_notebook_agent.sandbox.image import ensure_image
from jupyter_notebook_agent.sandbox.provisioner import LABEL
from jupyter_notebook_agent.testing.replay_server import ReplayServerThread, script_from_file

from .agent_api import check_against_spec, receive_until
from .conftest import RECORDINGS, free_port

RECORDING = RECORDINGS / "gateway_kernel.json"
DEPLOY = Path(__file__).parent.parent / "deploy"
TOKEN = "gateway-test-token"
#: Who the servers start kernels as: the gateway refuses kernels for root (CI runs as root).
KERNEL_USERNAME = "agent-tests"
#: The gateway timeouts of the server under test: a kernel that is silent for longer than
#: KERNEL_LAUNCH_TIMEOUT must still be heard (the recording's cell sleeps 3 s).
TIMEOUTS = {"KERNEL_LAUNCH_TIMEOUT": "2", "JUPYTER_GATEWAY_REQUEST_TIMEOUT": "4"}
#: The ioctl that reads an interface's IPv4 address (linux/sockios.h).
SIOCGIFADDR = 0x8915


def wait_until_answers(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    request = urllib.request.Request(url, headers={"Authorization": f"token {TOKEN}"})
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(request, timeout=5):
                return
        except (OSError, urllib.error.URLError):
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"{url} did not answer: {log.read_text()[-3000:]}"
            time.sleep(0.1)


def launch(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A server process in a process group of its own (for `end`), its output in `log`."""
    with log.open("wb") as output:
        return subprocess.Popen(
            command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )


def end(process: subprocess.Popen[bytes]) -> bool:
    """SIGTERM, then whatever is left of its process group (kernels included); whether it
    exited by itself, cleanly, within 30 s."""
    process.send_signal(signal.SIGTERM)
    try:
        clean = process.wait(30) == 0
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        clean = False
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return clean


@pytest.fixture
def start_gateway(gateway_venv: Path, tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Starts real Enterprise Gateways on 127.0.0.1 that list their kernels, each offering the
    kernelspecs given (name: kernel.json), with more environment if given; gives each one's URL."""
    started: list[subprocess.Popen[bytes]] = []

    def start(kernelspecs: dict[str, dict[str, Any]], env: dict[str, str] | None = None) -> str:
        port = free_port()
        folder = tmp_path / f"gateway-{port}"
        for name, spec in kernelspecs.items():
            (folder / "kernels" / name).mkdir(parents=True)
            (folder / "kernels" / name / "kernel.json").write_text(json.dumps(spec))
        environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {
            "JUPYTER_PATH": str(folder),
            "JUPYTER_RUNTIME_DIR": str(folder / "runtime"),
            **(env or {}),
        }
        log = tmp_path / f"gateway-{port}.log"
        command = [
            str(gateway_venv / "bin" / "jupyter-enterprisegateway"),
            "--ip=127.0.0.1",
            f"--port={port}",
            "--port_retries=0",
            "--EnterpriseGatewayApp.list_kernels=True",
        ]
        process = launch(command, environment, log)
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        wait_until_answers(f"{url}/api/kernelspecs", process, log)
        return url

    yield start
    for process in started:
        end(process)


#: The kernelspec of the tests' gateways: this environment's ipykernel, a process of the gateway.
PYTHON3 = {
    "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
    "display_name": "Python 3 on the gateway",
    "language": "python",
}


@pytest.fixture
def enterprise_gateway(start_gateway: Callable[..., str]) -> str:
    return start_gateway({"python3": PYTHON3})


@pytest.fixture
def jupyter_server(tmp_path: Path) -> Iterator[Callable[..., tuple[str, int]]]:
    """Starts real `jupyter server` processes with the extension on a replayed model, the notebook
    `analysis.ipynb` in their root; gives each one's URL and process id."""
    started: list[subprocess.Popen[bytes]] = []
    root = tmp_path / "root"
    root.mkdir()
    nbformat.write(nbformat.v4.new_notebook(), root / "analysis.ipynb")

    def start(model: ReplayServerThread, *options: str, env: dict[str, str] | None = None):
        port = free_port()
        log = tmp_path / f"server-{port}.log"
        command = [
            sys.executable,
            "-m",
            "jupyter_server",
            f"--ServerApp.root_dir={root}",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            "--ServerApp.open_browser=False",
            "--ServerApp.allow_root=True",
            f"--IdentityProvider.token={TOKEN}",
            "--ServerApp.jpserver_extensions={'jupyter_notebook_agent': True}",
            f"--NotebookAgent.model=openai:{model.script.model}",
            f"--NotebookAgent.base_url={model.base_url}",
            "--NotebookAgent.api_key=sk-gateway-tests",
            "--NotebookAgent.warm_pool_size=0",
            *options,
        ]
        environment = os.environ | {"KERNEL_USERNAME": KERNEL_USERNAME} | (env or {})
        process = launch(command, environment, log)
        started.append(process)
        url = f"http://127.0.0.1:{port}/"
        wait_until_answers(f"{url}api", process, log)
        return url, process.pid

    yield start
    # A server must stop cleanly also right after a run ended (while it saves the notebook).
    assert all([end(process) for process in started]), "a server did not stop on SIGTERM"


async def call(url: str, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
    """A JSON request with the servers' token (a gateway ignores it); answers of the extension
    are checked against rest-api.yml."""
    request = HTTPRequest(
        f"{url.rstrip('/')}/{path}",
        method=method,
        headers={"Authorization": f"token {TOKEN}"},
        body=None if body is None else json.dumps(body),
        request_timeout=60,
    )
    try:
        response = await AsyncHTTPClient().fetch(request)
        status, raw = response.code, response.body
    except HTTPClientError as error:
        assert error.response is not None, error
        status, raw = error.code, error.response.body
    answer = json.loads(raw) if raw else None
    assert status == expect, f"{method} {path}: {status} {answer}"
    if path.startswith("notebook-agent/"):
        check_against_spec(method, path.removeprefix("notebook-agent"), status, answer)
    return answer


async def gateway_kernels(gateway: str) -> dict[str, dict[str, Any]]:
    """The gateway's own list of its kernels, by id."""
    return {kernel["id"]: kernel for kernel in await call(gateway, "GET", "api/kernels")}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def outputs_text(event: dict[str, Any]) -> str:
    return "".join(output.get("text", "") for output in event["outputs"])


async def test_a_run_over_rest_runs_its_code_in_a_kernel_of_the_gateway(
    enterprise_gateway, jupyter_server
):
    with ReplayServerThread(script_from_file(RECORDING)) as model:
        url, pid = jupyter_server(
            model,
            f"--gateway-url={enterprise_gateway}",
            "--NotebookAgent.kernel_name=python3",
            "--NotebookAgent.allow_unsandboxed=True",
            env=TIMEOUTS,
        )
        status = await call(url, "GET", "notebook-agent/status")
        assert status["kernel"] == {"name": "python3", "sandboxed": False, "problem": None}
        # The person opens the notebook (a session, its kernel on the gateway) and restarts it
        # there; the run then works in that same kernel.
        opened = {"path": "analysis.ipynb", "type": "notebook", "kernel": {"name": "python3"}}
        session = await call(url, "POST", "api/sessions", opened, 201)
        await call(url, "POST", f"api/kernels/{session['kernel']['id']}/restart", {}, 200)
        run = await call(
            url, "POST", "notebook-agent/runs", {"path": "analysis.ipynb", "prompt": "go"}, 201
        )
        socket = await websocket_connect(
            HTTPRequest(
                f"ws{url.removeprefix('http')}notebook-agent/runs/{run['id']}/events",
                headers={"Authorization": f"token {TOKEN}"},
            )
        )
        first = (await receive_until(socket, "cell_outputs"))[-1]
        kernel_id = outputs_text(first).strip()
        # The kernel that ran the code is one of the gateway's, and the Jupyter server knows it
        # under the same id.
        on_gateway = await gateway_kernels(enterprise_gateway)
        assert kernel_id in on_gateway, f"{kernel_id!r} is not among {list(on_gateway)}"
        assert kernel_id in [kernel["id"] for kernel in await call(url, "GET", "api/kernels")]
        assert kernel_id == session["kernel"]["id"]

        # A cell that prints nothing for longer than KERNEL_LAUNCH_TIMEOUT is still heard, and
        # the server waits for it without spinning.
        await receive_until(socket, "cell_proposed")
        cpu_before, started = cpu_seconds(pid), time.monotonic()
        # While that cell runs, the agent is connected to the kernel (the replayed model answers
        # at once, so right after the first cell the agent may already be restarting it).
        on_gateway = await gateway_kernels(enterprise_gateway)
        assert on_gateway[kernel_id]["connections"] >= 1
        silent = (await receive_until(socket, "cell_outputs"))[-1]
        waited = time.monotonic() - started
        # The model asked for a restart in between: the kernel is the person's, so its state
        # stayed and the person was offered the restart.
        assert silent["status"] == "ok" and outputs_text(silent) == "True 2\n"
        assert waited > 2.5  # past KERNEL_LAUNCH_TIMEOUT; the sleep began before `started`
        assert (cpu_seconds(pid) - cpu_before) / waited < 0.5, "the server spun while it waited"

        finished = (await receive_until(socket, "run_finished"))[-1]
        assert finished["success"], finished
        assert (await call(url, "GET", f"notebook-agent/runs/{run['id']}"))["outcome"] == {
            "success": True,
            "reason": "completed",
            "summary": "The code ran in the gateway's kernel, restarted once: 1 + 1 = 2.",
        }
        # The kernel is the notebook's: it stays on the gateway after the run, and goes with
        # the notebook's session.
        assert kernel_id in await gateway_kernels(enterprise_gateway)
        await call(url, "DELETE", f"api/sessions/{session['id']}", None, 204)
        deadline = time.monotonic() + 10
        while kernel_id in await gateway_kernels(enterprise_gateway):
            assert time.monotonic() < deadline, "the run's kernel stayed on the gateway"
            await asyncio.sleep(0.1)


def test_the_command_line_runs_its_kernel_on_the_gateway(enterprise_gateway, run_cli, tmp_path):
    result = run_cli(
        "run",
        "Where does the code run?",
        "-o",
        "out.ipynb",
        "--model",
        f"replay:{RECORDING}",
        "--gateway-url",
        enterprise_gateway,
        "--kernel",
        "python3",
        "--allow-unsandboxed",
        env={"KERNEL_USERNAME": KERNEL_USERNAME} | TIMEOUTS,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"on the gateway {enterprise_gateway}" in " ".join(result.stdout.split())
    notebook = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert notebook.metadata.kernelspec == {
        "name": "python3",
        "display_name": "Python 3 on the gateway",
        "language": "python",
    }
    first, silent = notebook.cells
    kernel_id = first.outputs[0].text.strip()
    assert len(kernel_id) == 36  # the gateway's kernel id, as the kernel saw it
    assert silent.outputs[0].text == "False 2\n"
    with urllib.request.urlopen(f"{enterprise_gateway}/api/kernels") as listed:
        assert kernel_id not in listed.read().decode(), "the kernel stayed on the gateway"


async def test_a_gateway_that_is_down_is_named_by_the_status_and_the_run(jupyter_server, tmp_path):
    down = f"http://127.0.0.1:{free_port()}"
    with ReplayServerThread(script_from_file(RECORDING)) as model:
        url, pid = jupyter_server(
            model, f"--gateway-url={down}", "--NotebookAgent.warm_pool_size=2"
        )
        # Kernels run on the gateway: no warm pool of sandbox kernels on this machine.
        log = tmp_path / f"server-{urlsplit(url).port}.log"
        deadline = time.monotonic() + 10
        while f"No warm pool: kernels run on the gateway {down}" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            await asyncio.sleep(0.1)
        owner = f"{LABEL}.owner={socket.gethostname()}:{pid}"
        assert docker.from_env().containers.list(all=True, filters={"label": owner}) == []
        kernel = (await call(url, "GET", "notebook-agent/status"))["kernel"]
        assert kernel["name"] is None and not kernel["sandboxed"]
        assert f"no kernel gateway answers at {down}" in kernel["problem"]
        body = {"path": "analysis.ipynb", "prompt": "go"}
        refused = await call(url, "POST", "notebook-agent/runs", body, expect=503)
        assert f"no kernel gateway answers at {down}" in refused["message"]
        assert "--gateway-url" in refused["message"]


def test_the_command_line_names_a_gateway_that_is_down(run_cli):
    down = f"http://127.0.0.1:{free_port()}"
    result = run_cli(
        "run", "x", "-o", "out.ipynb", "--model", f"replay:{RECORDING}", "--gateway-url", down
    )
    assert result.returncode == 2
    said = " ".join(result.stderr.split())
    assert f"no kernel gateway answers at {down} (" in said
    assert "check that the gateway runs" in said


def test_a_gateway_that_refuses_the_kernel_is_heard_in_its_own_words(
    start_gateway, run_cli, monkeypatch
):
    """With no KERNEL_USERNAME sent, the gateway takes its own user, whom it refuses here (as it
    refuses root by default)."""
    monkeypatch.delenv("KERNEL_USERNAME", raising=False)
    user = getpass.getuser()
    gateway = start_gateway({"python3": PYTHON3}, env={"EG_UNAUTHORIZED_USERS": user})
    result = run_cli(
        *("run", "x", "-o", "out.ipynb", "--model", f"replay:{RECORDING}"),
        *("--gateway-url", gateway, "--kernel", "python3", "--allow-unsandboxed"),
    )
    assert result.returncode == 1
    said = " ".join(result.stdout.split())
    assert (
        f"the kernel gateway at {gateway} failed while starting the kernel 'python3': "
        f"HTTP 403: User '{user}' is not authorized to start kernel"
    ) in said


def test_a_slow_gateway_names_the_timeouts_to_raise(run_cli):
    """A gateway that takes the connection and never answers, as a stuck one does."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        slow = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        result = run_cli(
            "run",
            *("x", "-o", "out.ipynb", "--model", f"replay:{RECORDING}", "--gateway-url", slow),
            env={"KERNEL_LAUNCH_TIMEOUT": "1", "JUPYTER_GATEWAY_REQUEST_TIMEOUT": "3"},
        )
        took = time.monotonic() - started
    assert result.returncode == 2
    said = " ".join(result.stderr.split())
    assert f"the kernel gateway at {slow} did not answer within" in said
    assert "GatewayClient.request_timeout (3 s)" in said
    assert "KERNEL_LAUNCH_TIMEOUT (1 s)" in said
    assert "raise KERNEL_LAUNCH_TIMEOUT" in said
    assert took < 30  # three tries of 3 s (jupyter_server retries a GET twice), not forever


GATEWAY = "http://gateway.example:8888"


def spec(**metadata: Any) -> dict[str, Any]:
    return {"spec": {"display_name": "x", "language": "python", "metadata": metadata}}


def test_on_a_gateway_a_kernelspec_that_declares_a_sandbox_is_chosen_without_docker(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")  # no engine here
    declared = spec(notebook_agent={"sandboxed": True})
    choice = choose_kernel(None, False, {SANDBOX_KERNEL: declared}, GATEWAY)
    assert (choice.name, choice.sandboxed) == (SANDBOX_KERNEL, True)
    provisioned = spec(kernel_provisioner={"provisioner_name": "docker-sandbox"})
    assert choose_kernel(None, False, {SANDBOX_KERNEL: provisioned}, GATEWAY).sandboxed
    with pytest.raises(SandboxUnavailable, match="no Docker engine answers"):
        choose_kernel(None, False, {SANDBOX_KERNEL: provisioned})  # here, the engine counts


def test_on_a_gateway_without_a_sandbox_kernelspec_the_choice_says_so():
    plain = {"python3": spec(), "r": spec()}
    with pytest.raises(SandboxUnavailable) as refused:
        choose_kernel(None, False, plain, GATEWAY)
    assert f"the gateway {GATEWAY} offers no sandbox kernel 'python3-sandbox'" in str(refused.value)
    fallback = choose_kernel(None, True, plain, GATEWAY)
    assert (fallback.name, fallback.sandboxed) == ("python3", False)
    assert GATEWAY in fallback.problem
    with pytest.raises(SandboxUnavailable, match=r"the gateway .* offers r$"):
        choose_kernel(None, True, {"r": spec()}, GATEWAY)
    with pytest.raises(SandboxUnavailable, match="unconfined on the machines of the gateway"):
        choose_kernel("python3", False, plain, GATEWAY)
    with pytest.raises(SandboxUnavailable, match="no kernelspec named 'julia'; the gateway"):
        choose_kernel("julia", True, plain, GATEWAY)


class KernelImage(NamedTuple):
    tag: str
    kernelspec: dict[str, Any]
    """The kernelspec inside it, which the gateway's init container copies out."""


def read_from_image(engine: docker.DockerClient, image: str, name: str) -> bytes:
    """A file of the image's kernelspec, read without running anything in it."""
    container = engine.containers.create(image)
    try:
        chunks, _ = container.get_archive(f"/kernels/{SANDBOX_KERNEL}/{name}")
        with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as archive:
            member = archive.extractfile(name)
            assert member is not None
            return member.read()
    finally:
        container.remove()


@pytest.fixture
def kernel_image() -> Iterator[KernelImage]:
    """deploy/kernel-image, built by its build.sh from the sandbox image; gone afterwards, with
    any kernel container of it left behind."""
    tag = f"notebook-agent-test-kernel:{uuid.uuid4().hex[:12]}"
    built = subprocess.run(
        ["bash", str(DEPLOY / "kernel-image" / "build.sh"), tag, ensure_image()],
        env=os.environ | {"PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    assert built.stdout.split()[-1] == tag
    engine = docker.from_env()
    try:
        yield KernelImage(tag, json.loads(read_from_image(engine, tag, "kernel.json")))
    finally:
        for container in engine.containers.list(all=True, filters={"label": "notebook-agent-test"}):
            container.remove(force=True)
        engine.images.remove(tag, force=True)


def host_address_on_bridge() -> str:
    """This machine's address on Docker's default bridge, where containers on it reach us. The
    IPAM config names it as `Gateway`, except where the engine leaves that out (Debian's docker.io
    20.10 gives only `Subnet`): then the bridge interface's own address, which is in the subnet."""
    network = docker.from_env().networks.get("bridge").attrs
    configs = network.get("IPAM", {}).get("Config") or []
    if gateway := next((c["Gateway"] for c in configs if c.get("Gateway")), None):
        return gateway
    interface = network.get("Options", {}).get("com.docker.network.bridge.name", "docker0")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            request = struct.pack("256s", interface.encode()[:15])
            answer = fcntl.ioctl(probe.fileno(), SIOCGIFADDR, request)
        except OSError as error:
            pytest.fail(
                f"no address of this machine on Docker's bridge: its IPAM config {configs} names "
                f"no Gateway, and its interface {interface!r} has no IPv4 address ({error})"
            )
    address = socket.inet_ntoa(answer[20:24])
    subnets = [ipaddress.ip_network(c["Subnet"]) for c in configs if c.get("Subnet")]
    assert any(ipaddress.ip_address(address) in subnet for subnet in subnets), (address, configs)
    return address


async def test_the_deploy_kernel_image_runs_agent_code_sandboxed_through_a_real_gateway(
    start_gateway, jupyter_server, kernel_image, gateway_venv, tmp_path
):
    """The image and kernelspec of deploy/, started by Enterprise Gateway's remote kernel protocol
    (the kernel sends its connection back, encrypted) under its pod's restrictions, in Docker
    here since no cluster is: the agent picks the kernelspec as a sandbox by itself."""
    spec = kernel_image.kernelspec
    proxy = spec["metadata"]["process_proxy"]
    assert proxy["config"]["image_name"] == kernel_image.tag  # build.sh named the image it built
    proxy["class_name"] = (
        "enterprise_gateway.services.processproxies.docker_swarm.DockerProcessProxy"
    )
    launcher = str(Path(__file__).with_name("kernel_pod_on_docker.py"))
    # The same arguments as the pod's launcher (launch_kubernetes.py) gets.
    spec["argv"] = [str(gateway_venv / "bin" / "python"), launcher, *spec["argv"][2:]]
    values = yaml.safe_load((DEPLOY / "enterprise-gateway" / "values.yaml").read_text())
    bridge = host_address_on_bridge()
    gateway = start_gateway(
        {SANDBOX_KERNEL: spec},
        env={
            # Where the kernel's container can send its connection: the bridge's side of us.
            "EG_RESPONSE_IP": bridge,
            "EG_RESPONSE_PORT": str(free_port()),
            "EG_PORT_RANGE": values["deployment"]["extraEnv"]["EG_PORT_RANGE"],
        },
    )
    with ReplayServerThread(script_from_file(RECORDINGS / "gateway_sandbox.json")) as model:
        url, _ = jupyter_server(model, f"--gateway-url={gateway}")
        status = await call(url, "GET", "notebook-agent/status")
        assert status["kernel"] == {"name": SANDBOX_KERNEL, "sandboxed": True, "problem": None}
        body = {"path": "analysis.ipynb", "prompt": "where am I?"}
        run = await call(url, "POST", "notebook-agent/runs", body, 201)
        deadline = time.monotonic() + 120
        while (answer := await call(url, "GET", f"notebook-agent/runs/{run['id']}"))[
            "state"
        ] == "running":
            assert time.monotonic() < deadline, answer
            await asyncio.sleep(0.2)
    assert answer["outcome"]["reason"] == "completed", answer
    (cell,) = nbformat.read(tmp_path / "root" / "analysis.ipynb", as_version=4).cells
    # Not root, a read-only root filesystem, no capabilities, no privilege escalation.
    assert cell.outputs[0].text == "1000 True 0000000000000000 1 2\n"
