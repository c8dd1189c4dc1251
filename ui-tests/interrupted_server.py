"""The server of the UI tests' `interrupted` project: JupyterLab on a notebook whose run a killed
server left, as a person finds it after an out-of-memory kill or a hub's cull.

A first server (port 8893) starts the run, on the `ui-interrupted` recording: its first cell
sleeps in the kernel, and the server is killed (SIGKILL) meanwhile. The same root and run store
are then served on port 8892, by this process, for the tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import nbformat

HERE = Path(__file__).parent
FIRST, PORT = 8893, 8892
NOTEBOOK = "interrupted.ipynb"


def call(port: int, method: str, path: str, body: object = None) -> dict:
    request = urllib.request.Request(
        f"http://localhost:{port}/{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def until(what: str, check: object, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if check():  # type: ignore[operator]
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"interrupted_server.py: {what} did not happen in {seconds:g} s")
        time.sleep(0.2)


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="galata-interrupted-"))
    store = Path(tempfile.mkdtemp(prefix="galata-interrupted-store-")) / "runs.sqlite"
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("base = 40", id="person-1")]
    notebook.metadata.kernelspec = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(notebook, root / NOTEBOOK)
    server = [
        "jupyter",
        "lab",
        "--config",
        str(HERE / "jupyter_server_test_config.py"),
        f"--ServerApp.root_dir={root}",
        f"--NotebookAgent.store_path={store}",
    ]
    first = subprocess.Popen([*server, f"--ServerApp.port={FIRST}"], cwd=HERE)
    try:
        until("the first server's start", lambda: call(FIRST, "GET", "api/status"))
        body = {"path": NOTEBOOK, "prompt": "Add 2 to base", "model": "ui-interrupted"}
        run = call(FIRST, "POST", "notebook-agent/runs", body)

        def sleeping() -> bool:
            written = nbformat.read(root / NOTEBOOK, as_version=4)
            executing = call(FIRST, "GET", f"notebook-agent/runs/{run['id']}")["cells"]
            return len(written.cells) == 2 and bool(executing)

        until("the run's first cell", sleeping)
        time.sleep(1)  # its execution under way
    finally:
        first.kill()
        first.wait()
    os.execvp(server[0], [*server, f"--ServerApp.port={PORT}"])


if __name__ == "__main__":
    main()
