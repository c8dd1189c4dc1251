"""Time series: totals per month, rolling means, hours that are missing, interpolated gaps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import checks
from .base import CheckFailed, Task
from .data import generator, write_csv


def make_visits(folder: Path) -> None:
    rng = generator(601)
    dates = pd.date_range("2024-01-01", "2024-06-30", freq="D")
    kept = np.sort(rng.choice(len(dates), len(dates) - 15, replace=False))
    table = pd.DataFrame(
        {"date": dates[kept].strftime("%Y-%m-%d"), "visits": rng.poisson(320, len(kept))}
    )
    write_csv(table, folder / "visits.csv")


def check_monthly_visits(notebook_path: Path, folder: Path) -> None:
    visits = pd.read_csv(folder / "visits.csv", parse_dates=["date"]).set_index("date")
    monthly = visits["visits"].resample("MS").sum()
    expected = {f"{month:%Y-%m}": total for month, total in monthly.items()}
    checks.require_numbers(
        checks.read_notebook(notebook_path), expected, "the total visits per month", 0
    )


def make_daily_sales(folder: Path) -> None:
    rng = generator(602)
    dates = pd.date_range("2024-03-01", periods=120, freq="D")
    trend = np.linspace(200, 320, len(dates)) + 40 * np.sin(np.arange(len(dates)) / 3.5)
    table = pd.DataFrame(
        {"date": dates.strftime("%Y-%m-%d"), "sales": (trend + rng.normal(0, 25, len(dates)))}
    ).round(2)
    write_csv(table.sample(frac=1, random_state=602), folder / "daily_sales.csv")


def check_rolling_average(notebook_path: Path, folder: Path) -> None:
    sales = pd.read_csv(folder / "daily_sales.csv", parse_dates=["date"]).sort_values("date")
    expected = sales.assign(expected=sales["sales"].rolling(7).mean()).dropna()
    written = checks.read_written(folder, "rolling.csv")
    checks.require_columns(written, ("date", "rolling_avg"), "rolling.csv")
    checks.require_numeric(written, "rolling_avg", "rolling.csv")
    try:
        written["date"] = pd.to_datetime(written["date"], format="mixed")
    except (ValueError, TypeError) as error:
        raise CheckFailed(f"the dates in rolling.csv cannot be read as dates: {error}") from error
    both = checks.beside(expected, written, "date", "rolling.csv")
    wrong = both[~np.isclose(both["expected"], both["rolling_avg"], atol=0.006)]
    if len(wrong):
        first = wrong.iloc[0]
        raise CheckFailed(
            f"{len(wrong)} of the {len(both)} days with a full week before them have a wrong or "
            f"missing rolling_avg in rolling.csv, e.g. {first['date']:%Y-%m-%d}: "
            f"{first['rolling_avg']} instead of {first['expected']:.2f}"
        )


def make_sensor(folder: Path) -> None:
    rng = generator(603)
    hours = pd.date_range("2024-03-01", periods=240, freq="h")
    gone = {3, 50, 51, 52, 53, 130, 177, *range(200, 207)}
    kept = hours[[i for i in range(len(hours)) if i not in gone]]
    table = pd.DataFrame({"timestamp": kept, "reading": rng.normal(50, 5, len(kept)).round(2)})
    write_csv(table, folder / "sensor.csv")


def check_missing_hours(notebook_path: Path, folder: Path) -> None:
    present = pd.to_datetime(pd.read_csv(folder / "sensor.csv")["timestamp"])
    every_hour = pd.date_range(present.min(), present.max(), freq="h")
    expected = set(every_hour.difference(present))
    written = checks.read_written(folder, "missing_hours.csv")
    checks.require_columns(written, ("timestamp",), "missing_hours.csv")
    try:
        found = set(pd.to_datetime(written["timestamp"], format="mixed"))
    except (ValueError, TypeError) as error:
        raise CheckFailed(
            f"missing_hours.csv holds timestamps that are not dates: {error}"
        ) from error
    if found != expected:
        raise CheckFailed(
            f"{len(expected)} hours are missing from sensor.csv; missing_hours.csv lists "
            f"{len(found & expected)} of them, and {len(found - expected)} hours that are there"
        )


def make_rides(folder: Path) -> None:
    rng = generator(604)
    weights = np.array([1.0, 1.1, 1.05, 1.2, 1.6, 1.3, 0.8])
    day_numbers = rng.choice(56, 1400, p=np.tile(weights, 8) / np.tile(weights, 8).sum())
    starts = (
        pd.Timestamp("2024-04-01")
        + pd.to_timedelta(day_numbers, unit="D")
        + pd.to_timedelta(rng.integers(6 * 60, 23 * 60, len(day_numbers)), unit="min")
    )
    table = pd.DataFrame(
        {"ride_id": range(1, len(starts) + 1), "start_time": starts.sort_values().astype(str)}
    )
    write_csv(table, folder / "rides.csv")


def check_busiest_weekday(notebook_path: Path, folder: Path) -> None:
    starts = pd.to_datetime(pd.read_csv(folder / "rides.csv")["start_time"])
    counts = starts.dt.day_name().value_counts()
    notebook = checks.read_notebook(notebook_path)
    checks.require_text(notebook, counts.idxmax(), "the day with the most rides")
    checks.require_number(notebook, counts.max(), "its number of rides", 0)


def make_temperatures(folder: Path) -> None:
    rng = generator(605)
    hours = pd.date_range("2024-07-01", periods=168, freq="h")
    daily = 21 + 6 * np.sin((hours.hour - 9) / 24 * 2 * np.pi)
    kept = np.sort(rng.choice(len(hours), 140, replace=False))
    kept = np.union1d(kept, [0, len(hours) - 1])  # the week's first and last hour are there
    table = pd.DataFrame(
        {
            "time": hours[kept].strftime("%Y-%m-%d %H:%M"),
            "temperature": (daily[kept] + rng.normal(0, 0.8, len(kept))).round(2),
        }
    )
    write_csv(table, folder / "temperatures.csv")


def check_interpolated_mean(notebook_path: Path, folder: Path) -> None:
    readings = pd.read_csv(folder / "temperatures.csv", parse_dates=["time"]).set_index("time")
    filled = readings["temperature"].resample("h").mean().interpolate()
    checks.require_number(
        checks.read_notebook(notebook_path), filled.mean(), "the mean of the filled-in hours"
    )


TASKS = (
    Task(
        name="monthly-visits",
        topic="timeseries",
        request="Print the total number of visits per month in visits.csv.",
        make_data=make_visits,
        check=check_monthly_visits,
        reference=(
            "import pandas as pd\nvisits = pd.read_csv('visits.csv', parse_dates=['date'])\n"
            "print(visits.set_index('date')['visits'].resample('MS').sum())",
        ),
    ),
    Task(
        name="rolling-7-day-average",
        topic="timeseries",
        request=(
            "Compute the 7-day rolling average of sales in daily_sales.csv (in date order) and "
            "save it to rolling.csv with the columns date and rolling_avg."
        ),
        make_data=make_daily_sales,
        check=check_rolling_average,
        reference=(
            "import pandas as pd\n"
            "sales = pd.read_csv('daily_sales.csv', parse_dates=['date']).sort_values('date')\n"
            "sales['rolling_avg'] = sales['sales'].rolling(7).mean()\n"
            "sales[['date', 'rolling_avg']].to_csv('rolling.csv', index=False)\n"
            "sales.tail()",
        ),
    ),
    Task(
        name="find-missing-hours",
        topic="timeseries",
        request=(
            "sensor.csv should have one reading per hour, but some hours are missing. Save the "
            "missing hours to missing_hours.csv, in a column named timestamp."
        ),
        make_data=make_sensor,
        check=check_missing_hours,
        reference=(
            "import pandas as pd\nsensor = pd.read_csv('sensor.csv', parse_dates=['timestamp'])\n"
            "first, last = sensor['timestamp'].min(), sensor['timestamp'].max()\n"
            "hours = pd.date_range(first, last, freq='h')\n"
            "missing = hours.difference(sensor['timestamp'])\n"
            "pd.DataFrame({'timestamp': missing}).to_csv('missing_hours.csv', index=False)\n"
            "print(len(missing))",
        ),
    ),
    Task(
        name="busiest-weekday",
        topic="timeseries",
        request=(
            "Which day of the week has the most rides in rides.csv? Print the name of the day "
            "and its number of rides."
        ),
        make_data=make_rides,
        check=check_busiest_weekday,
        reference=(
            "import pandas as pd\nrides = pd.read_csv('rides.csv', parse_dates=['start_time'])\n"
            "counts = rides['start_time'].dt.day_name().value_counts()\n"
            "print(counts.idxmax(), counts.max())",
        ),
    ),
    Task(
        name="interpolate-missing-hours",
        topic="timeseries",
        request=(
            "temperatures.csv has hourly readings with some hours missing. Fill in the missing "
            "hours by linear interpolation and print the mean temperature over all hours, "
            "rounded to 2 decimals."
        ),
        make_data=make_temperatures,
        check=check_interpolated_mean,
        reference=(
            "import pandas as pd\n"
            "readings = pd.read_csv('temperatures.csv', parse_dates=['time']).set_index('time')\n"
            "hourly = readings['temperature'].resample('h').mean().interpolate()\n"
            "print(len(hourly), round(hourly.mean(), 2))",
        ),
    ),
)
