"""How a sandbox kernel is lent its notebook's folder: that folder alone, with its owner's access.

A server run by a person starts the kernel as that person, so a plain bind of the folder gives the
kernel the person's own access. A server run as root (a container, a cloud VM) starts the kernel as
an unprivileged user instead (uid 1000), which cannot read a private (0700) folder of root's. Such a
server lends the folder through bindfs, a FUSE bind mount that shows the folder owner's files as the
kernel user's own and hands what that user creates back to the owner, with no mode, owner or ACL of
the person's files changed and no privilege in the container. (A user namespace alone does not do
it: the container's root maps to an unprivileged host uid, which cannot read a 0700 folder of root's
either; and the engines we run, 20.10 to 28, offer no idmapped bind mount.)

A warm kernel starts before anyone knows its notebook. Its container mounts an empty staging
folder, with slave propagation, at the path of the server's root; a claim mounts the notebook's
folder at its own path inside that staging folder, and it appears in the running container. So a
kernel, warm or cold, sees nothing of the root above or beside its folder.

Hidden entries at the top of the folder (`.ssh`, `.bashrc`, `.ipython`, `.config`, `.git` ...) are
startup code and keys of programs that run outside the sandbox; each is masked by an empty read-only
one, as jupyter_server hides them from the browser, unless the person mounts it on purpose.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import itertools
import os
import re
import shutil
import stat
import subprocess
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

#: The image's unprivileged user, which the kernel runs as when the server runs as root.
SANDBOX_UID = 1000
#: Each process stages its kernels' folders below its own folder of this name, with its pid.
STAGING_PREFIX = "notebook-agent-lent-"
#: FUSE keeps names and attributes a second, and file pages until a file changes on disk: by
#: default every open asked bindfs afresh, and 2,000 small files read 75 times slower than
#: directly (now about 20); a 64 MB file 3 times (now as fast). The person's own edits on this
#: machine show in the kernel within that second.
BINDFS_OPTIONS = ("-o", "attr_timeout=1,entry_timeout=1,auto_cache")
#: Each process keeps its empty masks in its own folder of this name, with its pid.
MASKS_PREFIX = "notebook-agent-masks-"
# mount(2) flags (linux/mount.h) and umount2's lazy detach.
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_SHARED = 1, 32, 4096, 16384, 1 << 20
MNT_DETACH, UMOUNT_NOFOLLOW = 2, 8
_libc = ctypes.CDLL(None, use_errno=True)


class FolderUnreadable(Exception):
    """The kernel's user could not read the notebook's folder, and nothing here can lend it."""


@dataclass(frozen=True)
class FolderAccess:
    """How this server lends folders to sandbox kernels; `doctor` shows it."""

    mode: str
    """`same user`, `bindfs`, or `uid 1000` (root without bindfs: reads what any user may)."""
    detail: str
    lends_later: bool
    """Whether a running container can be lent a folder (root: mounts propagate), as the warm pool
    needs; a person's server cannot make mounts, so its kernels start cold."""


@functools.cache
def folder_access() -> FolderAccess:
    if os.getuid() != 0:
        return FolderAccess("same user", "the kernel runs as you, with your access", False)
    if shutil.which("bindfs") and os.path.exists("/dev/fuse"):
        detail = f"bindfs lends uid {SANDBOX_UID} the access of each notebook folder's owner"
        return FolderAccess("bindfs", detail, True)
    detail = (
        f"the kernel runs as uid {SANDBOX_UID} and reads only what any user may; install bindfs "
        "(apt-get install bindfs) to lend it the access of the folder's owner"
    )
    return FolderAccess(f"uid {SANDBOX_UID}", detail, True)


def kernel_user() -> tuple[int, int]:
    """The container's user: the person's own uid, or 1000 when the server runs as root."""
    uid, gid = os.getuid(), os.getgid()
    return (SANDBOX_UID, SANDBOX_UID) if uid == 0 else (uid, gid)


def hidden_entries(folder: Path) -> list[Path]:
    """The folder's top-level hidden folders and files, which the kernel gets masked. A symlink
    is left as it is: the kernel resolves it in its own container, never on this machine."""
    try:
        entries = [entry for entry in folder.iterdir() if entry.name.startswith(".")]
    except OSError:
        return []
    return sorted(e for e in entries if not e.is_symlink() and (e.is_dir() or e.is_file()))


def masks(folder: Path) -> list[tuple[str, str]]:
    """(empty source, hidden entry) pairs that mask the folder's hidden entries; the engine
    mounts them read-only."""
    return [(_mask_for(entry.is_dir()), str(entry)) for entry in hidden_entries(folder)]


class Lending:
    """One kernel's staging folder and the mounts made in it; `release` undoes them all."""

    def __init__(self, name: str) -> None:
        self.staging = _staging_root() / name
        self.staging.mkdir(mode=0o755)
        self.mounts: list[Path] = []
        """Newest last, so that unmounting in reverse takes masks off before their folder."""
        self.lent: Path | None = None
        """Where the notebook's folder is mounted, once lent."""

    def lend(self, folder: Path, root: Path | None = None) -> Path:
        """Mounts `folder` in the staging folder, at its place below `root` (a warm kernel's mount)
        or at the staging folder's `folder` (a cold kernel binds that); returns where."""
        folder = folder.resolve()
        place = self.staging / folder.relative_to(root) if root else self.staging / "folder"
        place.mkdir(mode=0o755, parents=True, exist_ok=True)
        try:
            self._mount_folder(folder, place, root)
            for entry in hidden_entries(folder):
                self._mask(place / entry.name)
        except BaseException:
            self.release()
            raise
        self.lent = place
        return place

    def _mount_folder(self, folder: Path, place: Path, root: Path | None) -> None:
        """Where bindfs lends the owner's access: a warm kernel's folder is bound from the
        root's view for its owner, a cold one's gets a bindfs of its own."""
        if folder_access().mode == "bindfs":
            info = folder.stat()
            if root is None:
                _bindfs(folder, place, info.st_uid, info.st_gid)
            else:
                view = _view(root, info.st_uid, info.st_gid)
                _mount(str(view / folder.relative_to(root)), place, MS_BIND)
            self.mounts.append(place)
            return
        readable_by_kernel(folder)
        _mount(str(folder), place, MS_BIND)
        self.mounts.append(place)

    def _mask(self, entry: Path) -> None:
        """Mounts an empty one over the entry, on the entry itself: opened without following a
        symlink, so that one swapped in meanwhile (by a kernel of that folder) masks nothing of
        this machine's. The empty ones are read-only, and so is each bind of them."""
        try:
            opened = os.open(entry, os.O_PATH | os.O_NOFOLLOW)
        except FileNotFoundError:
            return
        try:
            kind = os.fstat(opened).st_mode
            if stat.S_ISDIR(kind) or stat.S_ISREG(kind):
                _mount(_mask_for(stat.S_ISDIR(kind)), Path(f"/proc/self/fd/{opened}"), MS_BIND)
                self.mounts.append(entry)
        finally:
            os.close(opened)

    def release(self) -> None:
        """Unmounts what was lent (lazily: a container may still be going) and removes the
        staging folder."""
        while self.mounts:
            _unmount(self.mounts.pop())
        self.lent = None
        _remove_empty_folders(self.staging)


def readable_by_kernel(folder: Path) -> None:
    """FolderUnreadable, saying what fixes it, when uid 1000 cannot list and enter `folder`."""
    info = folder.stat()
    if info.st_uid == SANDBOX_UID:
        need = stat.S_IRUSR | stat.S_IXUSR
    elif info.st_gid == SANDBOX_UID:
        need = stat.S_IRGRP | stat.S_IXGRP
    else:
        need = stat.S_IROTH | stat.S_IXOTH
    if info.st_mode & need != need:
        raise FolderUnreadable(
            f"the sandbox kernel runs as uid {SANDBOX_UID}, which cannot read {folder} (owner uid "
            f"{info.st_uid}, mode {stat.filemode(info.st_mode)}); install bindfs (apt-get install "
            "bindfs) so that the kernel is lent the owner's access to the folder, or run Jupyter "
            "as a user other than root"
        )


def _made_once(make: Callable[[], Path]) -> Callable[[], Path]:
    """A cache for what is made with mounts, once per process: kernels start in threads, and two
    makers at once would stack two mounts, the upper one not shared."""
    made = functools.cache(make)

    @functools.wraps(make)
    def once() -> Path:
        with _MAKING:
            return made()

    return once


_MAKING = threading.Lock()


@_made_once
def _staging_root() -> Path:
    """This process's staging folder, private to it and made a shared mount once, so that what
    is mounted below it later propagates into the containers that mount its folders."""
    release_orphans()
    root = Path(tempfile.gettempdir()) / f"{STAGING_PREFIX}{os.getpid()}"
    root.mkdir(mode=0o700, exist_ok=True)
    _mount(str(root), root, MS_BIND)
    _mount("", root, MS_SHARED | MS_REC)
    atexit.register(_unmount, root)
    return root


def _bindfs(folder: Path, place: Path, uid: int, gid: int) -> None:
    """Mounts `folder` at `place` with uid:gid's files shown as the kernel user's own."""
    mapping = f"--map={uid}/{SANDBOX_UID}:@{gid}/@{SANDBOX_UID}"
    maps = [] if uid == gid == SANDBOX_UID else [mapping]
    _run(["bindfs", *maps, *BINDFS_OPTIONS, str(folder), str(place)])


def _view(root: Path, uid: int, gid: int) -> Path:
    """The root as bindfs shows it to the kernel user for folders of uid:gid's, one per owner
    for the process: a claim binds its folder from here in microseconds, where starting a
    bindfs of its own took milliseconds of every notebook's opening. Private to this process
    (in its staging folder, which no kernel mounts); made afresh if its bindfs went away."""
    with _VIEWING:
        view = _views.get((root, uid, gid))
        if view is not None:
            try:
                os.stat(view)  # a bindfs that went away answers "not connected"
                return view
            except OSError:
                _unmount(view)
                _remove_empty_folders(view)
        view = _staging_root() / VIEWS / f"{uid}-{gid}-{next(_view_numbers)}"
        view.mkdir(mode=0o700, parents=True)
        _bindfs(root, view, uid, gid)
        _views[(root, uid, gid)] = view
        atexit.register(_unmount, view)
        return view


def release_views(root: Path) -> None:
    """Unmounts the root's views, once no kernel is lent a folder from them any more (the
    warm pool's end): a bind keeps its folder's view until the bind goes."""
    with _VIEWING:
        for key in [key for key in _views if key[0] == root]:
            view = _views.pop(key)
            _unmount(view)
            _remove_empty_folders(view)


#: The folder of this process's views in its staging folder, beside the kernels' own.
VIEWS = "views"
_views: dict[tuple[Path, int, int], Path] = {}
_view_numbers = itertools.count()
_VIEWING = threading.Lock()


def release_orphans() -> None:
    """Unmounts and removes the staging folders of processes that are gone (a crash, a kill)."""
    pattern = re.compile(rf"/{re.escape(STAGING_PREFIX)}(\d+)(/|$)")
    gone: dict[Path, list[Path]] = {}
    for point in _mount_points():
        match = pattern.search(str(point))
        if match and not alive(int(match[1])):
            gone.setdefault(Path(str(point)[: match.end(1)]), []).append(point)
    for folder, points in gone.items():
        for point in sorted(points, key=lambda p: len(p.parts), reverse=True):
            _unmount(point)
        _remove_empty_folders(folder)
    mounted = set(_mount_points())
    for masks_folder in Path(tempfile.gettempdir()).glob(f"{MASKS_PREFIX}*"):
        pid = masks_folder.name.removeprefix(MASKS_PREFIX)
        if pid.isdigit() and not alive(int(pid)):
            if masks_folder in mounted:
                _unmount(masks_folder)
            shutil.rmtree(masks_folder, ignore_errors=True)


def _remove_empty_folders(top: Path) -> None:
    """Removes `top` and the folders below it, empty ones alone, never entering a mount: a mount
    that failed to go is the person's folder, which nothing here may delete from."""
    mounted = set(_mount_points())  # os.path.ismount misses a bind within one file system
    if top in mounted:
        return
    found = []
    for folder, subfolders, _ in os.walk(top):
        found.append(folder)
        subfolders[:] = [name for name in subfolders if Path(folder, name) not in mounted]
    for folder in reversed(found):
        with contextlib.suppress(OSError):
            os.rmdir(folder)


def _mount_points() -> list[Path]:
    with open("/proc/self/mountinfo") as mountinfo:
        # Octal escapes stand for spaces and other odd characters in a path.
        return [
            Path(re.sub(r"\\(\d{3})", lambda m: chr(int(m[1], 8)), line.split()[4]))
            for line in mountinfo
        ]


def alive(pid: int) -> bool:
    """Whether a process of this machine is still there (one of another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _mount(source: str, target: Path, flags: int) -> None:
    """mount(2) itself: a bind costs microseconds, where the mount command costs milliseconds."""
    if _libc.mount(source.encode(), str(target).encode(), None, flags, None) != 0:
        error = ctypes.get_errno()
        raise OSError(
            error, f"mounting {source or 'propagation'} at {target}: {os.strerror(error)}"
        )


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise OSError(f"{' '.join(argv)}: {done.stderr.strip() or done.returncode}")


def _unmount(point: Path) -> None:
    """Detaches at once (a container still going keeps its view until it ends), never through
    a symlink."""
    _libc.umount2(str(point).encode(), MNT_DETACH | UMOUNT_NOFOLLOW)


def _mask_for(is_folder: bool) -> str:
    """An empty folder or file, of this process, to mount over a hidden entry."""
    return str(_masks() / ("folder" if is_folder else "file"))


@_made_once
def _masks() -> Path:
    """The empty folder and file, read-only: owned by root and a read-only mount of their own
    where this process makes mounts, so that every bind of them is read-only too."""
    folder = Path(tempfile.gettempdir()) / f"{MASKS_PREFIX}{os.getpid()}"
    if os.getuid() == 0 and folder in _mount_points():
        _unmount(folder)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(mode=0o755)
    (folder / "folder").mkdir(mode=0o555)
    (folder / "file").touch(mode=0o444)
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    if os.getuid() == 0:
        _mount(str(folder), folder, MS_BIND)
        atexit.register(_unmount, folder)  # before the removal: atexit runs the last first
        _mount(str(folder), folder, MS_BIND | MS_REMOUNT | MS_RDONLY)
    return folder
