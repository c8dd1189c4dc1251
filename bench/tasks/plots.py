"""Charts: the checker wants an image shown by a cell whose code draws the asked kind of chart,
and code that uses the columns the request names."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from . import checks
from .base import Task
from .data import generator, people, write_csv
from .smoke import make_sales

#: Code that totals daily data per month.
PER_MONTH = r"resample|to_period|Grouper|\.dt\.month|strftime"


def check_chart(kind: str, *columns: str, per_month: bool = False) -> Callable[[Path, Path], None]:
    """A checker: a chart of `kind` is shown, the code uses `columns` (and totals per month)."""

    def check(notebook_path: Path, folder: Path) -> None:
        notebook = checks.read_notebook(notebook_path)
        checks.require_plot(notebook, kind)
        for column in columns:
            checks.require_code(notebook, rf"\b{column}\b", f"uses the {column} column")
        if per_month:
            checks.require_code(notebook, PER_MONTH, "totals the data per month")

    return check


def make_people(folder: Path) -> None:
    rng = generator(701)
    size = 400
    ages = np.clip(rng.normal(41, 13, size), 18, 90).round().astype(int)
    write_csv(pd.DataFrame({"name": people(rng, size), "age": ages}), folder / "people.csv")


def make_bodies(folder: Path) -> None:
    rng = generator(702)
    size = 250
    height = rng.normal(171, 9, size)
    weight = 0.9 * height - 85 + rng.normal(0, 7, size)
    table = pd.DataFrame({"height": height.round(1), "weight": weight.round(1)})
    write_csv(table, folder / "bodies.csv")


def make_revenue(folder: Path) -> None:
    rng = generator(703)
    dates = pd.date_range("2023-01-01", "2024-12-31", freq="D")
    season = 1 + 0.25 * np.sin((dates.day_of_year - 80) / 365 * 2 * np.pi)
    table = pd.DataFrame(
        {
            "date": dates.strftime("%Y-%m-%d"),
            "revenue": (900 * season * rng.gamma(8, 1 / 8, len(dates))).round(2),
        }
    )
    write_csv(table, folder / "revenue.csv")


TASKS = (
    Task(
        name="bar-chart-sales-by-region",
        topic="plot",
        request="Show a bar chart of the total sales amount per region in sales.csv.",
        make_data=make_sales,
        check=check_chart("bar", "region", "amount"),
        reference=(
            "import pandas as pd\nsales = pd.read_csv('sales.csv')\n"
            "sales.groupby('region')['amount'].sum().plot(kind='bar', title='Sales by region');",
        ),
    ),
    Task(
        name="histogram-of-ages",
        topic="plot",
        request="Show a histogram of the ages in people.csv.",
        make_data=make_people,
        check=check_chart("hist", "age"),
        reference=(
            "import pandas as pd\nimport matplotlib.pyplot as plt\n"
            "ages = pd.read_csv('people.csv')['age']\n"
            "plt.hist(ages, bins=20)\nplt.xlabel('age')\nplt.show()",
        ),
    ),
    Task(
        name="scatter-height-weight",
        topic="plot",
        request="Show a scatter plot of weight against height from bodies.csv.",
        make_data=make_bodies,
        check=check_chart("scatter", "height", "weight"),
        reference=(
            "import pandas as pd\nimport seaborn as sns\nbodies = pd.read_csv('bodies.csv')\n"
            "sns.scatterplot(data=bodies, x='height', y='weight');",
        ),
    ),
    Task(
        name="line-chart-monthly-revenue",
        topic="plot",
        request="Show a line chart of the revenue per month from revenue.csv.",
        make_data=make_revenue,
        check=check_chart("line", "revenue", per_month=True),
        reference=(
            "import pandas as pd\nrevenue = pd.read_csv('revenue.csv', parse_dates=['date'])\n"
            "monthly = revenue.set_index('date')['revenue'].resample('MS').sum()\n"
            "monthly.plot(title='Revenue per month');",
        ),
    ),
)
