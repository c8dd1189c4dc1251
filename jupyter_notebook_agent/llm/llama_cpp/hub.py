"""GGUF files from the Hugging Face hub: named `hf:OWNER/REPO/FILE.gguf`, downloaded once into the
hub's cache, and only when someone asked for the download: looking a model up never downloads."""

from __future__ import annotations

import importlib
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..base import ModelError

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
        """Downloads the file into the cache (a file already there is not fetched again).
        HubUnreachable where the hub cannot be reached; else ModelError with a one-line reason
        (the hub library's own messages are paragraphs). What `progress` raises ends it."""
        from huggingface_hub import hf_hub_download

        try:
            path = hf_hub_download(
                self.repo, self.filename, tqdm_class=_progress_bar(progress) if progress else None
            )
        except Exception as error:
            if _unreachable(error):
                raise HubUnreachable(f"could not download {self}: {UNREACHABLE}") from error
            raise ModelError(f"could not download {self}: {self._reason(error)}") from error
        return Path(str(path))

    def _reason(self, error: BaseException) -> str:
        """Why a download failed, in one short line."""
        from huggingface_hub import errors

        if isinstance(error, errors.LocalEntryNotFoundError) and error.__cause__:
            error = error.__cause__  # what the hub answered, under "none in the cache either"
        if isinstance(error, errors.GatedRepoError):
            return f"{self.repo} is gated on the hub: accept its terms there and log in first"
        if isinstance(error, errors.RepositoryNotFoundError):
            return f"the hub has no repository {self.repo} (or it is private)"
        if isinstance(error, errors.RevisionNotFoundError):
            return f"the hub's repository {self.repo} has no such revision"
        if isinstance(error, errors.EntryNotFoundError):
            return f"the hub's repository {self.repo} has no file {self.filename}"
        status = _status(error)
        if status is not None:
            return f"the hub answered HTTP {status}"
        if isinstance(error, OSError) and error.strerror:
            return error.strerror  # a full disk, a cache folder that cannot be written ...
        lines = str(error).strip().splitlines() or [type(error).__name__]
        return _shortened(lines[0])


UNREACHABLE = "the model hub cannot be reached"


class HubUnreachable(ModelError):
    """The hub cannot be reached from here (no network, a proxy, HF_HUB_OFFLINE): the model
    must come another way."""


def _chain(error: BaseException) -> list[BaseException]:
    """The error, what caused it, what caused that ..."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        implicit = None if current.__suppress_context__ else current.__context__
        current = current.__cause__ or implicit
    return chain


def _status(error: BaseException) -> int | None:
    """The HTTP status the hub answered with, where it answered."""
    response = getattr(error, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def _unreachable(error: BaseException) -> bool:
    """Whether the hub did not answer at all: offline mode, no network, no name resolution, a
    connection refused or timed out (huggingface_hub says "none in the cache either" for
    these, as for an answer it could not use)."""
    from huggingface_hub import errors

    kinds: tuple[type[BaseException], ...] = (
        errors.OfflineModeIsEnabled,
        ConnectionError,
        TimeoutError,
        socket.gaierror,
    )
    for client in ("httpx", "httpx2"):  # huggingface_hub's HTTP client, by its version
        try:
            kinds += (importlib.import_module(client).TransportError,)
        except (ImportError, AttributeError):
            pass
    chain = _chain(error)
    for each in chain:
        if _status(each) is not None:
            return False  # it answered
        if isinstance(each, kinds):
            return True
    return isinstance(chain[-1], errors.LocalEntryNotFoundError)  # offline, nothing said why


def _shortened(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
