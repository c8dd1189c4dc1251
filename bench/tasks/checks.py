"""What checkers look at: the finished notebook's outputs and code, and the files written beside it.

Only cells that ran without an error count: the agent may fail first and fix it later, and what
is judged is the state it left. Every helper raises CheckFailed with a reason a person can read.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

import nbformat
import pandas as pd
from nbformat import NotebookNode

from .base import CheckFailed

#: A number as printed by Python, pandas or a person: 1234, -0.5, 1,234.56, 1.2e+03.
NUMBER = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?")
HTML_TAG = re.compile(r"<[^>]+>")
#: Plotting calls by the kind of chart they draw (matplotlib, pandas, seaborn).
PLOT_FUNCTIONS = {
    "bar": "bar",
    "barh": "bar",
    "barplot": "bar",
    "countplot": "bar",
    "hist": "hist",
    "histplot": "hist",
    "displot": "hist",
    "distplot": "hist",
    "scatter": "scatter",
    "scatterplot": "scatter",
    "lineplot": "line",
    "line": "line",
    "plot": "line",
}
#: How the kinds of chart are called in a sentence.
CHART_NAMES = {
    "bar": "bar chart",
    "hist": "histogram",
    "scatter": "scatter plot",
    "line": "line chart",
}


def read_notebook(path: Path) -> NotebookNode:
    """The notebook as saved; one that cannot be read fails the check, it does not crash it."""
    try:
        return nbformat.read(path, as_version=4)
    except (OSError, ValueError) as error:
        raise CheckFailed(f"the notebook {path.name} cannot be read: {error}") from error


def good_cells(notebook: NotebookNode) -> list[NotebookNode]:
    """The code cells that ran without an error."""
    return [
        cell
        for cell in notebook.cells
        if cell.cell_type == "code"
        and not any(output.output_type == "error" for output in cell.get("outputs", ()))
    ]


def cell_text(cell: NotebookNode) -> str:
    """The text a cell showed: streams, and the plain or HTML form of results and displays."""
    parts: list[str] = []
    for output in cell.get("outputs", ()):
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type in ("execute_result", "display_data"):
            data = output.get("data", {})
            parts.append(data.get("text/plain", ""))
            parts.append(HTML_TAG.sub(" ", data.get("text/html", "")))
    return "\n".join(parts)


def output_text(notebook: NotebookNode) -> str:
    """Everything the cells that did not fail showed, as text."""
    return "\n".join(cell_text(cell) for cell in good_cells(notebook))


def code(notebook: NotebookNode) -> str:
    """The sources of the cells that ran without an error."""
    return "\n".join(cell.source for cell in good_cells(notebook))


class Shown(NamedTuple):
    """A number as an output shows it: its value, and the step of its last printed digit."""

    value: float
    step: float

    def means(self, expected: float, decimals: int) -> bool:
        """Whether this is `expected` printed to `decimals` decimals or more (or exactly)."""
        slack = 1e-9 * max(1.0, abs(expected))
        if abs(self.value - expected) <= slack:
            return True
        return self.step <= 10**-decimals + slack and abs(self.value - expected) <= (
            self.step / 2 + slack
        )


def _shown(printed: str) -> Shown:
    mantissa, _, exponent = printed.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return Shown(float(printed.replace(",", "")), 10.0 ** (int(exponent or 0) - decimals))


def numbers_in(text: str) -> Iterator[Shown]:
    """Every number in the text; 1,234 is read both as 1234 and as 1 and 234 (it may be a list)."""
    for match in NUMBER.finditer(text):
        printed = match.group()
        yield _shown(printed)
        if "," in printed:
            yield from (_shown(part) for part in printed.split(","))


def shown_numbers(notebook: NotebookNode) -> list[Shown]:
    """The numbers the cells that did not fail showed."""
    return list(numbers_in(output_text(notebook)))


def _listing(numbers: Iterable[Shown], limit: int = 12) -> str:
    shown = [f"{number.value:g}" for number in numbers]
    if not shown:
        return "no numbers at all"
    more = f" and {len(shown) - limit} more" if len(shown) > limit else ""
    return ", ".join(shown[:limit]) + more


def require_number(notebook: NotebookNode, expected: float, what: str, decimals: int = 2) -> None:
    """Some output shows `expected`, rounded to `decimals` decimals or more precisely."""
    shown = shown_numbers(notebook)
    if not any(number.means(expected, decimals) for number in shown):
        raise CheckFailed(
            f"{what} should be shown as {expected:.{decimals}f}; the outputs show {_listing(shown)}"
        )


def require_numbers(
    notebook: NotebookNode, expected: dict[str, float], what: str, decimals: int = 2
) -> None:
    """Each labelled value is shown (e.g. one total per group); names the ones that are not."""
    shown = shown_numbers(notebook)
    missing = [
        f"{label}: {value:.{decimals}f}"
        for label, value in expected.items()
        if not any(number.means(value, decimals) for number in shown)
    ]
    if missing:
        raise CheckFailed(f"{what}: these values are not shown: {'; '.join(missing)}")


def require_text(notebook: NotebookNode, expected: str, what: str) -> None:
    """Some output shows `expected` as a word (case does not matter)."""
    pattern = re.compile(rf"(?<!\w){re.escape(expected)}(?!\w)", re.IGNORECASE)
    if not pattern.search(output_text(notebook)):
        raise CheckFailed(f"no output shows {expected!r} ({what})")


def require_score(notebook: NotebookNode, low: float, high: float, what: str) -> None:
    """A score in [low, high] is shown, as a fraction or as a percentage ("87.5%")."""
    text = output_text(notebook)
    fractions = [number for number in numbers_in(text) if low <= number.value <= high]
    percents = [
        float(match.group(1))
        for match in re.finditer(r"(\d+(?:\.\d+)?)\s*%", text)
        if low <= float(match.group(1)) / 100 <= high
    ]
    if not fractions and not percents:
        raise CheckFailed(
            f"{what} should be shown, and for this data it lies between {low} and {high}; "
            f"the outputs show {_listing(numbers_in(text))}"
        )


def require_code(notebook: NotebookNode, pattern: str, what: str) -> None:
    """Some cell that ran without an error has code matching the regular expression."""
    if not re.search(pattern, code(notebook)):
        raise CheckFailed(f"no cell that ran without an error {what}")


def require_split(notebook: NotebookNode) -> None:
    """The model was scored on data it was not fitted on."""
    require_code(
        notebook,
        r"train_test_split|\.sample\(\s*frac|ShuffleSplit|KFold|cross_val_score",
        "splits the data into a training and a test set",
    )


def _python(source: str) -> ast.Module | None:
    """A cell's code as a syntax tree, IPython's % and ! lines left out; None if it is no Python."""
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


def _keyword(call: ast.Call, name: str) -> str | None:
    for keyword in call.keywords:
        if keyword.arg == name and isinstance(keyword.value, ast.Constant):
            return str(keyword.value.value)
    return None


def plot_kinds(source: str) -> set[str]:
    """The kinds of chart ("bar", "hist", "scatter", "line") a cell's plotting calls draw."""
    tree = _python(source)
    if tree is None:
        return set()
    kinds: set[str] = set()
    for call in (node for node in ast.walk(tree) if isinstance(node, ast.Call)):
        function = call.func
        name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
        # df.plot.bar(), the accessor form: the kind is the method's name.
        if isinstance(function, ast.Attribute) and getattr(function.value, "attr", "") == "plot":
            kinds.add(PLOT_FUNCTIONS.get(name, name))
        elif name == "plot":
            kind = _keyword(call, "kind") or "line"
            kinds.add(PLOT_FUNCTIONS.get(kind, kind))
        elif name in ("relplot", "catplot"):
            default = "scatter" if name == "relplot" else "strip"
            kind = _keyword(call, "kind") or default
            kinds.add(PLOT_FUNCTIONS.get(kind, kind))
        elif name in PLOT_FUNCTIONS:
            kinds.add(PLOT_FUNCTIONS[name])
    return kinds


def has_image(cell: NotebookNode) -> bool:
    """Whether the cell shows a picture (a chart, with matplotlib's inline backend)."""
    return any("image/png" in output.get("data", {}) for output in cell.get("outputs", ()))


def require_plot(notebook: NotebookNode, kind: str) -> None:
    """A cell that ran without an error draws a chart of this kind and shows it as an image."""
    wanted = CHART_NAMES[kind]
    shown = [cell for cell in good_cells(notebook) if has_image(cell)]
    if not shown:
        raise CheckFailed(f"no cell shows a chart (a {wanted} was asked for)")
    for cell in shown:
        if kind in plot_kinds(cell.source):
            return
    drawn = sorted(set().union(*(plot_kinds(cell.source) for cell in shown)))
    raise CheckFailed(
        f"a {wanted} was asked for; the cells that show a chart draw "
        f"{', '.join(CHART_NAMES.get(k, k) for k in drawn) or 'it with calls not known as plots'}"
    )


def read_written(folder: Path, name: str) -> pd.DataFrame:
    """A CSV file the notebook was asked to write; one that is not there or not CSV fails."""
    path = folder / name
    if not path.is_file():
        raise CheckFailed(f"{name} was not written")
    try:
        return pd.read_csv(path)
    except (ValueError, OSError) as error:  # pandas' parser and decoding errors are ValueErrors
        raise CheckFailed(f"{name} cannot be read as CSV: {error}") from error


def require_columns(table: pd.DataFrame, columns: Iterable[str], name: str) -> None:
    """The table has these columns (others may be there too), spelled exactly."""
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise CheckFailed(
            f"{name} lacks the column(s) {', '.join(missing)}; it has {', '.join(table.columns)}"
        )


def require_rows(table: pd.DataFrame, expected: int, name: str) -> None:
    """The table has exactly the rows it should (none lost, none repeated)."""
    if len(table) != expected:
        raise CheckFailed(f"{name} should have {expected} rows; it has {len(table)}")


def require_unique(table: pd.DataFrame, key: str, name: str) -> None:
    """No key is repeated; names a few that are."""
    repeated = table[key][table[key].duplicated()].unique()
    if len(repeated):
        raise CheckFailed(
            f"{name} still has repeated {key} values, e.g. {', '.join(map(str, repeated[:5]))}"
        )


def require_numeric(table: pd.DataFrame, column: str, name: str) -> None:
    """The column holds numbers, not text that looks like them (and can be compared)."""
    if not pd.api.types.is_numeric_dtype(table[column]):
        raise CheckFailed(f"{name}: {column} should hold numbers; it holds {table[column].dtype}")


def require_close(actual: float, expected: float, what: str, tolerance: float = 0.01) -> None:
    """A written value is the expected one, within what rounding explains."""
    if not math.isclose(actual, expected, abs_tol=tolerance):
        raise CheckFailed(f"{what} should be {expected:.2f}; it is {actual:.2f}")


def beside(expected: pd.DataFrame, written: pd.DataFrame, key: str, name: str) -> pd.DataFrame:
    """The expected rows, each with the written row of the same key beside it (its columns end
    in "_written"; empty where none was written)."""
    try:
        keys = written[key].astype(expected[key].dtype)
    except (ValueError, TypeError) as error:
        raise CheckFailed(f"{name}: its {key} values are not like those of the data") from error
    return expected.merge(
        written.assign(**{key: keys}), on=key, how="left", suffixes=("", "_written")
    )
