"""The openai backend against a real HTTP endpoint that misbehaves, through the installed CLI."""

from __future__ import annotations

import nbformat
import pytest

from .conftest import LOCAL, RECORDINGS, add_cell_turn, free_port, turn

SINE = RECORDINGS / "sine_plot.json"


def assert_saved_and_valid(path) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    return nb


def test_a_rejected_key_is_one_clear_line_and_the_notebook_is_saved(
    tmp_path, replay_server, run_cli
):
    with replay_server(SINE, api_key="sk-right") as server:
        result = run_cli("run", "t", "-o", "n.ipynb", "--base-url", server.base_url,
                         *LOCAL)  # fmt: skip
        assert len(server.script.requests) == 0  # a 401 is not retried: nothing was accepted
    assert result.returncode == 1
    assert f"{server.base_url} rejected the API key (401): check OPENAI_API_KEY" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    nb = assert_saved_and_valid(tmp_path / "n.ipynb")
    assert nb.metadata["notebook_agent"]["runs"][0]["reason"] == "model_error"


def test_rate_limits_are_retried_with_exponential_backoff(tmp_path, replay_server, run_cli):
    with replay_server(SINE, faults=[429, 429]) as server:
        result = run_cli("run", "t", "-o", "n.ipynb", "--base-url", server.base_url,
                         *LOCAL)  # fmt: skip
        arrivals = server.script.arrival_times
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(arrivals) == 5 + 2
    first_wait, second_wait = arrivals[1] - arrivals[0], arrivals[2] - arrivals[1]
    assert first_wait >= 0.3  # 0.5 s less jitter
    assert second_wait >= 0.7  # doubled
    assert len(assert_saved_and_valid(tmp_path / "n.ipynb").cells) == 4


def test_server_errors_throughout_give_up_after_the_retries(tmp_path, replay_server, run_cli):
    with replay_server(SINE, faults=[500] * 10, retry_after_ms=10) as server:
        result = run_cli("run", "t", "-o", "n.ipynb", "--base-url", server.base_url,
                         "--max-retries", "2", *LOCAL)  # fmt: skip
        assert len(server.script.requests) == 3
    assert result.returncode == 1
    assert f"{server.base_url} answered 500 (after 2 retries): injected fault 500" in result.stdout
    assert_saved_and_valid(tmp_path / "n.ipynb")


def test_an_endpoint_that_is_not_listening(tmp_path, run_cli):
    url = f"http://127.0.0.1:{free_port()}/v1"
    result = run_cli("run", "t", "-o", "n.ipynb", "--base-url", url, "--max-retries", "1",
                     *LOCAL)  # fmt: skip
    assert result.returncode == 1
    assert f"cannot reach {url} (after 1 retries): is the server running" in result.stdout
    assert_saved_and_valid(tmp_path / "n.ipynb")


def test_an_unknown_model_is_named(tmp_path, replay_server, run_cli):
    with replay_server(SINE) as server:
        result = run_cli("run", "t", "-o", "n.ipynb", "--base-url", server.base_url,
                         "--model", "gpt-9", *LOCAL)  # fmt: skip
    assert result.returncode == 1
    assert "does not serve model 'gpt-9' (404): check --model" in result.stdout


def test_a_model_that_never_completes_stops_at_max_steps(tmp_path, write_recording, run_cli):
    recording = write_recording(*[add_cell_turn(f"print({i})") for i in range(10)])
    result = run_cli("run", "t", "-o", "n.ipynb", "--model", f"replay:{recording}",
                     "--max-steps", "3", *LOCAL)  # fmt: skip
    assert result.returncode == 1
    assert "Failed (max_steps)" in result.stdout
    assert "the run reached its limit of 3 steps" in result.stdout
    nb = assert_saved_and_valid(tmp_path / "n.ipynb")
    assert [c.outputs[0].text for c in nb.cells] == ["0\n", "1\n", "2\n"]
    assert nb.metadata["notebook_agent"]["runs"][0]["reason"] == "max_steps"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--kernel", "python3"), "the kernel 'python3' is not sandboxed"),
        (("--kernel", "nope", "--allow-unsandboxed"), "no kernelspec named 'nope'"),
        ((*LOCAL, "--mount", "/tmp:/data"), "--mount and --image configure"),
        ((*LOCAL, "--mount", "/tmp"), "is not HOST:CONTAINER"),
        ((*LOCAL, "--max-steps", "0"), "must be at least 1"),
        ((*LOCAL, "-o", "notes.txt"), "must name an .ipynb file"),
    ],
)
def test_usage_errors_exit_2_with_a_message(run_cli, args, message, tmp_path):
    result = run_cli("run", "t", "--model", f"replay:{SINE}", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert list(tmp_path.glob("*.ipynb")) == []  # nothing ran, nothing was written


def test_an_existing_notebook_is_never_replaced(tmp_path, run_cli):
    mine = tmp_path / "mine.ipynb"
    mine.write_text("my work")
    result = run_cli("run", "t", "-o", mine, "--model", f"replay:{SINE}", *LOCAL)
    assert result.returncode == 2
    assert "exists; choose another --output, or pass --overwrite" in result.stderr
    assert mine.read_text() == "my work"


def test_a_missing_api_key_is_a_usage_error(run_cli):
    result = run_cli("run", "t", "--model", "gpt-4o-mini", *LOCAL, env={"OPENAI_API_KEY": ""})
    assert result.returncode == 2
    assert "no API key for model 'gpt-4o-mini': set OPENAI_API_KEY" in result.stderr


def test_a_broken_recording_is_a_usage_error(tmp_path, run_cli):
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    result = run_cli("run", "t", "--model", "replay:bad.json", *LOCAL)
    assert result.returncode == 2
    assert 'bad.json is not a valid recording: "format" is not' in result.stderr


def test_a_recording_that_runs_out_ends_the_run_with_a_clear_error(write_recording, run_cli):
    recording = write_recording(turn(content="hello"))
    result = run_cli("run", "t", "-o", "n.ipynb", "--model", f"replay:{recording}",
                     *LOCAL)  # fmt: skip
    assert result.returncode == 1
    assert "has 1 turns; the run asked for turn 2" in result.stdout
