"""A streamed cell on screen: a model's token to its text in the notebook cell's editor.

JupyterLab runs as a subprocess with the extension; the replay model server runs in a thread of
this process and stamps each token as it sends it. A Node script (bench/ui_latency.mjs) drives
headless Chromium through Playwright: it opens a new notebook, asks the agent for a cell, and
stamps each token's text when the page's WebSocket receives it and when it appears in the cell's
editor. All stamps are wall-clock milliseconds, comparable across processes on one machine.
The model's one tool call is add_cell with a source of LINES unique lines, each exactly one
16-character argument chunk, streamed at CHUNKS_PER_S. After a warm-up round, ROUNDS rounds.

token_to_screen_ms_p50: token sent by the model to its text in the cell's editor's DOM, seen by
a MutationObserver (target <= 50).
token_to_screen_ms_p99: the same, 99th percentile.
token_to_paint_ms_p50: token sent to the start of the animation frame after that DOM change,
the frame that paints it.
token_to_frame_ms_p50: the same-run baseline, token sent to the WebSocket frame that carries it
received by the page, stamped by a listener of its own on the socket (p99 too).
token_to_frame_playwright_ms_p50: the same frame as Playwright reports it to Node: later, by
the hop from the browser to Node, so no baseline for what the page shows.
screen_over_frame_ratio: token_to_screen_ms_p50 over token_to_frame_ms_p50.
tokens_sent, tokens_on_screen, tokens_in_frames: the counts timed.
The last line printed is one JSON object of the figures.
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import nbformat
from serving import (
    API_KEY,
    TOKEN,
    free_port,
    percentile,
    running,
    sends_stamped,
    start_jupyter,
    summary,
    wait_ready,
)

from jupyter_notebook_agent.llm.base import ModelTurn, ToolCall
from jupyter_notebook_agent.llm.replay import ARGUMENT_CHUNK
from jupyter_notebook_agent.testing.replay_server import (
    ReplayScript,
    ReplayServerThread,
)

LINES = 150
CHUNKS_PER_S = 30.0
ROUNDS = 3
TTFT_S = 1.0
"""Long enough for the panel to have subscribed before the first token is sent."""
MODEL = "bench-ui"
PROMPT = "Write the cell."
TAG = re.compile(rb"bench-ui-\d+")
MARKER = re.compile(r"v(\d{3}) = 1\d{6}")
HERE = Path(__file__).resolve().parent

SENT: dict[tuple[str, str], float] = {}
"""When each marker was sent: (the tag in its run's prompt, the marker) -> ms since the epoch."""


def sent_markers(delta: dict[str, Any]) -> list[str]:
    """The source lines a chunk of the add_cell call's arguments carries."""
    calls = delta.get("tool_calls") or []
    arguments = calls[0]["function"].get("arguments", "") if calls else ""
    return [found.group() for found in MARKER.finditer(arguments)]


def arguments() -> str:
    """add_cell's arguments, laid out so that each 16-character chunk after the prefix is one
    whole line of the source, `v017 = 1000017` and its escaped newline."""
    lines = "".join(f"v{i:03d} = {1_000_000 + i}\\n" for i in range(LINES))
    prefix = '{"cell_type": "code", "source": "'
    prefix = "{" + " " * (-len(prefix) % ARGUMENT_CHUNK) + prefix[1:]
    text = prefix + lines + '"}'
    for start in range(len(prefix), len(prefix) + len(lines), ARGUMENT_CHUNK):
        chunk = text[start : start + ARGUMENT_CHUNK]
        assert MARKER.fullmatch(chunk.removesuffix("\\n")), chunk
    assert json.loads(text)["source"].count("\n") == LINES
    return text


def script() -> ReplayScript:
    """Turn 1 streams the add_cell call at CHUNKS_PER_S; turn 2 ends the run."""
    text = arguments()
    deltas = 1 + -(-len(text) // ARGUMENT_CHUNK)  # the call's name, then its argument chunks
    cell = ModelTurn(
        tool_calls=[ToolCall("c1", "add_cell", text)],
        ttft_s=TTFT_S,
        duration_s=TTFT_S + (deltas - 1) / CHUNKS_PER_S,
    )
    done = ModelTurn(
        tool_calls=[ToolCall("c2", "complete_task", '{"success": true, "summary": "ok"}')]
    )
    return ReplayScript(turns=[cell, done], model=MODEL, speed=1, api_key=API_KEY)


def browse(url: str, notebooks: list[str]) -> list[dict[str, Any]]:
    """Runs the Node script over the notebooks, one round each; round i's tag is bench-ui-i."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not on PATH")
    command = [node, str(HERE / "ui_latency.mjs"), url, TOKEN, PROMPT, *notebooks]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=120 + 60 * len(notebooks)
    )
    if done.returncode != 0:
        raise RuntimeError(f"the browser script failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])["rounds"]


def latencies(tag: str, stamps: dict[str, float]) -> list[float]:
    return [
        stamps[marker] - sent for (t, marker), sent in SENT.items() if t == tag and marker in stamps
    ]


def main() -> dict[str, float]:
    figures: dict[str, list[float]] = {"screen": [], "paint": [], "frame": [], "playwright": []}
    with (
        tempfile.TemporaryDirectory() as tmp,
        ReplayServerThread(script()) as model,
        sends_stamped(SENT, TAG, sent_markers, lambda: time.time() * 1000),
    ):
        root = Path(tmp)
        (root / "notebooks").mkdir(exist_ok=True)
        notebooks = [f"round-{i}.ipynb" for i in range(ROUNDS + 1)]  # round 0 is the warm-up
        for name in notebooks:
            notebook = nbformat.v4.new_notebook()
            notebook.metadata["kernelspec"] = {
                "name": "python3",
                "display_name": "Python 3",
                "language": "python",
            }
            nbformat.write(notebook, root / "notebooks" / name)
        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        lab = start_jupyter(
            "jupyterlab",
            root,
            port,
            MODEL,
            model.base_url,
            "--LabApp.expose_app_in_browser=True",
            f"--LabApp.workspaces_dir={root / 'workspaces'}",
            f"--LabApp.user_settings_dir={root / 'settings'}",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        )
        with running(lab, root / "server.log"):
            wait_ready(url, lab)
            print(f"jupyter lab ready on port {port}; a warm-up round, then {ROUNDS} rounds")
            rounds = browse(url, notebooks)
    for number, measured in enumerate(rounds):
        tag = f"bench-ui-{number}"
        sent = sum(1 for t, _ in SENT if t == tag)
        each = {
            "screen": latencies(tag, measured["shown"]),
            "paint": latencies(tag, measured["painted"]),
            "frame": latencies(tag, measured["page_frames"]),
            "playwright": latencies(tag, measured["frames"]),
        }
        print(
            f"{'warm-up' if number == 0 else f'round {number}/{ROUNDS}'} "
            f"({measured['outcome'].strip()!r}): {sent} sent; "
            f"screen {summary(each['screen'])} ({len(each['screen'])}); "
            f"frame {summary(each['frame'])} ({len(each['frame'])}); "
            f"frame in node {summary(each['playwright'])}"
        )
        if number:
            for key, values in each.items():
                figures[key] += values
    screen, frame = figures["screen"], figures["frame"]
    return {
        "rounds": ROUNDS,
        "tokens_sent": sum(1 for t, _ in SENT if t != "bench-ui-0"),
        "tokens_on_screen": len(screen),
        "tokens_in_frames": len(frame),
        "token_to_screen_ms_p50": round(statistics.median(screen), 2),
        "token_to_screen_ms_p99": round(percentile(screen, 99), 2),
        "token_to_screen_ms_max": round(max(screen), 2),
        "token_to_paint_ms_p50": round(statistics.median(figures["paint"]), 2),
        "token_to_frame_ms_p50": round(statistics.median(frame), 2),
        "token_to_frame_ms_p99": round(percentile(frame, 99), 2),
        "token_to_frame_playwright_ms_p50": round(statistics.median(figures["playwright"]), 2),
        "screen_over_frame_ratio": round(statistics.median(screen) / statistics.median(frame), 3),
    }


if __name__ == "__main__":
    print(json.dumps(main()))
