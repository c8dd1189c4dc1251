"""A sandbox kernel is lent its notebook's folder and nothing around it, with the folder owner's
access: a server run as root reaches a private folder of root's through bindfs, warm or cold, with
no mode or owner of the person's files changed and no privilege in the container."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from traitlets.config import Config

from jupyter_notebook_agent.kernels import JupyterKernelSession
from jupyter_notebook_agent.sandbox import SANDBOX_KERNEL, lending
from jupyter_notebook_agent.sandbox.image import ensure_image
from jupyter_notebook_agent.sandbox.lending import FolderUnreadable, folder_access
from jupyter_notebook_agent.sandbox.pool import WarmPool

from .test_sandbox import stdout

pytestmark = pytest.mark.skipif(os.getuid() != 0, reason="lending is what a root server does")

#: Reads the person's private CSV, writes a result beside it, and says who the kernel is on the
#: host: its uid inside, mapped through /proc/self/uid_map.
READ_AND_WRITE = """
import os, pandas as pd
frame = pd.read_csv('sales_data.csv')
frame.assign(double=frame.amount * 2).to_csv('result.csv', index=False)
inside = os.getuid()
for line in open('/proc/self/uid_map'):
    start, outside, count = map(int, line.split())
    if start <= inside < start + count:
        host = outside + inside - start
print(frame.amount.sum(), inside, host)
"""
#: What a kernel can do to the folder's hidden entries and what is beside the folder.
PROBE_HIDDEN = """
import os
def attempt(action):
    try:
        return action()
    except OSError:
        return 'refused'
print(sorted(os.listdir('.ssh')), repr(open('.bashrc').read()),
      attempt(lambda: open('.ipython/startup.py', 'w')),
      attempt(lambda: open('.bashrc', 'w')),
      os.path.exists('../beside.txt'), os.listdir('..'))
"""


def modes(folder: Path) -> dict[str, tuple[int, int, int]]:
    return {
        str(path.relative_to(folder)): (path.stat().st_mode, path.stat().st_uid, path.stat().st_gid)
        for path in [folder, *folder.rglob("*")]
    }


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The server's root: private to root, as a home folder or `mktemp -d` is."""
    root = tmp_path / "root"
    root.mkdir(mode=0o700)
    (root / "beside.txt").write_text("not the kernel's")
    return root


@pytest.fixture
def private(root: Path) -> Path:
    """A notebook's folder of mode 0700 with a 0600 CSV and hidden startup files and keys."""
    folder = root / "project"
    folder.mkdir(mode=0o700)
    (folder / "sales_data.csv").write_text("amount\n1\n2\n")
    (folder / "sales_data.csv").chmod(0o600)
    (folder / ".ssh").mkdir(mode=0o700)
    (folder / ".ssh" / "id_ed25519").write_text("private key")
    (folder / ".ipython").mkdir()
    (folder / ".bashrc").write_text("export SECRET=1\n")
    # A hidden symlink out of the folder: the kernel resolves it in its container; masking it
    # here would mount over what it points to on this machine.
    (root.parent / "outside").mkdir()
    (folder / ".config").symlink_to(root.parent / "outside")
    return folder


@pytest.fixture(scope="module")
def image() -> str:
    return ensure_image()


@pytest.fixture
def pool(root: Path, image: str, jp_asyncio_loop: asyncio.AbstractEventLoop) -> Iterator[WarmPool]:
    pool = WarmPool(root, size=1, config=Config({"DockerSandbox": {"image": image}}))

    async def fill() -> None:
        pool.start()
        await asyncio.wait_for(pool.full(), 60)

    jp_asyncio_loop.run_until_complete(fill())
    yield pool
    jp_asyncio_loop.run_until_complete(pool.close())


async def start(folder: Path, image: str) -> JupyterKernelSession:
    config = Config({"DockerSandbox": {"image": image}})
    return await JupyterKernelSession.start(SANDBOX_KERNEL, cwd=str(folder), config=config)


def mounted_below(folder: Path) -> list[str]:
    with open("/proc/self/mountinfo") as mountinfo:
        points = [line.split()[4] for line in mountinfo]
    return [point for point in points if point.startswith(str(folder))]


async def reads_writes_and_sees_nothing_else(session: JupyterKernelSession, folder: Path) -> None:
    before = modes(folder)
    assert stdout(await session.execute(READ_AND_WRITE, 60)) == "3 1000 1000\n"
    after = modes(folder)
    del after["result.csv"]
    assert after == before
    result = folder / "result.csv"
    assert result.read_text() == "amount,double\n1,2\n2,4\n"
    assert (result.stat().st_uid, result.stat().st_gid) == (0, 0)  # the folder owner's
    printed = stdout(await session.execute(PROBE_HIDDEN, 60))
    assert printed == "[] '' refused refused False ['project']\n"
    assert (folder / ".bashrc").read_text() == "export SECRET=1\n"
    assert mounted_below(folder.parent.parent / "outside") == []
    assert not (folder / ".ipython" / "startup.py").exists()


async def test_a_cold_kernel_reads_and_writes_a_private_folder_of_root_as_its_owner(
    private: Path, image: str
):
    assert folder_access().mode == "bindfs"
    session = await start(private, image)
    try:
        await reads_writes_and_sees_nothing_else(session, private)
    finally:
        await session.shutdown()
    assert mounted_below(lending._staging_root()) == [str(lending._staging_root())]
    assert list(lending._staging_root().iterdir()) == []


async def test_a_warm_kernel_is_lent_its_folder_alone_when_claimed(
    root: Path, private: Path, image: str, pool: WarmPool
):
    (warm,) = pool.ready
    staging = warm.manager.provisioner.lending.staging
    container = warm.manager.provisioner.container.id
    session = await start(private, image)
    try:
        assert session.manager.provisioner.container.id == container
        await reads_writes_and_sees_nothing_else(session, private)
        await session.restart()  # a restart keeps the folder lent
        assert stdout(await session.execute("print(open('result.csv').read()[:6])", 60)) == (
            "amount\n"
        )
    finally:
        await session.shutdown()
    assert mounted_below(staging) == [] and not staging.exists()


def bindfs_file_systems() -> set[str]:
    """The FUSE file systems (bindfs's) mounted, by device: a bind of one shows its device."""
    with open("/proc/self/mountinfo") as mountinfo:
        lines = [line.split() for line in mountinfo]
    return {line[2] for line in lines if line[line.index("-") + 1].startswith("fuse")}


async def test_claims_bind_their_folders_from_one_view_of_the_root_per_owner(
    root: Path, private: Path, image: str, pool: WarmPool
):
    """A claim started a bindfs of its own, milliseconds of every notebook's opening; now it
    binds its folder from the root's view for the folder's owner, and sees that folder alone."""
    other = root / "other"
    other.mkdir(mode=0o700)
    (other / "mine.txt").write_text("other's")
    sessions = []
    try:
        for folder in (private, other):
            await asyncio.wait_for(pool.full(), 60)
            sessions.append(await start(folder, image))
        assert len(bindfs_file_systems()) == 1
        printed = stdout(await sessions[1].execute("import os; print(sorted(os.listdir()))", 60))
        assert printed == "['mine.txt']\n"
        await reads_writes_and_sees_nothing_else(sessions[0], private)
    finally:
        for session in sessions:
            await session.shutdown()


async def test_without_bindfs_a_private_folder_is_refused_with_what_fixes_it(
    private: Path, image: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("PATH", str(tmp_path))  # no bindfs on it
    folder_access.cache_clear()
    try:
        assert folder_access().mode == "uid 1000"
        with pytest.raises(FolderUnreadable, match=r"install bindfs \(apt-get install bindfs\)"):
            await start(private, image)
    finally:
        folder_access.cache_clear()
    assert oct(stat.S_IMODE(os.stat(private).st_mode)) == "0o700"


def test_the_staging_of_a_killed_server_is_unmounted_by_the_next(private: Path, tmp_path: Path):
    """A process that lent a folder and was killed leaves mounts; the next one takes them off,
    and removes the person's files from nowhere."""
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from jupyter_notebook_agent.sandbox.lending import Lending\n"
        f"print(Lending('kernel-x').lend(Path({str(private)!r})), flush=True)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    killed = subprocess.run(["python", "-c", script], capture_output=True, text=True, timeout=60)
    lent = Path(killed.stdout.strip())
    assert killed.returncode == -9 and (lent / "sales_data.csv").exists(), killed.stderr
    staging = lent.parent.parent
    assert staging.name.startswith(lending.STAGING_PREFIX)
    lending.release_orphans()
    assert mounted_below(staging) == [] and not staging.exists()
    assert (private / "sales_data.csv").read_text() == "amount\n1\n2\n"


def test_kernels_starting_at_once_share_one_staging_mount_that_propagates():
    """Kernels start in threads: two making the staging folder at once stacked two mounts, the
    upper one private, and the engine refused the warm kernel's mount."""
    script = (
        "import threading\n"
        "from jupyter_notebook_agent.sandbox.lending import Lending\n"
        "made = []\n"
        "threads = [threading.Thread(target=lambda i=i: made.append(Lending(f'k{i}')))"
        " for i in range(8)]\n"
        "[t.start() for t in threads]; [t.join() for t in threads]\n"
        "root = str(made[0].staging.parent)\n"
        "print([line.split()[6] for line in open('/proc/self/mountinfo')"
        " if line.split()[4] == root])\n"
        "[lending.release() for lending in made]\n"
    )
    shown = subprocess.run(["python", "-c", script], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    (optional,) = eval(shown.stdout)  # one mount, its optional fields: shared:N
    assert optional.startswith("shared:")
