"""The task suite's runner: scores the agent on the tasks of bench/tasks/, and with --peer another
agent too, on the same tasks with the same model and the same checkers.

Each task runs in a folder of its own under the run folder, holding the task's seeded data: our
side is the command line, `jupyter-notebook-agent run REQUEST -o NOTEBOOK --workdir FOLDER`, with
its code run in the sandbox kernel; then the task's checker reads the notebook and the folder.
Steps and tokens come from the run's transcript. As each task finishes, one line says how it
went and one JSON object is appended to the results file; given that file again (--results), a
run goes on where it stopped. The last line printed is one JSON object: the solve rate and the
medians of steps, tokens and wall time (with --peer: both sides', and the ratio of their rates).

    python bench/tasks.py --model llama-cpp:model.gguf --tasks 'join*,plot*' --parallel 2
    python bench/tasks.py --model llama-cpp:model.gguf --smoke --peer mito -- --n-ctx 16384
    python bench/tasks.py --reference    # each task's reference solution, through the same harness
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

from peers import mito
from peers.endpoint import Meter, Served, check_servable, serve
from tasks import TASKS, CheckFailed, Task, select

from jupyter_notebook_agent.agent import AgentConfig
from jupyter_notebook_agent.cli import build_parser
from jupyter_notebook_agent.llm.base import ModelTurn, ToolCall
from jupyter_notebook_agent.llm.llama_cpp import LlamaCppOptions
from jupyter_notebook_agent.llm.replay import save_recording

OURS, REFERENCE = "ours", "reference"
USAGE_ERROR = 2
"""The command line's exit status when it refuses its arguments (a model it cannot load, no
sandbox): no task can run, and none is recorded as unsolved."""
GRACE_S = 300
"""Beyond --time-limit, what a run of ours may take to start (a model's loading, the kernel's)
and to end, before it is stopped from outside."""


@dataclass
class Result:
    """One task's run by one agent, as the results file keeps it."""

    agent: str
    model: str
    task: str
    topic: str
    solved: bool
    reason: str
    """Why the checker found it unsolved ("" when solved)."""
    outcome: str
    """How the run ended, as the agent said (completed, max_steps, time_limit...)."""
    steps: int
    prompt_tokens: int
    completion_tokens: int
    wall_s: float

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class NotStarted(Exception):
    """A run that could not start: the whole suite stops, and says why."""


@dataclass(frozen=True)
class Settings:
    run_folder: Path
    model: str
    base_url: str | None
    max_steps: int
    time_limit: float
    agent_args: tuple[str, ...]


def main(argv: list[str] | None = None) -> int:
    # Started in the background, a process ignores Ctrl-C, and the runs it starts would too;
    # stopped with it (at their time limit, say), they save their notebook.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    args = parse_args(sys.argv[1:] if argv is None else argv)
    tasks = chosen_tasks(args.tasks, args.smoke)
    if not tasks:
        print(f"No task matches {args.tasks!r}; the tasks are: {', '.join(TASKS)}", file=sys.stderr)
        return 2
    run_folder = (args.workdir or Path(tempfile.mkdtemp(prefix="notebook-agent-tasks-"))).resolve()
    results = ResultsFile(args.results or run_folder / "results.jsonl")
    print(f"Run folder: {run_folder}\nResults: {results.path}", file=sys.stderr)
    agent, model = (REFERENCE, REFERENCE) if args.reference else (OURS, args.model)
    results.require_model(agent, model)
    if args.peer:
        results.require_model(mito.NAME, args.model)
        try:
            check_servable(args.model, args.base_url)
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        peer_bin = mito.install()
    settings = Settings(
        run_folder, model, args.base_url, args.max_steps, args.time_limit, tuple(args.agent_args)
    )
    side = partial(run_side, tasks=tasks, results=results, parallel=args.parallel)
    try:
        ours = summary(side(agent, nullcontext(partial(run_ours, settings=settings, agent=agent))))
        if not args.peer:
            print(json.dumps({"model": model, **ours}), flush=True)
            return 0
        print(rate_line(OURS, ours), flush=True)
        serving = peer_side(settings, peer_bin, local_options(settings.agent_args))
        peer = summary(side(mito.NAME, serving))
    except NotStarted as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print(f"\nInterrupted: go on with --results {results.path}", file=sys.stderr)
        return 130
    ratio = ours["solve_rate"] / peer["solve_rate"] if peer["solve_rate"] else None
    print(rate_line(mito.NAME, peer), flush=True)
    print(f"ratio (ours / {mito.NAME}): {'-' if ratio is None else f'{ratio:.2f}'}", flush=True)
    both = {"model": model, "ours": ours, "peer": {"name": mito.NAME, **peer}, "ratio": ratio}
    print(json.dumps(both), flush=True)
    return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    """What comes after `--` goes to our command line, as --agent-arg does."""
    own, extra = (
        (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    )
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", help="the model, as `jupyter-notebook-agent run --model` takes it"
    )
    parser.add_argument("--base-url", help="its OpenAI-compatible endpoint")
    parser.add_argument(
        "--tasks", metavar="PATTERNS", help="task names or topics, fnmatch-style, comma-separated"
    )
    parser.add_argument("--smoke", action="store_true", help="only the smoke tasks")
    parser.add_argument("--parallel", type=_at_least_one, default=1, help="tasks run at once")
    parser.add_argument(
        "--results", type=Path, help="results file (JSON lines); resumed if it exists"
    )
    parser.add_argument(
        "--workdir", type=Path, help="the run folder (default: a new temporary one)"
    )
    parser.add_argument("--max-steps", type=_at_least_one, default=AgentConfig.max_steps)
    parser.add_argument(
        "--time-limit", type=float, default=AgentConfig.time_limit_s, help="seconds a task may take"
    )
    parser.add_argument(
        "--agent-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="another argument for `jupyter-notebook-agent run`, e.g. --agent-arg=--seed=1",
    )
    parser.add_argument("--peer", choices=[mito.NAME], help="run this agent on the tasks too")
    parser.add_argument(
        "--reference", action="store_true", help="run each task's reference solution, no model"
    )
    args = parser.parse_args(own)
    args.agent_args = [*args.agent_arg, *extra]
    if args.reference and (args.model or args.peer):
        parser.error("--reference runs no model: it takes neither --model nor --peer")
    if not (args.reference or args.model):
        parser.error("--model is required (or --reference)")
    return args


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def chosen_tasks(patterns: str | None, smoke: bool) -> list[Task]:
    """The tasks any of the patterns selects, in the suite's order."""
    names = {task.name for pattern in (patterns or "*").split(",") for task in select(pattern)}
    return [task for task in TASKS.values() if task.name in names and (task.smoke or not smoke)]


class ResultsFile:
    """One JSON object a task, appended as each finishes, so that a run killed halfway goes on
    from it; what it holds counts in the summary as if run now."""

    def __init__(self, path: Path) -> None:
        self.path = path.resolve()
        self.results: dict[tuple[str, str], Result] = {}
        if self.path.is_file():
            for line in self.path.read_text().splitlines():
                with contextlib.suppress(ValueError):  # a line cut short by a kill
                    result = Result(**json.loads(line))
                    self.results[result.agent, result.task] = result

    def require_model(self, agent: str, model: str) -> None:
        """One model a side: a summary of results of several would mean nothing."""
        for result in self.results.values():
            if result.agent == agent and result.model != model:
                raise SystemExit(
                    f"error: {self.path} holds results of {agent} with the model {result.model}, "
                    f"not {model}: give that model, or another --results file"
                )

    def of(self, agent: str) -> dict[str, Result]:
        return {task: result for (who, task), result in self.results.items() if who == agent}

    def append(self, result: Result) -> None:
        self.results[result.agent, result.task] = result
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as file:
            file.write(json.dumps(asdict(result)) + "\n")


RunOne = Callable[[Task], Result]


def run_side(
    agent: str,
    setup: AbstractContextManager[RunOne],
    tasks: list[Task],
    results: ResultsFile,
    parallel: int,
) -> list[Result]:
    """Every task's result for one side: those in the results file, the others run now, each
    printed as it finishes; `setup` (a model server, say) is entered only when a task is run."""
    done = results.of(agent)
    todo = [task for task in tasks if task.name not in done]
    if len(todo) < len(tasks):
        print(f"{agent}: {len(tasks) - len(todo)} of {len(tasks)} tasks are in the results",
              file=sys.stderr)  # fmt: skip
    if todo:
        width = max(len(task.name) for task in todo)
        with setup as run_one, ThreadPoolExecutor(parallel) as pool:
            futures = [pool.submit(run_one, task) for task in todo]
            try:
                for number, future in enumerate(as_completed(futures), 1):
                    result = future.result()
                    results.append(result)
                    print(task_line(result, f"[{number}/{len(todo)}]", width), flush=True)
            except BaseException:  # interrupted, or a run that could not start: end them all
                pool.shutdown(wait=False, cancel_futures=True)
                processes.stop_all()
                raise
    everything = results.of(agent)
    return [everything[task.name] for task in tasks]


def run_ours(task: Task, settings: Settings, agent: str) -> Result:
    """The task done by our command line; with agent `reference`, by a recording of the task's
    reference solution, a cell a turn."""
    side = settings.run_folder / agent
    folder = fresh_folder(side / task.name)
    task.make_data(folder)
    model = settings.model
    if agent == REFERENCE:
        recording = side / f"{task.name}.recording.json"
        write_reference_recording(task, recording)
        model = f"replay:{recording}"
    notebook = folder / f"{task.name}.ipynb"
    transcript = side / f"{task.name}.transcript.jsonl"  # not among the files the agent sees
    transcript.unlink(missing_ok=True)  # an earlier, unfinished run's
    command = [
        sys.executable, "-m", "jupyter_notebook_agent.cli", "run", task.request,
        "-o", str(notebook), "--workdir", str(folder), "--transcript", str(transcript),
        "--model", model, *(["--base-url", settings.base_url] if settings.base_url else []),
        "--max-steps", str(settings.max_steps), "--time-limit", str(settings.time_limit),
        *settings.agent_args,
    ]  # fmt: skip
    ended = processes.run(
        command,
        cwd=folder,
        env=os.environ | {"COLUMNS": "160"},
        log=side / f"{task.name}.log",
        limit=settings.time_limit + GRACE_S,
    )
    if ended.returncode == USAGE_ERROR:
        raise NotStarted(f"{task.name}: the command line refused to run: {ended.last_line}")
    figures = read_transcript(transcript)
    outcome = "time_limit" if ended.timed_out else figures.outcome
    return Result(
        agent, settings.model, task.name, task.topic,
        *judge(task, notebook, folder, ended),
        outcome, figures.steps, figures.prompt_tokens, figures.completion_tokens, ended.wall_s,
    )  # fmt: skip


def write_reference_recording(task: Task, path: Path) -> None:
    """A replayable model whose turns add the reference's cells, then complete the task."""
    cells = [
        ToolCall(f"call_{n}", "add_cell", json.dumps({"cell_type": "code", "source": source}))
        for n, source in enumerate(task.reference, 1)
    ]
    done = ToolCall("call_done", "complete_task", '{"success": true, "summary": "Reference."}')
    save_recording(path, REFERENCE, [ModelTurn(tool_calls=[call]) for call in [*cells, done]])


@contextmanager
def peer_side(settings: Settings, bin_folder: Path, options: LlamaCppOptions) -> Iterator[RunOne]:
    """While the peer's tasks run: the model served to it, and what runs one task."""
    with serve(settings.model, settings.base_url, options, settings.run_folder) as served:
        yield partial(run_peer, settings=settings, bin_folder=bin_folder, served=served)


def run_peer(task: Task, settings: Settings, bin_folder: Path, served: Served) -> Result:
    """The task done by the peer, its steps and tokens as the endpoint counted them."""
    side = settings.run_folder / mito.NAME
    folder = fresh_folder(side / task.name)
    task.make_data(folder)
    notebook = folder / f"{task.name}.ipynb"
    ended = processes.run(
        mito.command(bin_folder, task.request, notebook, request_timeout=settings.time_limit),
        cwd=folder,
        env=mito.environment(
            fresh_folder(side / f"{task.name}.home"), served.endpoint.url(task.name), served.model
        ),
        log=side / f"{task.name}.log",
        limit=settings.time_limit,
        stdin=mito.NO_ONE_TO_ASK,
    )
    judged = mito.with_outputs(notebook, folder) if notebook.is_file() else notebook
    meter = served.endpoint.meters.get(task.name, Meter())
    outcome = "time_limit" if ended.timed_out else "finished" if ended.returncode == 0 else "error"
    return Result(
        mito.NAME, settings.model, task.name, task.topic,
        *judge(task, judged, folder, ended),
        outcome, meter.turns, meter.prompt_tokens, meter.completion_tokens, ended.wall_s,
    )  # fmt: skip


def local_options(agent_args: tuple[str, ...]) -> LlamaCppOptions:
    """How our command line loads a local model with these arguments: the peer's server loads it
    the same way."""
    parsed = build_parser().parse_args(["run", "-", *agent_args])
    return LlamaCppOptions(
        n_ctx=parsed.n_ctx, threads=parsed.threads, gpu_layers=parsed.gpu_layers, seed=parsed.seed
    )


def fresh_folder(path: Path) -> Path:
    """An empty folder: what a task's earlier, unfinished run left there is gone."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


@dataclass
class Figures:
    """What a run's transcript says of it."""

    steps: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    outcome: str = "unfinished"


def read_transcript(path: Path) -> Figures:
    figures = Figures()
    if not path.is_file():
        return figures
    for line in path.read_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:  # the last line of a run that was killed
            break
        if event["type"] == "step":
            figures.steps += 1
        elif event["type"] == "model_turn":
            figures.prompt_tokens += event["usage"]["prompt_tokens"]
            figures.completion_tokens += event["usage"]["completion_tokens"]
        elif event["type"] == "run_finished":
            figures.outcome = event["reason"]
    return figures


def judge(task: Task, notebook: Path, folder: Path, ended: Ended) -> tuple[bool, str]:
    """Whether the checker finds the task solved, and if not, why."""
    if not notebook.is_file():
        return False, f"no notebook was written ({ended.describe()})"
    try:
        task.check(notebook, folder)
    except CheckFailed as failure:
        return False, str(failure)
    except Exception as error:  # the checker's own bug: the other tasks are still worth running
        return False, f"the checker failed: {error!r}"
    return True, ""


def task_line(result: Result, progress: str, width: int) -> str:
    verdict = "solved" if result.solved else "unsolved"
    line = (
        f"{progress} {result.agent} {result.task:<{width}}  {verdict:<8} {result.steps:>3} steps  "
        f"{result.tokens:>7} tokens ({result.prompt_tokens}+{result.completion_tokens})  "
        f"{result.wall_s:6.1f} s"
    )
    if not result.solved:
        reason = " ".join(result.reason.split())
        line += f"  [{result.outcome}] {reason[:117] + '...' if len(reason) > 120 else reason}"
    return line


def summary(results: list[Result]) -> dict[str, Any]:
    solved = [result for result in results if result.solved]
    topics: dict[str, dict[str, int]] = {}
    for result in results:
        counts = topics.setdefault(result.topic, {"solved": 0, "total": 0})
        counts["solved"] += result.solved
        counts["total"] += 1

    def median(values: list[float]) -> float | None:
        return round(statistics.median(values), 1) if values else None

    return {
        "solved": len(solved),
        "total": len(results),
        "solve_rate": round(len(solved) / len(results), 3) if results else 0.0,
        "median_steps": median([result.steps for result in results]),
        "median_tokens": median([result.tokens for result in results]),
        "median_wall_s": median([result.wall_s for result in results]),
        "by_topic": topics,
        "unsolved": [result.task for result in results if not result.solved],
    }


def rate_line(agent: str, figures: dict[str, Any]) -> str:
    return (
        f"{agent}: {figures['solved']}/{figures['total']} solved ({figures['solve_rate']:.0%}), "
        f"median {figures['median_steps']} steps, {figures['median_tokens']} tokens, "
        f"{figures['median_wall_s']} s"
    )


@dataclass(frozen=True)
class Ended:
    """How a run's process ended."""

    returncode: int
    timed_out: bool
    wall_s: float
    last_line: str
    """The last line it printed: what a failed start says."""

    def describe(self) -> str:
        if self.timed_out:
            return "stopped at the time limit"
        return f"exit {self.returncode}: {self.last_line}" if self.returncode else "exit 0"


class Processes:
    """The runs' processes, each in a process group of its own (its kernels with it), so that a
    time limit or an interrupted suite ends the whole of each."""

    def __init__(self) -> None:
        self.live: set[subprocess.Popen[bytes]] = set()
        self.lock = threading.Lock()

    def run(
        self,
        command: list[str],
        cwd: Path,
        env: dict[str, str],
        log: Path,
        limit: float,
        stdin: str | None = None,
    ) -> Ended:
        """Runs the command, its output into `log`, for `limit` seconds at most."""
        start = time.monotonic()
        timed_out = False
        with log.open("wb") as output:
            process = subprocess.Popen(
                command, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=output,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
            with self.lock:
                self.live.add(process)
            try:
                with contextlib.suppress(BrokenPipeError), process.stdin:  # type: ignore[union-attr]
                    process.stdin.write((stdin or "").encode())  # type: ignore[union-attr]
                process.wait(timeout=limit)
            except subprocess.TimeoutExpired:
                timed_out = True
                self.stop(process)
            finally:
                with self.lock:
                    self.live.discard(process)
        lines = log.read_text(errors="replace").strip().splitlines()
        return Ended(process.returncode, timed_out, time.monotonic() - start, (lines or [""])[-1])

    @staticmethod
    def stop(process: subprocess.Popen[bytes]) -> None:
        """SIGINT first, which lets a run save its notebook and end its kernel; then SIGKILL."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def stop_all(self) -> None:
        with self.lock:
            running = list(self.live)
        for process in running:
            self.stop(process)


processes = Processes()

if __name__ == "__main__":
    sys.exit(main())
