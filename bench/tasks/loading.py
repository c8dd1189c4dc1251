"""Reading data in the formats people have it in: JSON, Parquet, tab-separated, many files."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from . import checks
from .base import Task
from .data import PRODUCTS, REGIONS, choose, generator, money, people, write_csv, write_parquet

MONTHS = ("2024-01", "2024-02", "2024-03", "2024-04", "2024-05", "2024-06")


def make_scores(folder: Path) -> None:
    rng = generator(201)
    players = people(rng, 12)
    records = [
        {"player": players[p], "game": f"G{g:02d}", "score": int(rng.integers(0, 1000))}
        for g in range(1, 31)
        for p in rng.choice(len(players), 4, replace=False)
    ]
    (folder / "scores.json").write_text(json.dumps(records, indent=1) + "\n")


def check_top_player(notebook_path: Path, folder: Path) -> None:
    totals = pd.read_json(folder / "scores.json").groupby("player")["score"].sum()
    notebook = checks.read_notebook(notebook_path)
    checks.require_text(notebook, totals.idxmax(), "the player with the highest total score")
    checks.require_number(notebook, totals.max(), "that player's total score", 0)


def make_readings(folder: Path) -> None:
    rng = generator(202)
    size = 400
    table = pd.DataFrame(
        {
            "station": choose(rng, ("alpha", "bravo", "charlie"), size),
            "timestamp": pd.date_range("2024-05-01", periods=size, freq="h"),
            "temperature": rng.normal(17.5, 4.0, size).round(3),
        }
    )
    write_parquet(table, folder / "readings.parquet")


def check_median_temperature(notebook_path: Path, folder: Path) -> None:
    median = pd.read_parquet(folder / "readings.parquet")["temperature"].median()
    checks.require_number(checks.read_notebook(notebook_path), median, "the median temperature")


def make_measurements(folder: Path) -> None:
    rng = generator(203)
    size = 150
    table = pd.DataFrame(
        {
            "sample": [f"S{i:04d}" for i in range(size)],
            "lab": choose(rng, ("Lyon", "Graz"), size),
            "weight": rng.normal(71.0, 9.0, size).round(1),
            "height": rng.normal(172.0, 8.0, size).round(1),
        }
    )
    write_csv(table, folder / "measurements.tsv", sep="\t")


def check_mean_weight(notebook_path: Path, folder: Path) -> None:
    mean = pd.read_csv(folder / "measurements.tsv", sep="\t")["weight"].mean()
    checks.require_number(checks.read_notebook(notebook_path), mean, "the mean weight")


def make_monthly(folder: Path) -> None:
    rng = generator(204)
    (folder / "monthly").mkdir()
    for month in MONTHS:
        size = int(rng.integers(40, 90))
        table = pd.DataFrame(
            {
                "day": [f"{month}-{d:02d}" for d in rng.integers(1, 29, size)],
                "region": choose(rng, REGIONS, size),
                "product": choose(rng, PRODUCTS, size),
                "revenue": money(rng, 20, 400, size),
            }
        )
        write_csv(table, folder / "monthly" / f"{month}.csv")


def check_combined_months(notebook_path: Path, folder: Path) -> None:
    combined = pd.concat(pd.read_csv(path) for path in sorted((folder / "monthly").glob("*.csv")))
    notebook = checks.read_notebook(notebook_path)
    checks.require_number(notebook, len(combined), "the number of rows of all months together", 0)
    checks.require_number(notebook, combined["revenue"].sum(), "the total revenue")


TASKS = (
    Task(
        name="json-top-player",
        topic="loading",
        request=(
            "scores.json holds game results. Print the name of the player with the highest "
            "total score, and that total."
        ),
        make_data=make_scores,
        check=check_top_player,
        reference=(
            "import pandas as pd\nscores = pd.read_json('scores.json')\n"
            "totals = scores.groupby('player')['score'].sum()\n"
            "print(totals.idxmax(), totals.max())",
        ),
    ),
    Task(
        name="parquet-median-temperature",
        topic="loading",
        request="Print the median temperature in readings.parquet, rounded to 2 decimals.",
        make_data=make_readings,
        check=check_median_temperature,
        reference=(
            "import pandas as pd\nreadings = pd.read_parquet('readings.parquet')\n"
            "print(round(readings['temperature'].median(), 2))",
        ),
    ),
    Task(
        name="tsv-mean-weight",
        topic="loading",
        request=(
            "measurements.tsv is a tab-separated file. Print the mean of its weight column, "
            "rounded to 2 decimals."
        ),
        make_data=make_measurements,
        check=check_mean_weight,
        reference=(
            "import pandas as pd\nmeasurements = pd.read_csv('measurements.tsv', sep='\\t')\n"
            "print(round(measurements['weight'].mean(), 2))",
        ),
    ),
    Task(
        name="combine-monthly-files",
        topic="loading",
        request=(
            "The monthly folder holds one sales CSV per month. Combine them into one table and "
            "print its number of rows and the total revenue."
        ),
        make_data=make_monthly,
        check=check_combined_months,
        reference=(
            "import glob\nimport pandas as pd\n"
            "sales = pd.concat(pd.read_csv(p) for p in sorted(glob.glob('monthly/*.csv')))\n"
            "print(len(sales), round(sales['revenue'].sum(), 2))",
        ),
    ),
)
