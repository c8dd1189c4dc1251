"""The notebook files a run writes, as the ContentsManager holds them: one spelling of a path,
confined to the root, and saves of one file one at a time."""

from __future__ import annotations

import asyncio
import collections
import inspect
import posixpath
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import anyio
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
    run's cells read an empty notebook ("Notebook does not appear to be JSON").

    Only an async manager's calls are taken in turn: a sync one's save holds the event loop
    from its start to its end, so no other call falls in it, and its own code calls its
    methods for their results, not for coroutines."""

    def __init__(self, contents: ContentsManager) -> None:
        self.contents = contents
        self.read_wait_s = 10.0
        """How long a read waits for the file's save to end before it reads the file as it is."""
        self._locks: dict[str, asyncio.Lock] = {}
        self._holders: collections.Counter[str] = collections.Counter()
        """Who holds or waits for each file's turn: a lock nobody wants goes, so that the locks
        do not grow with every file ever saved."""
        self._held: ContextVar[frozenset[str]] = ContextVar("held", default=frozenset())
        """The files whose turn this task holds: a read or save it makes in its turn (the
        manager's save reads the file's dates; a checkpoint or a hook may read it whole) goes
        on at once."""
        self.save: Callable[..., Awaitable[dict[str, Any]]] = self._unlocked(contents.save)
        """The manager's own save, for a caller holding the file's turn."""
        self.get: Callable[..., Awaitable[dict[str, Any]]] = self._unlocked(contents.get)
        """The manager's own read, for a caller holding the file's turn."""
        if inspect.iscoroutinefunction(contents.save):
            contents.save = self._save_in_turn  # type: ignore[method-assign]
        if inspect.iscoroutinefunction(contents.get):
            contents.get = self._get_in_turn  # type: ignore[method-assign]

    @staticmethod
    def _unlocked(method: Callable[..., Any]) -> Callable[..., Awaitable[dict[str, Any]]]:
        async def call(*args: Any, **kwargs: Any) -> Any:
            return await ensure_async(method(*args, **kwargs))

        return call

    async def _save_in_turn(self, model: dict[str, Any], path: str, *args: Any, **kw: Any) -> Any:
        async with self.turn(path):
            return await self.save(model, path, *args, **kw)

    async def _get_in_turn(self, path: str, *args: Any, **kwargs: Any) -> Any:
        """A read waits for the file's turn `read_wait_s` at most: a save that hangs (a stuck
        file system) does not hang every reader of the file with it."""
        async with self.turn(path, wait_s=self.read_wait_s):
            return await self.get(path, *args, **kwargs)

    @asynccontextmanager
    async def turn(self, path: str, wait_s: float | None = None) -> AsyncIterator[None]:
        """The file's turn, whichever way its path is spelled; or, after `wait_s` seconds
        without it, none."""
        key = self._key(path)
        if key in self._held.get():
            yield
            return
        self._holders[key] += 1
        lock = self._locks.setdefault(key, asyncio.Lock())
        acquired = False
        try:
            with anyio.move_on_after(wait_s):
                await lock.acquire()
                acquired = True
            if not acquired:  # waited `wait_s` out: goes on without the turn
                yield
                return
            token = self._held.set(self._held.get() | {key})
            try:
                yield
            finally:
                self._held.reset(token)
                lock.release()
        finally:
            self._holders[key] -= 1
            if not self._holders[key]:
                del self._holders[key], self._locks[key]

    def _key(self, path: str) -> str:
        """The file's one spelling; as written, for a path that is none (outside the root)."""
        try:
            return real_api_path(self.contents, path)
        except ValueError:
            return path.strip("/")
