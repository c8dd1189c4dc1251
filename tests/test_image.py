"""The sandbox kernel image, against the real Docker engine: built once when missing, then reused.

Nothing here is skipped: with no Docker engine these tests fail and say so.
"""

from __future__ import annotations

import re
import subprocess
import uuid
from pathlib import Path

import pytest

from jupyter_notebook_agent.sandbox import image
from jupyter_notebook_agent.sandbox.image import ImageError, ensure_image, recipe_hash


@pytest.fixture(scope="module")
def docker_engine() -> None:
    """Fail, not skip, when no engine answers: these tests exist to run against a real one."""
    problem = None
    try:
        image._docker_client().close()
    except ImageError as error:
        problem = str(error)
    if problem:
        pytest.fail(f"these tests need a running Docker engine: {problem}", pytrace=False)


@pytest.fixture(scope="module")
def kernel_image(docker_engine: None) -> str:
    """The default image, built here (once, about 90 s, as root) when this machine lacks it."""
    return ensure_image()


def test_recipe_hash_is_short_stable_and_names_the_default_tag() -> None:
    assert re.fullmatch(r"[0-9a-f]{12}", recipe_hash())
    assert recipe_hash() == recipe_hash()
    assert image.default_image() == f"jupyter-notebook-agent-kernel:{recipe_hash()}"


def test_recipe_hash_changes_with_the_recipe(monkeypatch: pytest.MonkeyPatch) -> None:
    before = recipe_hash()
    monkeypatch.setattr(image, "IMAGE_PACKAGES", (*image.IMAGE_PACKAGES, "python3-scipy"))
    with_package = recipe_hash()
    monkeypatch.undo()
    monkeypatch.setattr(image, "PYTHON_PACKAGES", (*image.PYTHON_PACKAGES[1:], "ipykernel==7.0"))
    with_pin = recipe_hash()
    monkeypatch.undo()
    monkeypatch.setitem(image.ENV, "HOME", "/tmp/elsewhere")
    with_env = recipe_hash()
    assert len({before, with_package, with_pin, with_env}) == 4


def test_dockerfile_matches_the_rootfs_image_config() -> None:
    """Either recipe must give the provisioner the same user, workdir and environment."""
    text = image.DOCKERFILE.read_text().replace("\\\n", " ")
    env_lines = [line for line in text.splitlines() if line.startswith("ENV ")]
    env = dict(word.split("=", 1) for line in env_lines for word in line.split()[1:])
    assert env == image.ENV
    assert f"\nUSER {image.USER}\n" in text
    assert f"\nWORKDIR {image.WORKDIR}\n" in text
    assert f"{image.RECIPE_LABEL}=$RECIPE" in text


def test_debian_mirror_comes_from_the_apt_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n\n"
        "Types: deb\nURIs: http://mirror.example/debian-security\n"
        "Suites: bookworm-security\nComponents: main\n"
    )
    (tmp_path / "sources.list.d" / "other.list").write_text(
        "deb [arch=amd64] https://packages.example/apt stable main\n"
    )
    assert image.debian_mirror(tmp_path) == "http://mirror.example/debian"
    assert image.security_mirror(tmp_path) == "http://mirror.example/debian-security"
    (tmp_path / "sources.list").write_text("deb http://old.example/debian bookworm main\n")
    assert image.debian_mirror(tmp_path) == "http://old.example/debian"
    assert image.debian_mirror(tmp_path / "nowhere") == image.DEFAULT_MIRROR
    assert image.security_mirror(tmp_path / "nowhere") is None


@pytest.mark.timeout(1800)
def test_default_image_exists_with_the_recipe_label(kernel_image: str) -> None:
    assert kernel_image == image.default_image()
    assert image.image_exists(kernel_image)
    labels = image.image_labels(kernel_image)
    assert labels is not None
    assert labels[image.RECIPE_LABEL] == recipe_hash()


@pytest.mark.timeout(1800)
def test_image_runs_the_libraries_offline_read_only_as_uid_1000(kernel_image: str) -> None:
    # /tmp is a tmpfs in the sandbox, as here: matplotlib refuses to import with nowhere to write.
    command = ["docker", "run", "--rm", "--network", "none", "--read-only", "--tmpfs", "/tmp"]
    command += ["--user", "1000", kernel_image, "python3", "-c"]
    code = (
        "import os, ipykernel, numpy, pandas, matplotlib, scipy, sklearn, seaborn, munkres; "
        "import matplotlib.pyplot; "  # loads the inline backend, which must fit this matplotlib
        "print('ok', os.getuid(), os.getcwd(), os.environ['HOME'], matplotlib.get_backend())"
    )
    result = subprocess.run([*command, code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "ok",
        "1000",
        "/home/sandbox",
        "/tmp/home",
        "module://matplotlib_inline.backend_inline",
    ]


def test_ensure_image_without_build_says_how_to_build(docker_engine: None) -> None:
    missing = f"jupyter-notebook-agent-kernel:missing-{uuid.uuid4().hex[:8]}"
    with pytest.raises(ImageError, match="jupyter-notebook-agent image build") as caught:
        ensure_image(missing, build=False)
    assert missing in str(caught.value)
    assert "\n" not in str(caught.value)
