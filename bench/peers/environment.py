"""Environments of their own for what a peer comparison runs (the peer, a model server): made once
under the cache folder and reused, never the project's own, whose packages they would clash with."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from collections.abc import Sequence
from pathlib import Path

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "jupyter-notebook-agent"
PEERS = CACHE / "peers"


def ensure_venv(name: str, requirements: Sequence[str], find_links: Path | None = None) -> Path:
    """The environment's bin folder, with `requirements` installed: made, or brought up to date,
    when the list it was last made with (kept beside it) differs."""
    folder = PEERS / name
    record = folder / "requirements.txt"
    wanted = "".join(f"{line}\n" for line in requirements)
    if record.is_file() and record.read_text() == wanted:
        return folder / "bin"
    print(f"Installing {name} into {folder} (once)", file=sys.stderr, flush=True)
    if not (folder / "bin" / "python").exists():
        venv.create(folder, with_pip=True)
    links = ["--find-links", str(find_links)] if find_links else []
    subprocess.run(
        [str(folder / "bin" / "python"), "-m", "pip", "install", "-q",
         "--disable-pip-version-check", *links, *requirements],
        stdout=sys.stderr,
        check=True,
    )  # fmt: skip
    record.write_text(wanted)
    return folder / "bin"
