"""The server's write path: a run's cells into its notebook file, through the ContentsManager,
whenever no frontend has the notebook open to apply them itself.

Exactly one writer at any moment: while a frontend that applies the run's events is subscribed,
this writer stands aside; when the last one goes, it takes over and carries every cell of the
run into the file. Like the frontend, it knows the run's cells from the run's events alone,
applied to its own copy of the notebook by the same placement rule. Writes are coalesced, so a
cell streaming token by token is not a file write per token, and each write re-reads the file
and merges by cell id, so that what the person saved meanwhile is kept.
"""

from __future__ import annotations

import asyncio
import copy
import logging

import nbformat
from jupyter_core.utils import ensure_async
from jupyter_server.services.contents.manager import ContentsManager

from ..agent.events import Event, is_snapshot
from ..agent.run import RunRecord
from ..notebook.document import METADATA_KEY, upgraded
from ..notebook.merge import merge_run_cells
from ..notebook.run_events import apply_event
from .contents import OutsideRoot, SerialSaves, real_api_path

#: Event types that change what the file should hold.
CHANGES = {
    "cell_proposed",
    "cell_source_delta",
    "cell_edited",
    "cell_moved",
    "cell_outputs",
    "cell_accepted",
    "cell_rejected",
    "cell_restored",
    "run_started",
    "run_finished",
}


class NotebookWriter:
    def __init__(
        self,
        contents: ContentsManager,
        saves: SerialSaves,
        path: str,
        started_from: nbformat.NotebookNode,
        run_record: RunRecord,
        *,
        delay_s: float = 0.5,
        frontend_grace_s: float | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        """`started_from`: the notebook as the run read it (the events say the rest).
        `frontend_grace_s`: a frontend said it will write (it started the run with the
        notebook open); the server holds off that long for it to subscribe."""
        self.contents, self.saves, self.path = contents, saves, path
        self.notebook = _outline(started_from, run_record.run_id)
        """The notebook as the run's events made it: the run's cells whole, the others by id
        alone, which is all that places the run's cells among them."""
        self.run_record = run_record
        """The run's entry in the notebook's metadata."""
        self.delay_s = delay_s
        self.log = log or logging.getLogger(__name__)
        self.frontends = 0
        self.written: set[str] = set()
        self.removed: set[str] = set()
        self._dirty = False
        self._checkpointed = False
        self._pending: asyncio.TimerHandle | None = None
        self._lock = asyncio.Lock()
        self._reserved: asyncio.TimerHandle | None = None
        if frontend_grace_s is not None:
            self.frontends = 1
            loop = asyncio.get_running_loop()
            self._reserved = loop.call_later(frontend_grace_s, self.frontend_detached)

    def __call__(self, event: Event) -> None:
        """An event listener: notes which cells changed and schedules a write."""
        kind = event["type"]
        if kind not in CHANGES or is_snapshot(event):
            return  # a running cell's outputs reach the file once it ends
        apply_event(self.notebook, event)
        if cell_id := event.get("cell_id"):
            if kind == "cell_rejected":
                self.written.discard(cell_id)
                self.removed.add(cell_id)
            else:
                self.removed.discard(cell_id)  # a rejection undone
                self.written.add(cell_id)
        self._dirty = True
        if self.frontends == 0 and self._pending is None:
            self._pending = asyncio.get_running_loop().call_later(self.delay_s, self._write_soon)

    def frontend_attached(self) -> None:
        if self._reserved:  # the frontend that was expected: its place was kept
            self._reserved.cancel()
            self._reserved = None
            return
        self.frontends += 1

    def frontend_detached(self, handed_over: bool = False) -> None:
        """The last frontend gone, the server carries everything the run wrote into the file;
        unless that frontend `handed_over`: the finished run is in a notebook it keeps open,
        which a write here would only make ask the person which version to keep."""
        self._reserved = None
        self.frontends -= 1
        if self.frontends == 0 and not handed_over:
            self._dirty = True
            self._write_soon()

    def _write_soon(self) -> None:
        self._pending = None
        task = asyncio.ensure_future(self.flush())
        task.add_done_callback(self._report)

    def _report(self, task: asyncio.Future[None]) -> None:
        if not task.cancelled() and (error := task.exception()):
            self.log.error("Could not write the agent's cells into %s: %s", self.path, error)

    async def flush(self) -> None:
        """Writes now what is pending, unless a frontend does the writing."""
        if self._pending:
            self._pending.cancel()
            self._pending = None
        async with self._lock:
            if not self._dirty or self.frontends:
                return
            self._dirty = False
            try:
                await self._merge_and_save()
            except BaseException:
                self._dirty = True  # still to be written: the run's last flush says why not
                raise

    async def _merge_and_save(self) -> None:
        """Re-reads the file and saves it with the run's cells merged in, in the file's turn, so
        that no save of the person's falls in between; never through a symlink that now leads
        outside the root (code in the kernel can make one)."""
        async with self.saves.turn(self.path):
            if real_api_path(self.contents, self.path) != self.path:
                raise OutsideRoot(f"{self.path} is now a link to another file; not written")
            model = await self.saves.get(self.path, content=True, type="notebook")
            on_disk = upgraded(nbformat.from_dict(model["content"]))
            if not self._checkpointed:
                await ensure_async(self.contents.create_checkpoint(self.path))
                self._checkpointed = True
            record = self.run_record.to_json()
            merge_run_cells(on_disk, self.notebook, self.written, self.removed, record)
            nbformat.validate(on_disk)
            content = {"type": "notebook", "format": "json", "content": on_disk}
            await self.saves.save(content, self.path)


def _outline(notebook: nbformat.NotebookNode, run_id: str) -> nbformat.NotebookNode:
    """A copy of the notebook with the cells of run `run_id` whole and the others by their
    ids: a run kept after it finished then holds no second copy of the person's outputs."""
    cells = [
        copy.deepcopy(cell)
        if cell.metadata.get(METADATA_KEY, {}).get("run_id") == run_id
        else nbformat.NotebookNode(id=cell.get("id"))
        for cell in notebook.cells
    ]
    return nbformat.NotebookNode(cells=cells)
