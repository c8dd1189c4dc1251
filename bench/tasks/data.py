"""Seeded data for the tasks: the same files, byte for byte, every time they are made.

Messiness is added on purpose and from the same seed: mixed date formats, stray whitespace and
case, numbers written with thousands separators or a currency sign, repeated keys, gaps.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

REGIONS = ("North", "South", "East", "West")
PRODUCTS = ("Widget", "Gadget", "Doohickey", "Gizmo", "Sprocket")
CITIES = ("Lyon", "Porto", "Turin", "Ghent", "Leeds", "Graz")
FIRST_NAMES = ("Ana", "Ben", "Chloe", "Dev", "Elif", "Femi", "Greta", "Hugo", "Iris", "Jonas")
LAST_NAMES = ("Alves", "Brandt", "Costa", "Duval", "Eriksen", "Fischer", "Garcia", "Horvat")


def generator(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def write_csv(table: pd.DataFrame, path: Path, **options: object) -> None:
    """A CSV with Unix line ends and no index, whatever the platform."""
    table.to_csv(path, index=False, lineterminator="\n", **options)


def write_parquet(table: pd.DataFrame, path: Path) -> None:
    """A Parquet file whose bytes depend on the data only (no creator version, no timestamps)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        pa.Table.from_pandas(table, preserve_index=False).replace_schema_metadata(None),
        path,
        compression="snappy",
    )


def choose(rng: np.random.Generator, options: Sequence[str], size: int) -> list[str]:
    return [options[i] for i in rng.integers(0, len(options), size)]


def money(rng: np.random.Generator, low: float, high: float, size: int) -> np.ndarray:
    """Amounts in cents' precision."""
    return np.round(rng.uniform(low, high, size), 2)


def days(rng: np.random.Generator, start: str, span_days: int, size: int) -> pd.Series:
    """Random dates within span_days of start, in no order."""
    offsets = pd.to_timedelta(rng.integers(0, span_days, size), unit="D")
    return pd.Series(pd.Timestamp(start) + offsets)


def mixed_dates(rng: np.random.Generator, dates: pd.Series) -> list[str]:
    """Dates written in one of several unambiguous formats each (ISO, "Mar 5, 2024", ...)."""
    formats = ("%Y-%m-%d", "%d %b %Y", "%B %d, %Y", "%Y/%m/%d")
    picks = rng.integers(0, len(formats), len(dates))
    return [date.strftime(formats[i]) for date, i in zip(dates, picks, strict=True)]


def stray_case(rng: np.random.Generator, labels: Sequence[str]) -> list[str]:
    """Labels as typed by hand: some upper or lower case, some with spaces around them."""
    spellings = (str, str.upper, str.lower, lambda s: f" {s}", lambda s: f"{s}  ")
    picks = rng.integers(0, len(spellings), len(labels))
    return [spellings[i](label) for label, i in zip(labels, picks, strict=True)]


def with_thousands(values: np.ndarray, currency: str = "") -> list[str]:
    """Numbers as text with a thousands separator and an optional currency sign: "$1,234.50"."""
    return [f"{currency}{value:,.2f}" for value in values]


def people(rng: np.random.Generator, size: int) -> list[str]:
    first = choose(rng, FIRST_NAMES, size)
    last = choose(rng, LAST_NAMES, size)
    return [f"{a} {b}" for a, b in zip(first, last, strict=True)]
