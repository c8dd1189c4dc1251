"""The task suite that scores the agent: every reference solution, run in the sandbox kernel as the
agent's code would be, passes its task's checker; an empty notebook fails it; data is seeded."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output
from traitlets.config import Config

from jupyter_notebook_agent.kernels import JupyterKernelSession
from jupyter_notebook_agent.sandbox import SANDBOX_KERNEL
from jupyter_notebook_agent.sandbox.image import ensure_image

sys.path.insert(0, str(Path(__file__).parents[1] / "bench"))

from tasks import TASKS, TOPICS, CheckFailed, checks, select

#: How long one reference cell may take (the slowest fits a small model).
CELL_TIMEOUT_S = 60


@pytest.fixture(scope="session")
def sandbox_image() -> str:
    """The kernel image, built once if this machine does not have it yet."""
    return ensure_image()


def data_folder(parent: Path) -> Path:
    """A folder holding one task's data, as the notebook's folder would."""
    folder = parent / "work"
    folder.mkdir(parents=True)
    return folder


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_the_suite_has_every_topic_and_three_smoke_tasks_first():
    tasks = list(TASKS.values())
    assert len(tasks) >= 32
    assert {task.topic for task in tasks} == set(TOPICS)
    assert [task.smoke for task in tasks[:3]] == [True] * 3
    assert not any(task.smoke for task in tasks[3:])
    assert all(task.name == TASKS[task.name].name for task in tasks)
    assert select("count-sales-rows") == [TASKS["count-sales-rows"]]
    assert {task.topic for task in select("plot")} == {"plot"}


PRELUDE = """\
%reset -f
import os, matplotlib.pyplot
matplotlib.pyplot.close("all")
os.chdir(os.path.join(os.environ["TASKS_ROOT"], {name!r}))
del os, matplotlib
"""
"""Between two tasks in one kernel: no name left from the task before, no figure, its own
folder as the working directory."""


async def test_every_reference_solution_run_in_the_sandbox_passes_its_check(
    tmp_path, sandbox_image
):
    """One sandbox kernel runs them all, each task in a folder of its own and a namespace made
    empty (starting a kernel a task was most of the test's time). What modules keep (pandas'
    options, matplotlib's settings, numpy's global seed) carries over: no reference sets any."""
    for task in TASKS.values():
        task.make_data(data_folder(tmp_path / task.name))
    config = Config({"DockerSandbox": {"image": sandbox_image}})
    session = await JupyterKernelSession.start(SANDBOX_KERNEL, cwd=str(tmp_path), config=config)
    failed: dict[str, str] = {}
    try:
        await session.execute("import os; os.environ['TASKS_ROOT'] = os.getcwd()", 10)
        for task in TASKS.values():
            prelude = await session.execute(PRELUDE.format(name=f"{task.name}/work"), 10)
            assert prelude.status == "ok", prelude.outputs
            notebook = new_notebook()
            for source in task.reference:
                execution = await session.execute(source, CELL_TIMEOUT_S)
                notebook.cells.append(
                    new_code_cell(
                        source, outputs=execution.outputs, execution_count=execution.execution_count
                    )
                )
                if execution.status != "ok":
                    failed[task.name] = f"{source!r} failed: {execution.outputs}"
                    break
            else:
                folder = tmp_path / task.name / "work"
                nbformat.write(notebook, folder / "analysis.ipynb")
                try:
                    task.check(folder / "analysis.ipynb", folder)
                except CheckFailed as error:
                    failed[task.name] = str(error)
    finally:
        await session.shutdown()
    assert not failed


@pytest.mark.parametrize("name", TASKS)
def test_an_empty_notebook_fails_the_check_with_a_reason(name, tmp_path):
    task = TASKS[name]
    folder = data_folder(tmp_path)
    task.make_data(folder)
    path = folder / "analysis.ipynb"
    nbformat.write(new_notebook(), path)
    with pytest.raises(CheckFailed) as failed:
        task.check(path, folder)
    assert str(failed.value).strip()


@pytest.mark.parametrize("name", TASKS)
def test_the_data_is_the_same_every_time(name, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    TASKS[name].make_data(first)
    TASKS[name].make_data(second)
    made = files(first)
    assert made, "the task writes no data"
    assert made == files(second)


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("df.plot(kind='bar')", "bar"),
        ("df.plot.barh()", "bar"),
        ("fig, ax = plt.subplots()\nax.bar(x, y)", "bar"),
        ("sns.barplot(data=d, x='a', y='b')", "bar"),
        ("df['age'].hist(bins=20)", "hist"),
        ("sns.histplot(df['age'])", "hist"),
        ("df['age'].plot(kind='hist')", "hist"),
        ("plt.scatter(x, y)", "scatter"),
        ("df.plot.scatter(x='a', y='b')", "scatter"),
        ("sns.relplot(data=d, x='a', y='b')", "scatter"),
        ("%matplotlib inline\nmonthly.plot(title='t')", "line"),
        ("plt.plot(x, y)", "line"),
        ("sns.lineplot(data=d, x='a', y='b')", "line"),
    ],
)
def test_the_kind_of_chart_is_read_from_the_code(source, kind):
    assert checks.plot_kinds(source) == {kind}


def printed(text: str, error: bool = False) -> nbformat.NotebookNode:
    """A notebook of one cell that printed `text` (and then failed, if `error`)."""
    outputs = [new_output("stream", name="stdout", text=text)]
    if error:
        outputs.append(new_output("error", ename="KeyError", evalue="'x'", traceback=[]))
    notebook = new_notebook()
    notebook.cells.append(new_code_cell("print(answer)", outputs=outputs))
    return notebook


@pytest.mark.parametrize(
    ("text", "expected", "decimals", "shown"),
    [
        ("total: 1,234.57\n", 1234.5678, 2, True),
        ("1234.5678\n", 1234.5678, 2, True),
        ("np.float64(1234.57)\n", 1234.5678, 2, True),
        ("1.234568e+03\n", 1234.568, 2, True),
        ("1234.6\n", 1234.5678, 2, False),  # fewer decimals than asked for
        ("1234.58\n", 1234.5678, 2, False),
        ("[137 rows x 4 columns]\n", 137, 0, True),
        ("136.8\n", 137, 0, False),
        ("-12.50\n", -12.5, 2, True),
    ],
)
def test_a_number_counts_as_shown_when_it_is_the_value_rounded_as_asked(
    text, expected, decimals, shown
):
    if shown:
        checks.require_number(printed(text), expected, "the answer", decimals)
    else:
        with pytest.raises(CheckFailed, match="should be shown as"):
            checks.require_number(printed(text), expected, "the answer", decimals)


def test_what_a_cell_that_failed_printed_does_not_count():
    with pytest.raises(CheckFailed):
        checks.require_number(printed("42\n", error=True), 42, "the answer", 0)
