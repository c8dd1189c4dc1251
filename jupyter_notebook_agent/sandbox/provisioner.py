"""The `docker-sandbox` kernel provisioner: ipykernel in a hardened Docker container.

It plugs into jupyter_client's provisioner interface, so whatever starts kernels (jupyter_client,
the Jupyter server, a gateway) starts this one through a plain kernelspec. On Linux the kernel has
no network at all: ZMQ runs over the `ipc` transport in a socket folder bind-mounted at the same
path inside the container, with `network_mode=none`.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container
from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.provisioning import KernelProvisionerBase
from traitlets import Bool, Enum, Float, Integer, List, Unicode

from .image import default_image, missing_image
from .lending import Lending, alive, folder_access, kernel_user, masks
from .pool import FOLDER_FILE, WarmKernel, WarmPool

#: Every container this package starts carries it, so that orphans can be found and removed.
LABEL = "org.jupyter-notebook-agent.sandbox"
#: Where the kernel reads its connection file: ipykernel rewrites the file it is given.
CONNECTION_COPY = "/tmp/connection.json"
#: Names this process as the owner of its containers, so that a later one can tell orphans.
OWNER = f"{socket.gethostname()}:{os.getpid()}"


class DockerSandbox(KernelProvisionerBase):  # type: ignore[misc]
    """Runs the kernel in a container: read-only root, no capabilities, no network, capped."""

    image = Unicode("", config=True, help="Kernel image; empty for the default recipe's tag.")
    memory = Unicode("2g", config=True, help="Memory limit; swap is set equal, so none is used.")
    cpus = Float(2.0, config=True, help="CPUs the kernel may use.")
    pids_limit = Integer(256, config=True, help="Processes and threads the kernel may have.")
    tmpfs_size = Unicode("512m", config=True, help="Size of the writable /tmp (home is inside).")
    read_only = Bool(True, config=True, help="Mount the image's root filesystem read-only.")
    network = Unicode(
        "none", config=True, help="Docker network mode; `none` blocks all network access."
    )
    mounts = List(
        Unicode(), config=True, help="More folders, as HOST:CONTAINER or HOST:CONTAINER:ro."
    )
    gpus = Bool(False, config=True, help="Pass the host's GPUs through (device_requests).")
    runtime = Unicode("", config=True, help="OCI runtime, e.g. `runsc` for gVisor; empty: default.")
    socket_root = Unicode(
        "", config=True, help="Where per-kernel socket folders are made; empty: the temp folder."
    )
    transport = Enum(
        ["auto", "ipc", "tcp"],
        "auto",
        config=True,
        help="`ipc` (no network at all) where the engine shares this machine's kernel; `tcp` on "
        "127.0.0.1 where it cannot (Docker Desktop), which leaves egress open; `auto` picks.",
    )
    use_warm_pool = Bool(
        True, config=True, help="Claim a ready kernel from the server's warm pool when one fits."
    )
    warm = Bool(
        False,
        config=True,
        help="Started ahead of need, by the warm pool: the container mounts an empty staging "
        "folder at its working directory, where a claim lends it the notebook's folder.",
    )

    container: Container | None = None
    socket_dir: Path | None = None
    exit_reason: str | None = None
    claimed: WarmKernel | None = None
    """The warm kernel adopted from the pool, until it has been told the notebook's folder."""
    moving: asyncio.Task[None] | None = None
    """The empty execution that moves a claimed kernel to its folder at once."""
    lending: Lending | None = None
    """The mounts that lend the kernel its folder, where this server makes them (as root)."""
    shut_down = False
    """Set by the final cleanup. The restarter may have seen the kernel dead just before: its
    restart, which comes after, must start nothing that no one owns any more."""

    @property
    def has_process(self) -> bool:
        return self.container is not None

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        if self.shut_down:
            raise RuntimeError(f"kernel {self.kernel_id} was shut down; it is not started again")
        km = self.parent
        kwargs.pop("extra_arguments", None)
        cwd = kwargs.get("cwd") or os.getcwd()
        if warm := await self._claim(cwd):
            self._adopt(warm, cwd)
            return await super().pre_launch(cmd=[], **kwargs)
        uid, gid = kernel_user()
        if self.socket_dir is None:
            root = self.socket_root or None
            self.socket_dir = Path(tempfile.mkdtemp(prefix="notebook-agent-", dir=root))
            os.chown(self.socket_dir, uid, gid)
        km.connection_file = str(self.socket_dir / "connection.json")
        if await asyncio.to_thread(self._over_tcp):
            self.log.warning(
                "This Docker engine cannot share unix sockets, so the sandbox kernel talks tcp on "
                "127.0.0.1 and its network egress is NOT blocked."
            )
            km.transport, km.ip = "tcp", "127.0.0.1"
        else:
            km.transport, km.ip = "ipc", str(self.socket_dir / "kernel")
        km.write_connection_file()
        self.connection_info = km.get_connection_info()
        inside = km.connection_file
        if km.transport == "tcp":  # the kernel listens on every interface of its container
            inside = str(self.socket_dir / "container.json")
            _listen_everywhere(km.connection_file, inside)
        # Private to the container's user alone: they hold the key that signs messages.
        for path in {km.connection_file, inside}:
            os.chmod(path, 0o600)
            os.chown(path, uid, gid)
        argv = [
            CONNECTION_COPY if arg == "{connection_file}" else arg for arg in self.kernel_spec.argv
        ]
        cmd = ["sh", "-c", 'cp "$0" /tmp/connection.json && exec "$@"', inside, *argv]
        return await super().pre_launch(cmd=cmd, **kwargs)

    def _over_tcp(self) -> bool:
        if self.transport != "auto":
            return self.transport == "tcp"
        return sys.platform != "linux" or "Docker Desktop" in _engine_system()

    async def _claim(self, cwd: str) -> WarmKernel | None:
        """A warm kernel, lent the notebook's folder, where one fits: never for a restart, which
        keeps its connection. One that cannot be lent the folder goes; the cold start then says
        why."""
        pool = WarmPool.current
        plain = not (self.mounts or self.gpus or self.runtime)
        if pool is None or not self.use_warm_pool or not plain or self.socket_dir is not None:
            return None
        warm = pool.claim(self.image or default_image(), cwd)
        if warm is None:
            return None
        lending = warm.manager.provisioner.lending
        try:
            await asyncio.to_thread(lending.lend, Path(cwd), root=pool.root)
        except Exception as error:
            self.log.info("a warm kernel could not be lent %s (%s); starting one cold", cwd, error)
            warm.client.stop_channels()
            await warm.manager.shutdown_kernel(now=True)
            return None
        return warm

    def _adopt(self, warm: WarmKernel, cwd: str) -> None:
        """Takes over a warm kernel's container, sockets, mounts and connection, key included."""
        km, source = self.parent, warm.manager.provisioner
        self.container, self.socket_dir = source.container, source.socket_dir
        self.lending = source.lending
        source.container = source.socket_dir = source.lending = None
        km.load_connection_info(warm.manager.get_connection_info())
        km.connection_file = warm.manager.connection_file
        km._connection_file_written = True
        warm.manager._connection_file_written = False  # its finaliser must not delete the file
        self.connection_info = km.get_connection_info()
        (self.socket_dir / FOLDER_FILE).write_text(str(Path(cwd).resolve()))
        self.claimed = warm

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        if self.claimed is not None:
            return self.connection_info
        cwd = kwargs.get("cwd") or os.getcwd()
        self.exit_reason = None
        await asyncio.to_thread(remove_orphans, _engine())
        try:
            self.container = await asyncio.to_thread(self._run, cmd, cwd)
        except Exception:
            await self.cleanup()  # a kernel that never started leaves no sockets behind
            raise
        return self.connection_info

    def _folder_mounts(self, cwd: Path) -> list[docker.types.Mount]:
        """The notebook's folder at its own path, and nothing of what is around it. A warm
        kernel's folder comes later, into the staging folder mounted here. A root server lends
        it through its own mounts (hidden entries masked there); a person's server binds it, with
        the engine masking the hidden entries."""

        def bind(source: str, target: str, **options: Any) -> docker.types.Mount:
            return docker.types.Mount(target, source, type="bind", **options)

        if self.warm:
            self.lending = self.lending or Lending(f"kernel-{self.kernel_id}")
            return [bind(str(self.lending.staging), str(cwd), propagation="rslave")]
        if folder_access().lends_later:
            if self.lending is None:  # a restart keeps what was lent
                self.lending = Lending(f"kernel-{self.kernel_id}")
            if self.lending.lent is None:
                self.lending.lend(cwd)
            return [bind(str(self.lending.lent), str(cwd))]
        return [bind(str(cwd), str(cwd))] + [
            bind(source, entry, read_only=True) for source, entry in masks(cwd)
        ]

    def _run(self, cmd: list[str], cwd: str) -> Container:
        assert self.socket_dir is not None
        cwd = str(Path(cwd).resolve())
        volumes = {str(self.socket_dir): {"bind": str(self.socket_dir), "mode": "rw"}}
        for mount in self.mounts:
            host, container, *mode = mount.split(":")
            volumes[str(Path(host).resolve())] = {
                "bind": container,
                "mode": mode[0] if mode else "rw",
            }
        options: dict[str, Any] = {"mounts": self._folder_mounts(Path(cwd))}
        if self.gpus:
            options["device_requests"] = [
                docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])
            ]
        if self.runtime:
            options["runtime"] = self.runtime
        # Created, not run: `run` would pull a missing image, where the message must say how to
        # build it (the build needs no registry).
        image = self.image or default_image()
        try:
            container = _engine().containers.create(
                image,
                cmd,
                name=f"notebook-agent-{self.kernel_id}",
                labels={
                    LABEL: "1",
                    f"{LABEL}.kernel-id": str(self.kernel_id),
                    f"{LABEL}.owner": OWNER,
                    f"{LABEL}.socket-dir": str(self.socket_dir),
                },
                user="{}:{}".format(*kernel_user()),
                working_dir=cwd,
                volumes=volumes,
                read_only=self.read_only,
                tmpfs={"/tmp": f"size={self.tmpfs_size},mode=1777"},
                network_mode="bridge" if self.parent.transport == "tcp" else self.network,
                ports=self._published_ports(),
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                pids_limit=self.pids_limit,
                mem_limit=self.memory,
                memswap_limit=self.memory,
                nano_cpus=int(self.cpus * 1e9),
                init=True,
                **options,
            )
        except docker.errors.ImageNotFound:
            raise missing_image(image) from None
        try:
            container.start()
            container.reload()  # its process's pid, by which `poll` knows it runs
        except docker.errors.APIError:  # a mount that cannot be made, say: leave nothing behind
            container.remove(force=True)
            raise
        return container

    async def post_launch(self, **kwargs: Any) -> None:
        """A claimed kernel started in the server's root. Its hook moves it to the notebook's
        folder before any code runs; an empty execution moves it at once, in the background, for
        requests that run no code too (a completion of a file name)."""
        if self.claimed is not None:
            self.moving = asyncio.create_task(_move_now(self.claimed))
            self.claimed = None

    def _published_ports(self) -> dict[str, tuple[str, int]]:
        """Over tcp, each kernel port on the host's loopback only; over ipc, none."""
        if self.parent.transport != "tcp":
            return {}
        names = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")
        ports = [int(self.connection_info[name]) for name in names]  # type: ignore[call-overload]
        return {f"{port}/tcp": ("127.0.0.1", port) for port in ports}

    async def poll(self) -> int | None:
        """None while the container runs; else its exit code, with `exit_reason` saying why."""
        if self.container is None:
            return 0
        if self._running_here():
            return None
        try:
            await asyncio.to_thread(self.container.reload)
        except docker.errors.NotFound:
            self.exit_reason = "its container was removed"
            return -signal.SIGKILL
        state = self.container.attrs["State"]
        if state["Status"] in ("created", "running", "restarting"):
            return None
        code = int(state.get("ExitCode", 1))
        if state.get("OOMKilled"):
            self.exit_reason = f"out of memory: it used more than the {self.memory} limit"
        else:
            self.exit_reason = f"its container stopped with exit code {code}"
        return code

    def _running_here(self) -> bool:
        """Whether the container's first process runs, as this machine's /proc says: in
        microseconds, where the engine answers in milliseconds from a thread, on every open of
        the notebook's kernel and every check of the server's restarter. Only a process in the
        container's own cgroup counts; an engine elsewhere, another PID namespace, or a pid of
        a process since gone is asked of the engine."""
        pid = self.container.attrs.get("State", {}).get("Pid") if self.container else None
        if not pid:
            return False
        try:
            return self.container.id in Path(f"/proc/{pid}/cgroup").read_text()
        except OSError:
            return False

    async def wait(self) -> int | None:
        if self.container is not None:
            try:
                await asyncio.to_thread(self.container.wait)
            except docker.errors.NotFound:
                pass
        return await self.poll()

    async def send_signal(self, signum: int) -> None:
        if self.container is not None:
            try:
                await asyncio.to_thread(self.container.kill, signum)
            except docker.errors.APIError as error:
                self.log.debug("signal %s to %s: %s", signum, self.container.short_id, error)

    async def kill(self, restart: bool = False) -> None:
        await self.send_signal(signal.SIGKILL)

    async def terminate(self, restart: bool = False) -> None:
        await self.send_signal(signal.SIGTERM)

    async def cleanup(self, restart: bool = False) -> None:
        """Removes the container, and the sockets it left behind (they belong to its user)."""
        if self.moving is not None:
            self.moving.cancel()
            self.moving = None
        if self.container is not None:
            try:
                await asyncio.to_thread(self.container.remove, force=True)
            except docker.errors.NotFound:
                pass
            self.container = None
        if self.lending is not None and not restart:
            await asyncio.to_thread(self.lending.release)
            self.lending = None
        self.shut_down = self.shut_down or not restart
        if self.socket_dir is None:
            return
        if restart:
            for socket_file in self.socket_dir.glob("kernel-*"):
                socket_file.unlink(missing_ok=True)
        else:
            shutil.rmtree(self.socket_dir, ignore_errors=True)
            self.socket_dir = None

    async def get_provisioner_info(self) -> dict[str, Any]:
        info = await super().get_provisioner_info()
        info["container_id"] = self.container.id if self.container else None
        info["socket_dir"] = str(self.socket_dir) if self.socket_dir else None
        return info

    async def load_provisioner_info(self, provisioner_info: dict) -> None:
        await super().load_provisioner_info(provisioner_info)
        if provisioner_info.get("socket_dir"):
            self.socket_dir = Path(provisioner_info["socket_dir"])
        if provisioner_info.get("container_id"):
            self.container = _engine().containers.get(provisioner_info["container_id"])

    def get_stable_start_time(self, recommended: float = 10.0) -> float:
        return max(recommended, 30.0)


async def _move_now(warm: WarmKernel) -> None:
    """Runs an empty execution over the pool's client, which the pre_execute hook moves before."""
    try:
        await warm.client.execute_interactive("pass", silent=True, store_history=False, timeout=30)
    except TimeoutError:
        pass
    finally:
        warm.client.stop_channels()


def _listen_everywhere(connection_file: str, copy: str) -> None:
    """The container's copy of a tcp connection file: the same, listening on 0.0.0.0."""
    info = json.loads(Path(connection_file).read_text())
    Path(copy).write_text(json.dumps(info | {"ip": "0.0.0.0"}))


@functools.cache
def _engine() -> docker.DockerClient:
    """One client for every kernel of this process: each start would otherwise open its own."""
    return docker.from_env()


@functools.cache
def _engine_system() -> str:
    """The engine's operating system, as it names itself ("Docker Desktop", "Debian ...")."""
    return str(_engine().info().get("OperatingSystem", ""))


def remove_orphans(client: docker.DockerClient) -> list[str]:
    """Removes the sandbox containers of processes on this host that are gone (a crash, a kill),
    with their socket folders; returns their names. It runs at every cold start, so it lists
    sparsely: one request, not one more per container."""
    removed = []
    for container in client.containers.list(all=True, filters={"label": LABEL}, sparse=True):
        labels = container.attrs.get("Labels") or {}
        host, _, pid = labels.get(f"{LABEL}.owner", "").rpartition(":")
        if host != socket.gethostname() or not pid.isdigit() or alive(int(pid)):
            continue
        try:
            container.remove(force=True)
        except docker.errors.APIError:  # gone already, or another kernel's start removing it
            continue
        shutil.rmtree(labels.get(f"{LABEL}.socket-dir", ""), ignore_errors=True)
        removed.append(container.attrs["Names"][0].lstrip("/"))
    return removed
