"""bench/tasks.py, the task suite's runner, end to end on the smoke tasks: replayed models through
the command line and the sandbox kernel, the checker's verdict on each line, the summary, the
results file and a run that goes on from it; and the endpoint a peer is given, which counts."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.request import Request, urlopen

import pytest

from jupyter_notebook_agent.llm.llama_cpp import LlamaCppOptions
from jupyter_notebook_agent.sandbox.image import ensure_image

from .conftest import RECORDINGS

sys.path.insert(0, str(Path(__file__).parents[1] / "bench"))

from peers.endpoint import Meter, metered

BENCH = Path(__file__).parents[1] / "bench"

SOLVES = f"replay:{RECORDINGS / 'task_runner_solves.json'}"
"""Solves count-sales-rows in two steps, 1920 + 85 tokens; any other task, it fails."""
GIVES_UP = f"replay:{RECORDINGS / 'task_runner_gives_up.json'}"
"""Prints hello and gives up."""


@pytest.fixture(scope="session")
def sandbox_image() -> str:
    """The kernel image, built once if this machine does not have it yet."""
    return ensure_image()


def run_suite(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH / "tasks.py"), "--workdir", str(tmp_path / "run"), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_solved_task_is_one_line_and_the_last_line_sums_up(sandbox_image, tmp_path):
    done = run_suite(tmp_path, "--model", SOLVES, "--tasks", "count-sales-rows")
    assert done.returncode == 0, done.stderr
    line, last = done.stdout.splitlines()
    assert re.fullmatch(
        r"\[1/1\] ours count-sales-rows  solved +2 steps +2005 tokens \(1920\+85\) +[\d.]+ s", line
    )
    summary = json.loads(last)
    assert summary | {"median_wall_s": 0} == {
        "model": SOLVES,
        "solved": 1,
        "total": 1,
        "solve_rate": 1.0,
        "median_steps": 2,
        "median_tokens": 2005,
        "median_wall_s": 0,
        "by_topic": {"loading": {"solved": 1, "total": 1}},
        "unsolved": [],
    }
    [record] = records(tmp_path / "run" / "results.jsonl")
    assert record["solved"] and record["outcome"] == "completed"
    assert (tmp_path / "run" / "ours" / "count-sales-rows" / "count-sales-rows.ipynb").is_file()


def test_unsolved_tasks_say_why_and_a_results_file_resumes(sandbox_image, tmp_path):
    results = tmp_path / "results.jsonl"
    both = "count-sales-rows,mean-item-price"
    first = run_suite(tmp_path, "--model", GIVES_UP, "--tasks", both, "--parallel", "2",
                      "--results", str(results))  # fmt: skip
    assert first.returncode == 0, first.stderr
    *lines, last = first.stdout.splitlines()
    assert sorted(line.split()[2] for line in lines) == ["count-sales-rows", "mean-item-price"]
    for line in lines:
        assert " unsolved " in line and "[gave_up]" in line
    assert any("the number of rows" in line for line in lines)  # the checker's reason
    assert json.loads(last)["solved"] == 0

    second = run_suite(tmp_path, "--model", GIVES_UP, "--smoke", "--results", str(results))
    assert second.returncode == 0, second.stderr
    assert "ours: 2 of 3 tasks are in the results" in second.stderr
    line, last = second.stdout.splitlines()
    assert line.startswith("[1/1] ours total-order-amount  unsolved")
    summary = json.loads(last)
    assert (summary["solved"], summary["total"], summary["median_steps"]) == (0, 3, 2)
    assert summary["unsolved"] == ["count-sales-rows", "mean-item-price", "total-order-amount"]
    assert [r["task"] for r in records(results)][-1] == "total-order-amount"
    assert len(records(results)) == 3


def test_the_reference_solutions_run_through_the_same_harness(sandbox_image, tmp_path):
    done = run_suite(tmp_path, "--reference", "--tasks", "mean-item-price")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("[1/1] reference mean-item-price  solved")
    assert json.loads(done.stdout.splitlines()[-1])["model"] == "reference"


def test_a_model_that_cannot_load_stops_the_suite_and_records_nothing(tmp_path):
    done = run_suite(tmp_path, "--model", "replay:no-such.json", "--smoke")
    assert done.returncode == 2
    assert "the command line refused to run" in done.stderr
    assert "no recording at no-such.json" in done.stderr
    assert not (tmp_path / "run" / "results.jsonl").exists()


def test_a_results_file_of_another_model_is_not_resumed(tmp_path):
    results = tmp_path / "results.jsonl"
    record = {"agent": "ours", "model": "other", "task": "count-sales-rows", "topic": "loading",
              "solved": True, "reason": "", "outcome": "completed", "steps": 2,
              "prompt_tokens": 0, "completion_tokens": 0, "wall_s": 1.0}  # fmt: skip
    results.write_text(json.dumps(record) + "\n")
    done = run_suite(tmp_path, "--model", SOLVES, "--smoke", "--results", str(results))
    assert done.returncode == 1
    assert "with the model other" in done.stderr


class Upstream(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint that answers every request alike, keeping what it got."""

    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        Upstream.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        answer = json.dumps({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3}})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(answer.encode())

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Upstream.received = []
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()
    server.server_close()


def post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_the_peers_endpoint_counts_each_task_and_asks_the_local_server_as_it_takes_it(upstream):
    schema = {"type": "object", "properties": {"type": {"type": "string"}}}
    structured = {
        "model": "m",
        "messages": [],
        "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}},
    }
    with metered(upstream, "none", LlamaCppOptions(max_tokens=99)) as endpoint:
        answer = post(f"{endpoint.url('task-a')}/chat/completions", structured)
        post(f"{endpoint.url('task-a')}/chat/completions", {"model": "m", "messages": []})
        post(f"{endpoint.url('task-b')}/chat/completions", structured)
    assert answer["usage"] == {"prompt_tokens": 7, "completion_tokens": 3}
    assert Upstream.received[0]["response_format"] == {"type": "json_object", "schema": schema}
    assert Upstream.received[0]["max_tokens"] == 99
    assert "response_format" not in Upstream.received[1]
    assert endpoint.meters == {"task-a": Meter(1, 14, 6), "task-b": Meter(1, 7, 3)}
