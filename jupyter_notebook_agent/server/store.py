"""The run store: runs, their events, each notebook's conversation and the MCP tools the person
allowed always on it, in one SQLite file, so that they outlive the server (a restart, a kill, a
culled server).

One thread owns the connection and does every read and write, a batch of writes in one
transaction: the event loop never waits on the disk, and a run waits only where it must (its
events are durable before its next tool call). WAL mode and a busy timeout let two servers share
a file (a hub with shared home folders). A file that cannot be used (corrupt, from a newer
version, locked, on a full disk) leaves the server working with runs in memory; `state` says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import queue
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from ..sandbox.lending import alive

#: The layout this code writes; a file of a later one belongs to a newer server.
VERSION = 1
#: How long a write waits for another server's transaction before the store gives up.
BUSY_TIMEOUT_S = 10.0
#: How long the store's thread gathers writes nobody waits for (a run's events) into one
#: transaction: fewer commits, and fewer turns of the GIL taken from the event loop.
LINGER_S = 0.02
#: Names this process as the owner of its active runs, so that a later one can tell orphans.
OWNER = f"{socket.gethostname()}:{os.getpid()}"
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, notebook TEXT NOT NULL, created REAL NOT NULL, state TEXT NOT NULL,
    owner TEXT NOT NULL, run TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS runs_by_notebook ON runs (notebook, created);
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL, seq INTEGER NOT NULL, event TEXT NOT NULL, PRIMARY KEY (run_id, seq));
CREATE TABLE IF NOT EXISTS conversations (
    notebook TEXT PRIMARY KEY, conversation TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS allowed_tools (
    notebook TEXT NOT NULL, tool TEXT NOT NULL, PRIMARY KEY (notebook, tool));
"""

T = TypeVar("T")
Work = Callable[[sqlite3.Connection], Any]
Item = tuple[Work, "Future[Any] | None"]
"""A change, and the future of whoever waits for it (None: nobody does)."""
log = logging.getLogger(__name__)


class StoreUnusable(Exception):
    """The file cannot serve as the store; the message says why and what was done with it."""


class RunStore:
    """The store at `path`, or none (`path` None: runs live in memory alone). A notebook is
    known by its file's absolute path (`notebook`): servers of other roots share the file."""

    def __init__(
        self,
        path: Path | None,
        *,
        runs_kept_per_notebook: int = 200,
        max_bytes: int = 1 << 30,
        busy_timeout_s: float = BUSY_TIMEOUT_S,
    ) -> None:
        self.path = path
        self.runs_kept_per_notebook = runs_kept_per_notebook
        self.max_bytes = max_bytes
        """What the stored data may take; past it the oldest finished runs go, whatever their
        notebook."""
        self.busy_timeout_s = busy_timeout_s
        """How long a write waits for another server's transaction before it fails."""
        self.state = "off: runs are kept in memory only" if path is None else "opening"
        self._queue: queue.SimpleQueue[Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._failed = False
        """Whether a write failed yet: the log says it the first time only."""
        self.interrupted: list[tuple[str, str]] = []
        """(run id, notebook file) of the runs an earlier server left active, marked
        interrupted when this one opened."""

    @property
    def usable(self) -> bool:
        return self._thread is not None

    def open(self) -> None:
        """Opens (or makes) the file and marks the runs of servers that are gone interrupted.
        Never raises: a file that cannot be used leaves the store off, and says so once."""
        if self.path is None:
            return
        try:
            connection = _connect(self.path, self.busy_timeout_s)
        except StoreUnusable as error:
            self.state = f"not used: {error}; runs are kept in memory only"
            log.warning("The run store %s is %s", self.path, self.state)
            return
        self.state = f"ok: {self.path}"
        self._thread = threading.Thread(
            target=self._serve, args=(connection,), name="run-store", daemon=True
        )
        self._thread.start()
        try:
            self.interrupted = self._call(_interrupt_orphans).result(self.busy_timeout_s + 5)
        except Exception as error:  # its runs stay as they were; writes may still work
            log.warning("The run store %s could not mark interrupted runs: %s", self.path, error)

    def close(self) -> None:
        """Writes what is queued, then closes the file; a write stuck behind another server's
        lock does not hold the server's shutdown past the busy timeout."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(self.busy_timeout_s + 5)
            if self._thread.is_alive():
                log.warning("The run store %s did not close in time", self.path)
            self._thread = None

    # Writes: queued, in order, each batch one transaction.

    def save_run(self, notebook: str, run: dict[str, Any], state: str) -> None:
        """The run's JSON as `GET runs/{id}` answers it, with its state."""
        kept = self.runs_kept_per_notebook
        self._submit(lambda db: _save_run(db, notebook, run, state, kept))
        if state != "running":  # what it keeps grew for good: the store's size is checked
            self._submit(self._prune)

    def append_event(self, run_id: str, event: dict[str, Any]) -> None:
        text = json.dumps(event)
        self._submit(
            lambda db: db.execute(
                "INSERT OR REPLACE INTO events VALUES (?, ?, ?)", (run_id, event["seq"], text)
            )
        )

    def save_conversation(self, notebook: str, conversation: dict[str, Any]) -> None:
        text = json.dumps(conversation)
        self._submit(
            lambda db: db.execute(
                "INSERT OR REPLACE INTO conversations VALUES (?, ?)", (notebook, text)
            )
        )

    def allow_tool(self, notebook: str, tool: str) -> None:
        """An MCP tool (`{server}__{tool}`) the person allowed always on the notebook."""
        self._submit(
            lambda db: db.execute(
                "INSERT OR IGNORE INTO allowed_tools VALUES (?, ?)", (notebook, tool)
            )
        )

    def forbid_tool(self, notebook: str, tool: str) -> None:
        """The person takes back an "always" on the tool: its calls on the notebook ask again."""
        self._submit(
            lambda db: db.execute(
                "DELETE FROM allowed_tools WHERE notebook = ? AND tool = ?", (notebook, tool)
            )
        )

    def rename(self, old: str, new: str, old_path: str, new_path: str) -> None:
        """A notebook, or a folder of them, moved from `old` to `new` (files; `old_path` to
        `new_path` as the API says them): its runs and thread go with it."""
        self._submit(lambda db: _rename(db, old, new, old_path, new_path))

    async def flush(self) -> None:
        """Returns once every write queued before is on disk, or failed: a failing store
        (locked too long, a full disk) says so in its `state` and in the log, once."""
        if self.usable:
            with contextlib.suppress(sqlite3.Error):
                await asyncio.wrap_future(self._call(lambda db: None))

    # Reads: answered by the store's thread, after the writes queued before them.

    async def runs(self, notebook: str | None, under: str = "") -> list[dict[str, Any]]:
        """The stored runs of a notebook, or of every notebook in the folder `under`, oldest
        first."""
        query = "SELECT run, state FROM runs WHERE notebook = ? ORDER BY created"
        args: tuple[Any, ...] = (notebook,)
        if notebook is None:
            query = "SELECT run, state FROM runs WHERE substr(notebook, 1, ?) = ? ORDER BY created"
            args = (len(under), under)
        rows = await self._read(lambda db: db.execute(query, args).fetchall(), [])
        return [json.loads(run) | {"state": state} for run, state in rows]

    async def run(self, run_id: str) -> dict[str, Any] | None:
        sql = "SELECT run, state FROM runs WHERE id = ?"
        row = await self._read(lambda db: db.execute(sql, (run_id,)).fetchone(), None)
        return None if row is None else json.loads(row[0]) | {"state": row[1]}

    async def notebook_of(self, run_id: str) -> str | None:
        """The file of the run's notebook."""
        sql = "SELECT notebook FROM runs WHERE id = ?"
        row = await self._read(lambda db: db.execute(sql, (run_id,)).fetchone(), None)
        return None if row is None else row[0]

    async def events(self, run_id: str, first: int) -> list[dict[str, Any]]:
        sql = "SELECT event FROM events WHERE run_id = ? AND seq >= ? ORDER BY seq"
        rows = await self._read(lambda db: db.execute(sql, (run_id, first)).fetchall(), [])
        return [json.loads(event) for (event,) in rows]

    async def conversation(self, notebook: str) -> dict[str, Any] | None:
        sql = "SELECT conversation FROM conversations WHERE notebook = ?"
        row = await self._read(lambda db: db.execute(sql, (notebook,)).fetchone(), None)
        return None if row is None else json.loads(row[0])

    async def allowed_tools(self, notebook: str) -> set[str]:
        sql = "SELECT tool FROM allowed_tools WHERE notebook = ?"
        rows = await self._read(lambda db: db.execute(sql, (notebook,)).fetchall(), [])
        return {tool for (tool,) in rows}

    async def _read(self, work: Callable[[sqlite3.Connection], T], default: T) -> T:
        if not self.usable:
            return default
        return await asyncio.wrap_future(self._call(work))

    def _submit(self, work: Work) -> None:
        if self.usable:
            self._queue.put((work, None))

    def _call(self, work: Work) -> Future[Any]:
        done: Future[Any] = Future()
        self._queue.put((work, done))
        return done

    def _serve(self, db: sqlite3.Connection) -> None:
        """The store's thread: takes what is queued, does it in one transaction, answers.
        Nothing an item does ends it: a wait that was cancelled (a stopped run's) is skipped,
        and an item that fails fails alone."""
        closing = False
        while not closing:
            batch = self._gather()
            closing = None in batch
            work = [
                item
                for item in batch
                if item is not None and (item[1] is None or item[1].set_running_or_notify_cancel())
            ]
            results = self._transact(db, work)
            for (_, done), result in zip(work, results, strict=True):
                if done is None:
                    continue
                if isinstance(result, BaseException):
                    done.set_exception(result)
                else:
                    done.set_result(result)
        db.close()

    def _gather(self) -> list[Item | None]:
        """The next batch: what is queued, and what comes within LINGER_S while nobody
        waits (a flush, a read, or the close ends the wait)."""
        batch = [self._queue.get()]
        deadline = time.monotonic() + LINGER_S
        while (last := batch[-1]) is not None and last[1] is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(self._queue.get(timeout=remaining))
            except queue.Empty:
                break
        while not self._queue.empty():
            batch.append(self._queue.get())
        return batch

    def _prune(self, db: sqlite3.Connection) -> None:
        """Past `max_bytes` of data, the oldest finished runs go, with their events, down to
        nine tenths of it (so that the next runs do not prune again at once). Each notebook
        keeps its newest finished run whatever the size: what cannot go (threads, working runs)
        may fill the budget alone. A change queued after each run's end, committed with its
        batch."""
        page_size = db.execute("PRAGMA page_size").fetchone()[0]

        def used() -> int:
            pages = db.execute("PRAGMA page_count").fetchone()[0]
            return (pages - db.execute("PRAGMA freelist_count").fetchone()[0]) * page_size

        if used() <= self.max_bytes:
            return
        dropped = 0
        while used() > self.max_bytes * 0.9:
            oldest = db.execute(
                "SELECT id FROM runs AS run WHERE state != 'running' AND created < ("
                "  SELECT MAX(created) FROM runs WHERE notebook = run.notebook"
                "  AND state != 'running') ORDER BY created LIMIT 10"
            ).fetchall()
            if not oldest:
                break
            for (run_id,) in oldest:
                db.execute("DELETE FROM events WHERE run_id = ?", (run_id,))
                db.execute("DELETE FROM runs WHERE id = ?", (run_id,))
            dropped += len(oldest)
        log.info("The run store dropped its %d oldest runs to keep within its size", dropped)

    def _transact(self, db: sqlite3.Connection, work: list[Item]) -> list:
        """Each item's result, or its error, each item in a savepoint of its own; a batch that
        cannot be committed (a full disk, a lock held too long) fails each of its items, and
        `state` says so until a batch that changes something is committed."""
        results: list[Any] = []
        changes = db.total_changes
        try:
            db.execute("BEGIN IMMEDIATE")
            for task, _ in work:
                db.execute("SAVEPOINT item")
                try:
                    results.append(task(db))
                except Exception as error:
                    db.execute("ROLLBACK TO item")
                    log.warning("The run store could not do one change: %s", error)
                    results.append(error)
                db.execute("RELEASE item")
            db.execute("COMMIT")
        except sqlite3.Error as error:
            if db.in_transaction:
                db.execute("ROLLBACK")
            if not self._failed:  # once: a disk that is nearly full fails some writes only
                log.error(
                    "The run store %s fails to write, and runs go on in memory; `GET status` "
                    "says when it writes again: %s",
                    self.path,
                    error,
                )
            self._failed = True
            self.state = f"failing: {error}"
            return [error] * len(work)
        if self.state.startswith("failing") and db.total_changes > changes:
            self.state = f"ok: {self.path}"
        return results


def _connect(path: Path, busy_timeout_s: float) -> sqlite3.Connection:
    """The store's connection, its tables made; StoreUnusable for a file of a newer version
    (left as it is) or not a database (moved aside, and a fresh one made)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return _prepared(path, busy_timeout_s)
    except sqlite3.DatabaseError as error:
        if getattr(error, "sqlite_errorname", "") not in ("SQLITE_NOTADB", "SQLITE_CORRUPT"):
            raise StoreUnusable(str(error)) from None  # locked, read-only, newer: left as it is
        aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        try:
            path.rename(aside)
            for suffix in ("-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            connection = _prepared(path, busy_timeout_s)
        except (OSError, sqlite3.Error) as second:
            raise StoreUnusable(f"unreadable ({error}), and no new one: {second}") from None
        log.warning("The run store %s was unreadable (%s); it was moved to %s", path, error, aside)
        return connection
    except OSError as error:
        raise StoreUnusable(str(error)) from None


def _prepared(path: Path, busy_timeout_s: float) -> sqlite3.Connection:
    db = sqlite3.connect(
        path, timeout=busy_timeout_s, check_same_thread=False, isolation_level=None
    )
    try:
        db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > VERSION:
            raise sqlite3.DatabaseError(f"written by a newer server (layout {version})")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.executescript(f"BEGIN; {SCHEMA} PRAGMA user_version = {VERSION}; COMMIT;")
    except BaseException:
        db.close()
        raise
    return db


def _interrupt_orphans(db: sqlite3.Connection) -> list[tuple[str, str]]:
    """Marks interrupted the active runs of servers of this machine that are gone, and ends
    their event logs with a run_finished that says so: every client replaying them sees them
    end. A server on another machine is left alone: nothing here can tell it is gone."""
    orphans = []
    for run_id, notebook, owner, run in db.execute(
        "SELECT id, notebook, owner, run FROM runs WHERE state = 'running'"
    ).fetchall():
        host, _, pid = owner.rpartition(":")
        # One of this very owner's, found at open, is an earlier process's of the same pid (a
        # container started again): this one has run nothing yet.
        gone = owner == OWNER or not (pid.isdigit() and alive(int(pid)))
        if host != socket.gethostname() or not gone:
            continue
        (last,) = db.execute("SELECT MAX(seq) FROM events WHERE run_id = ?", (run_id,)).fetchone()
        summary = "The server stopped while this run was working; its cells are kept."
        finished = {
            "seq": 0 if last is None else last + 1,
            "type": "run_finished",
            "success": False,
            "reason": "interrupted",
            "summary": summary,
        }
        outcome = {"success": False, "reason": "interrupted", "summary": summary}
        record = json.loads(run) | {
            "state": "interrupted",
            "outcome": outcome,
            "events": finished["seq"] + 1,
        }
        event = (run_id, finished["seq"], json.dumps(finished))
        db.execute("INSERT INTO events VALUES (?, ?, ?)", event)
        db.execute(
            "UPDATE runs SET state = 'interrupted', run = ? WHERE id = ?",
            (json.dumps(record), run_id),
        )
        orphans.append((run_id, notebook))
    return orphans


def _rename(db: sqlite3.Connection, old: str, new: str, old_path: str, new_path: str) -> None:
    moved = "(notebook = ?1 OR substr(notebook, 1, length(?1) + 1) = ?1 || '/')"
    path = "json_extract(run, '$.path')"
    db.execute(
        f"UPDATE runs SET notebook = ?2 || substr(notebook, length(?1) + 1), run = CASE "
        f"WHEN {path} = ?3 OR substr({path}, 1, length(?3) + 1) = ?3 || '/' "
        f"THEN json_set(run, '$.path', ?4 || substr({path}, length(?3) + 1)) ELSE run END "
        f"WHERE {moved}",
        (old, new, old_path, new_path),
    )
    for table in ("conversations", "allowed_tools"):
        db.execute(
            f"UPDATE OR REPLACE {table} SET notebook = ?2 || substr(notebook, length(?1) + 1) "
            f"WHERE {moved}",
            (old, new),
        )


def _save_run(
    db: sqlite3.Connection, notebook: str, run: dict[str, Any], state: str, kept: int
) -> None:
    db.execute(
        "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?)",
        (run["id"], notebook, run["created"], state, OWNER, json.dumps(run)),
    )
    stale = db.execute(
        "SELECT id FROM runs WHERE notebook = ? AND state != 'running' ORDER BY created DESC "
        "LIMIT -1 OFFSET ?",
        (notebook, kept),
    ).fetchall()
    for (run_id,) in stale:
        db.execute("DELETE FROM events WHERE run_id = ?", (run_id,))
        db.execute("DELETE FROM runs WHERE id = ?", (run_id,))
