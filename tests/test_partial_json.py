"""String fields read out of JSON while it streams: a cell's source from a call's arguments."""

from __future__ import annotations

import json

import pytest

from jupyter_notebook_agent.partial_json import FieldStream, string_field

SOURCE = 'print("naïve \\\\ é")\n# tab\there, 5 backslashes: \\\\\\\\\\ and 😀 \u2028 end'
ARGUMENTS = json.dumps({"cell_type": "code", "source": SOURCE, "after_cell_id": "agent-1"})


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 16, len(ARGUMENTS)])
def test_the_source_comes_out_whole_however_the_arguments_are_cut(size):
    stream = FieldStream("source")
    pieces = [stream.feed(ARGUMENTS[i : i + size]) for i in range(0, len(ARGUMENTS), size)]
    assert "".join(pieces) == SOURCE == stream.value
    assert stream.started


def test_fields_are_read_once_complete():
    assert string_field('{"cell_type": "mark', "cell_type") is None
    assert string_field(ARGUMENTS, "cell_type") == "code"
    assert string_field(ARGUMENTS, "after_cell_id") == "agent-1"
