"""GGUF files from the Hugging Face hub: named `hf:OWNER/REPO/FILE.gguf`, downloaded once into the
hub's cache, and only when someone asked for the download: looking a model up never downloads."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .base import ModelError

PREFIX = "hf:"
DEFAULT_LOCAL_MODEL = (
    "hf:Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
)
"""The model offered when none is configured: a small open coder model (about 1.1 GB)."""


def default_local_model() -> str:
    """The local model offered when none is configured: `$NOTEBOOK_AGENT_LOCAL_MODEL` (a hub
    reference or a path), else DEFAULT_LOCAL_MODEL."""
    return os.environ.get("NOTEBOOK_AGENT_LOCAL_MODEL") or DEFAULT_LOCAL_MODEL


Progress = Callable[[int, int], None]
"""Called with (bytes done, bytes in all) as a download goes."""


@dataclass(frozen=True)
class HubFile:
    repo: str
    filename: str

    @classmethod
    def parse(cls, reference: str) -> HubFile:
        """`hf:OWNER/REPO/FILE.gguf` (FILE may lie in folders of the repo)."""
        owner, _, rest = reference.removeprefix(PREFIX).partition("/")
        name, _, filename = rest.partition("/")
        if not (owner and name and filename.endswith(".gguf")):
            raise ModelError(f"{reference!r} is not hf:OWNER/REPO/FILE.gguf")
        return cls(f"{owner}/{name}", filename)

    @classmethod
    def of(cls, name: str) -> HubFile | None:
        """The hub file a local model's name means; None for a path."""
        return cls.parse(name) if name.startswith(PREFIX) else None

    def __str__(self) -> str:
        return f"{PREFIX}{self.repo}/{self.filename}"

    def cached(self) -> Path | None:
        """The file, if it is in the hub's cache already; never touches the network."""
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(self.repo, self.filename)
        return Path(found) if isinstance(found, str) else None

    def size(self) -> int | None:
        """Its size in bytes, asked of the hub (None when the hub cannot be reached)."""
        from huggingface_hub import hf_hub_download

        try:
            info: Any = hf_hub_download(self.repo, self.filename, dry_run=True)
        except Exception:
            return None
        return getattr(info, "file_size", None)

    def download(self, progress: Progress | None = None) -> Path:
        """Downloads the file into the cache (a file already there is not fetched again)."""
        from huggingface_hub import hf_hub_download

        try:
            path = hf_hub_download(
                self.repo, self.filename, tqdm_class=_progress_bar(progress) if progress else None
            )
        except Exception as error:
            raise ModelError(f"could not download {self}: {error}") from error
        return Path(str(path))


def _progress_bar(report: Progress) -> Any:
    """A tqdm class that hands the download's progress to `report` instead of drawing it."""
    from tqdm.auto import tqdm

    class ReportingBar(tqdm):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            self.n += n or 0
            report(int(self.n), int(self.total or 0))
            return None

    return ReportingBar
