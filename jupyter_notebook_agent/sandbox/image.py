"""The sandbox kernel's container image: built without a registry, named by a hash of its recipe.

The default build needs no Docker registry at all: `debootstrap` makes a minimal Debian root
filesystem from a Debian mirror, Debian's Python and wheels of the kernel and the data libraries
from PyPI go into it, and `docker import` turns it into an image. The tag carries a hash of
everything that determines the image, so a changed recipe gets a new tag and an existing image
with the current tag is the cache.

A Dockerfile (`python:3.12-slim` and pip) is shipped too, for people who can pull a base image.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

from . import SandboxUnavailable, docker_engine

if TYPE_CHECKING:
    import docker

SUITE = "bookworm"
"""The Debian release the image is made of."""
SUITE_PYTHON = "3.11"
SUITE_GLIBC_MINOR = 36
"""The release's Python and glibc 2.x: which wheels fit the image."""

IMAGE_PACKAGES: tuple[str, ...] = ("python3",)
"""Debian packages in the image: Python itself; everything else comes as wheels."""

PYTHON_PACKAGES: tuple[str, ...] = (
    "ipykernel==7.4.0",
    "ipython==9.18.1",
    "jupyter_client==8.10.0",
    "numpy==2.4.6",
    "pandas==3.1.1",
    "pyarrow==26.0.1",
    "matplotlib==3.11.2",
    "seaborn==0.13.2",
    "scikit-learn==1.9.1",
    "scipy==1.17.1",
    "munkres==3.0.0",
)
"""The kernel and the data libraries generated code reaches for, as wheels from PyPI, the same
for either build. Debian's own are older and slow: its ipykernel (6.17) takes three times as long
to import, which was most of a cold start, and its matplotlib (3.6) cannot work with a newer
IPython."""

REPOSITORY = "jupyter-notebook-agent-kernel"
RECIPE_LABEL = "org.jupyter-notebook-agent.recipe"
"""Image label holding the recipe hash, so that an image can be checked against this code."""
BUILD_LABEL = "org.jupyter-notebook-agent.build"
"""Image label saying which recipe made the image: `rootfs` or `dockerfile`."""

USER = "1000"
WORKDIR = "/home/sandbox"
ENV: dict[str, str] = {
    # The root filesystem is read-only and only /tmp is writable (a tmpfs), so everything a kernel
    # writes for itself goes there.
    "HOME": "/tmp/home",
    "MPLCONFIGDIR": "/tmp/mpl",
    "IPYTHONDIR": "/tmp/ipython",
    # Figures come back as display data rather than trying to open a window.
    "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    "PYTHONDONTWRITEBYTECODE": "1",
}

DOCKERFILE = Path(__file__).with_name("Dockerfile")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
"""Used only when the machine's apt sources name no Debian mirror."""

CHROOT_SCRIPT = r"""
set -eu
# $DEBIAN_PACKAGES and $PYTHON_PACKAGES are word lists; /tmp/wheels holds the wheels, pip's own
# among them: pip runs from its wheel, so that none is left in the image.
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
apt-get update -qq
apt-get install -y -qq --no-install-recommends $DEBIAN_PACKAGES
set -- /tmp/wheels/pip-*.whl
python3 "$1/pip" install --quiet --no-index --find-links /tmp/wheels \
    --break-system-packages --root-user-action=ignore --disable-pip-version-check \
    --no-cache-dir $PYTHON_PACKAGES
rm -rf /tmp/wheels
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/cache/debconf/*-old /var/lib/dpkg/*-old
rm -rf /usr/share/man/* /usr/share/info/*
find /var/log -type f -delete
useradd --uid 1000 --user-group --create-home --home-dir /home/sandbox --shell /bin/bash sandbox
"""
"""Runs as root inside the new root filesystem."""

Log = Callable[[str], None]


class ImageError(Exception):
    """The image is missing or could not be built; the message is one line that says what to do.

    `output` holds the tail of the failed command's output, when a command failed.
    """

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message)
        self.output = output


def image_config() -> list[str]:
    """The `docker import --change` lines: what the Dockerfile's USER, ENV, WORKDIR say."""
    changes = [f"USER {USER}", f"WORKDIR {WORKDIR}"]
    changes += [f"ENV {name}={value}" for name, value in ENV.items()]
    changes.append('CMD ["python3"]')
    return changes


def recipe_hash() -> str:
    """A short hash of everything that determines the image; a changed recipe gets a new tag.

    The Dockerfile is part of it, so that either way of building gives an image that fits the tag.
    """
    recipe = {
        "suite": SUITE,
        "packages": list(IMAGE_PACKAGES),
        "wheels": list(PYTHON_PACKAGES),
        "script": CHROOT_SCRIPT,
        "config": image_config(),
        "dockerfile": _dockerfile_text(),
    }
    text = json.dumps(recipe, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@functools.cache
def _dockerfile_text() -> str:
    """Read once: every kernel start asks for the default tag, and the file is the package's."""
    return DOCKERFILE.read_text()


def default_image() -> str:
    """The tag the sandbox runs unless configured otherwise: one per recipe."""
    return f"{REPOSITORY}:{recipe_hash()}"


def _docker_client() -> docker.DockerClient:
    """A client of an engine that answers, or an ImageError that says there is none."""
    try:
        return docker_engine()
    except SandboxUnavailable as error:
        raise ImageError(str(error)) from None


def image_labels(tag: str) -> dict[str, str] | None:
    """The image's labels, or None when there is no image with this tag."""
    import docker.errors

    client = _docker_client()
    try:
        image = client.images.get(tag)
    except docker.errors.ImageNotFound:
        return None
    finally:
        client.close()
    return dict(image.labels or {})


def image_exists(tag: str) -> bool:
    return image_labels(tag) is not None


def build_instructions(tag: str) -> str:
    option = "" if tag == default_image() else f" --tag {tag}"
    return (
        f"build it with `jupyter-notebook-agent image build{option}` (as root; needs debootstrap "
        f"and a Debian mirror, no registry), or pull or load an image and tag it {tag}"
    )


def missing_image(tag: str) -> ImageError:
    return ImageError(f"the sandbox kernel image {tag} is missing; {build_instructions(tag)}")


def ensure_image(tag: str | None = None, *, build: bool = True, log: Log = print) -> str:
    """The tag, once an image with it exists: built from the rootfs recipe when it is missing."""
    tag = tag or default_image()
    if image_exists(tag):
        return tag
    if not build:
        raise missing_image(tag)
    with _build_lock(tag):
        if not image_exists(tag):  # another process may have built it while we waited
            _build_rootfs(tag, mirror=None, log=log)
    return tag


@contextlib.contextmanager
def _build_lock(tag: str) -> Iterator[None]:
    """One build per tag at a time on this machine: two kernels starting at once build once."""
    import fcntl

    name = re.sub(r"[^A-Za-z0-9_.-]", "_", tag)
    path = Path(tempfile.gettempdir()) / f"jupyter-notebook-agent-image-{name}.lock"
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def debian_mirror(apt_dir: Path = Path("/etc/apt")) -> str:
    """The Debian mirror this machine's apt uses, so that the build goes where the network does."""
    sources = _apt_sources(apt_dir)
    for uri, suite in sources:
        if suite == SUITE:
            return uri
    for uri, suite in sources:
        if uri.rstrip("/").endswith("/debian") and not suite.endswith("-security"):
            return uri
    return DEFAULT_MIRROR


def security_mirror(apt_dir: Path = Path("/etc/apt")) -> str | None:
    """Where this machine's apt gets the suite's security updates, if it names such a source."""
    for uri, suite in _apt_sources(apt_dir):
        if suite == f"{SUITE}-security":
            return uri
    return None


def _apt_sources(apt_dir: Path) -> list[tuple[str, str]]:
    """(URI, suite) of each `deb` source, from one-line `.list` files and deb822 `.sources`."""
    found: list[tuple[str, str]] = []
    files = [apt_dir / "sources.list"]
    parts = apt_dir / "sources.list.d"
    if parts.is_dir():
        files += sorted(parts.iterdir())
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields: dict[str, str] = {}
                key = ""
                for line in stanza.splitlines():
                    if line.startswith("#") or not line.strip():
                        continue
                    if line[0].isspace() and key:
                        fields[key] += " " + line.strip()
                    elif ":" in line:
                        key, _, value = line.partition(":")
                        key = key.strip().lower()
                        fields[key] = value.strip()
                if "deb" not in fields.get("types", "").split():
                    continue
                if fields.get("enabled", "yes").lower() == "no":
                    continue
                for uri in fields.get("uris", "").split():
                    found += [(uri, suite) for suite in fields.get("suites", "").split()]
        elif path.name == "sources.list" or path.suffix == ".list":
            for line in text.splitlines():
                words = re.sub(r"\[[^\]]*\]", " ", line.split("#", 1)[0]).split()
                if len(words) >= 3 and words[0] == "deb":
                    found.append((words[1], words[2]))
    return found


def build_rootfs_image(
    tag: str | None = None, *, mirror: str | None = None, log: Log = print
) -> str:
    """Build the image from a debootstrapped Debian root filesystem: no registry involved.

    Needs root (debootstrap and chroot do), debootstrap, tar, a Docker engine and a Debian mirror.
    """
    tag = tag or default_image()
    with _build_lock(tag):
        return _build_rootfs(tag, mirror=mirror, log=log)


def _build_rootfs(tag: str, *, mirror: str | None, log: Log) -> str:
    if os.geteuid() != 0:
        raise ImageError(
            "building the rootfs image needs root (debootstrap and chroot do); run it as root, "
            "or use `jupyter-notebook-agent image build --dockerfile` where a registry is reachable"
        )
    for tool in ("debootstrap", "chroot", "tar", "docker"):
        if shutil.which(tool) is None:
            package = {"docker": "docker.io", "chroot": "coreutils"}.get(tool, tool)
            raise ImageError(f"`{tool}` is not installed; install it (apt-get install {package})")
    _docker_client().close()  # fail before the long part if no engine answers
    mirror = mirror or debian_mirror()
    security = security_mirror()
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="jupyter-notebook-agent-rootfs-", dir="/var/tmp"))
    try:
        log(f"debootstrap {SUITE} (minbase) from {mirror} into {root}")
        _run(["debootstrap", "--variant=minbase", SUITE, str(root), mirror], "debootstrap")
        sources = f"deb {mirror} {SUITE} main\ndeb {mirror} {SUITE}-updates main\n"
        if security:
            sources += f"deb {security} {SUITE}-security main\n"
        else:
            log(f"no {SUITE}-security source in /etc/apt; the image gets no security updates")
        (root / "etc/apt/sources.list").write_text(sources)
        log(f"pip download {' '.join(PYTHON_PACKAGES)}  ({_since(started)})")
        _download_wheels(root / "tmp/wheels")
        log(f"apt-get install {' '.join(IMAGE_PACKAGES)}; pip install  ({_since(started)})")
        packages = [
            f"DEBIAN_PACKAGES={' '.join(IMAGE_PACKAGES)}",
            f"PYTHON_PACKAGES={' '.join(PYTHON_PACKAGES)}",
        ]
        script = ["chroot", str(root), "env", *packages, "/bin/sh", "-c", CHROOT_SCRIPT]
        _run(script, "installing the packages in the chroot", shown=["chroot", str(root), "..."])
        log(f"docker import as {tag}  ({_since(started)})")
        _import(root, tag)
    finally:
        _remove_tree(root, log)
    log(f"built {tag} in {_since(started)}")
    return tag


def _download_wheels(dest: Path) -> None:
    """The wheels for the image's Python, and pip's, fetched by this machine's pip: it
    knows the way to PyPI here (index, proxy, certificates), which the new root filesystem does
    not."""
    arch = platform.machine()
    platforms = [f"manylinux_2_{minor}_{arch}" for minor in range(SUITE_GLIBC_MINOR, 4, -1)]
    platforms.append(f"manylinux2014_{arch}")  # pip adds the older manylinux2010 and manylinux1
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check"]
    command += ["--only-binary=:all:", "--implementation", "cp", "--python-version", SUITE_PYTHON]
    command += [f"--platform={name}" for name in platforms]
    command += ["--dest", str(dest), "pip", *PYTHON_PACKAGES]
    _run(command, "downloading the wheels", shown=[*command[:4], "...", *PYTHON_PACKAGES])


def _import(root: Path, tag: str) -> None:
    """`tar -C ROOT -c . | docker import --change ... - TAG`, with the recipe's label."""
    changes = [*image_config(), f"LABEL {RECIPE_LABEL}={recipe_hash()} {BUILD_LABEL}=rootfs"]
    command = ["docker", "import", "--message", f"{REPOSITORY} recipe {recipe_hash()}"]
    for change in changes:
        command += ["--change", change]
    command += ["-", tag]
    with tempfile.TemporaryFile() as tar_errors:
        tar = subprocess.Popen(
            ["tar", "--numeric-owner", "-C", str(root), "-c", "."],
            stdout=subprocess.PIPE,
            stderr=tar_errors,
        )
        assert tar.stdout is not None
        try:
            result = subprocess.run(
                command, stdin=tar.stdout, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
        finally:
            tar.stdout.close()
            tar.wait()
        if tar.returncode != 0:
            tar_errors.seek(0)
            raise _failure(f"tar -C {root} -c .", "tar", tar.returncode, _tail(tar_errors))
    if result.returncode != 0:
        output = result.stdout.decode(errors="replace")
        raise _failure(shlex.join(command), "docker import", result.returncode, output)


def build_with_dockerfile(tag: str | None = None, log: Log = print) -> str:
    """`docker build` of the shipped Dockerfile, for people who can pull `python:3.12-slim`."""
    tag = tag or default_image()
    if shutil.which("docker") is None:
        raise ImageError("`docker` is not installed; install Docker (apt-get install docker.io)")
    command = ["docker", "build", "--tag", tag, "--build-arg", f"RECIPE={recipe_hash()}"]
    command += ["--build-arg", f"PYTHON_PACKAGES={' '.join(PYTHON_PACKAGES)}", "-"]
    log(f"docker build of {DOCKERFILE} as {tag}")
    started = time.monotonic()
    # No build context: the Dockerfile copies nothing in, so it is given on stdin.
    with DOCKERFILE.open("rb") as dockerfile:
        _run(command, "docker build", stdin=dockerfile, log=log)
    log(f"built {tag} in {_since(started)}")
    return tag


def _run(
    command: Sequence[str],
    what: str,
    *,
    stdin: IO[bytes] | None = None,
    log: Log | None = None,
    shown: Sequence[str] | None = None,
) -> None:
    """Run a command; on failure raise an error naming it, with the tail of its output.

    With `log`, each line of output is passed on as it comes (and so is not repeated in the error).
    """
    tail: collections.deque[str] = collections.deque(maxlen=30)
    with subprocess.Popen(
        command,
        stdin=stdin if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,  # its own process group, so that all of it can be stopped
    ) as process:
        assert process.stdout is not None
        try:
            for line in process.stdout:
                tail.append(line.rstrip("\n"))
                if log:
                    log(line.rstrip("\n"))
        except BaseException:  # interrupted: stop it all before its folder is removed
            _stop_group(process)
            raise
    if process.returncode != 0:
        output = "" if log else "\n".join(tail)
        raise _failure(shlex.join(shown or command), what, process.returncode, output)


def _stop_group(process: subprocess.Popen[str], grace: float = 20.0) -> None:
    """SIGTERM the command's process group (debootstrap then unmounts what it mounted), then
    SIGKILL whatever is left: a shell waits for its running child before it acts on a signal."""
    for number in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, number)
        try:
            process.wait(grace)
            break
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError):  # the group may outlive its leader
        os.killpg(process.pid, signal.SIGKILL)


def _failure(command: str, what: str, code: int, output: str) -> ImageError:
    if len(command) > 200:
        command = command[:199] + "…"
    return ImageError(f"{what} failed (exit {code}): {command}", output.strip())


def _tail(stream: IO[bytes], lines: int = 30) -> str:
    stream.seek(0)
    text = stream.read().decode(errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def _since(started: float) -> str:
    return f"{time.monotonic() - started:.0f} s"


def _remove_tree(root: Path, log: Log) -> None:
    """Remove the build folder, but never through a mount: debootstrap mounts /proc (and, in some
    containers, the host's /dev) inside it and may leave them behind when interrupted."""
    mounts = _mounts_under(root)
    for mount in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "--lazy", mount], stderr=subprocess.DEVNULL, check=False)
    if left := _mounts_under(root):
        log(f"not removing {root}: still mounted there: {', '.join(left)}")
        return
    shutil.rmtree(root, ignore_errors=True)
    if root.exists():
        log(f"could not remove all of {root}")


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root.resolve())
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    # Field 5 is the mount point, with spaces and the like written as octal escapes.
    points = [_unescape(line.split()[4]) for line in lines if len(line.split()) > 4]
    return [p for p in points if p == prefix or p.startswith(prefix + "/")]


def _unescape(text: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)
