"""The notebook files a run writes, as the ContentsManager holds them: one spelling of a path,
confined to the root, and saves of one file one at a time."""

from __future__ import annotations

import asyncio
import collections
import posixpath
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server.services.contents.manager import ContentsManager
from tornado.web import HTTPError


class OutsideRoot(ValueError):
    """A path that is, or leads (through a symlink), outside the server's root."""


def real_api_path(contents: ContentsManager, spelled: str) -> str:
    """The one spelling of an API path, so that `n.ipynb`, `./n.ipynb`, `sub/../n.ipynb` and a
    symlink to it are one file: its real path below the root, where the contents live in files.
    OutsideRoot for one outside, or leading outside."""
    path = posixpath.normpath(spelled.strip("/")) if spelled.strip("/") else ""
    if path == ".." or path.startswith("../"):
        raise OutsideRoot(f"{spelled!r} is outside the server's root")
    os_path = getattr(contents, "_get_os_path", None)
    if os_path is None or not path:
        return path
    try:
        real = Path(os_path(path)).resolve()
    except HTTPError:  # outside the root
        raise OutsideRoot(f"{spelled!r} is outside the server's root") from None
    try:
        return real.relative_to(Path(contents.root_dir).resolve()).as_posix()
    except ValueError:
        raise OutsideRoot(f"{spelled!r} leads outside the server's root") from None


class SerialSaves:
    """Every save through the ContentsManager, the person's included, takes its file's turn, and
    so does a writer's read, merge and save as one: a save made between the writer's read and its
    save would otherwise be lost (3 of 257 saves 30 ms apart were). Every read takes the file's
    turn too: the manager writes a file in place, and a page reloaded while the server wrote the
    run's cells read an empty notebook ("Notebook does not appear to be JSON")."""

    def __init__(self, contents: ContentsManager) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self.read_wait_s = 10.0
        """How long a read waits for the file's save to end before it reads the file as it is."""
        self._holders: collections.Counter[str] = collections.Counter()
        """Who holds or waits for each file's turn: a lock nobody wants goes, so that the locks
        do not grow with every file ever saved."""
        self.save: Callable[..., Awaitable[dict[str, Any]]] = self._unlocked(contents.save)
        """The manager's own save, for a caller holding the file's turn."""
        self.get: Callable[..., Awaitable[dict[str, Any]]] = self._unlocked(contents.get)
        """The manager's own read, for a caller holding the file's turn."""
        contents.save = self._save_in_turn  # type: ignore[method-assign]
        contents.get = self._get_in_turn  # type: ignore[method-assign]

    @staticmethod
    def _unlocked(method: Callable[..., Any]) -> Callable[..., Awaitable[dict[str, Any]]]:
        async def call(*args: Any, **kwargs: Any) -> Any:
            return await ensure_async(method(*args, **kwargs))

        return call

    async def _save_in_turn(self, model: dict[str, Any], path: str, *args: Any, **kw: Any) -> Any:
        async with self.turn(path):
            return await self.save(model, path, *args, **kw)

    async def _get_in_turn(self, path: str, content: bool = True, **kwargs: Any) -> Any:
        """A read of the file's content waits its turn, for `read_wait_s` at most: a save that
        hangs (a stuck file system) does not hang every reader of the file with it. A read of
        its size and dates (as the manager's own save makes, in the turn) does not wait."""
        if not content:
            return await self.get(path, content=False, **kwargs)
        async with self.turn(path, wait_s=self.read_wait_s):
            return await self.get(path, content=True, **kwargs)

    @asynccontextmanager
    async def turn(self, path: str, wait_s: float | None = None) -> AsyncIterator[None]:
        """The file's turn; or, after `wait_s` seconds without it, none."""
        path = path.strip("/")
        self._holders[path] += 1
        lock = self._locks.setdefault(path, asyncio.Lock())
        try:
            try:
                async with asyncio.timeout(wait_s):
                    await lock.acquire()
            except TimeoutError:
                yield
                return
            try:
                yield
            finally:
                lock.release()
        finally:
            self._holders[path] -= 1
            if not self._holders[path]:
                del self._holders[path], self._locks[path]
