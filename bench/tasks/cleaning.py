"""Cleaning what people are given: mixed date formats, gaps, repeated keys, stray spelling,
numbers written as text. Each checker compares with the clean data the mess was made from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import checks
from .base import CheckFailed, Task
from .data import (
    CITIES,
    PRODUCTS,
    choose,
    days,
    generator,
    mixed_dates,
    money,
    people,
    stray_case,
    with_thousands,
    write_csv,
)


def true_events() -> pd.DataFrame:
    """The events as they were: events.csv writes their dates in mixed formats."""
    rng = generator(301)
    size = 120
    return pd.DataFrame(
        {
            "event_id": range(1, size + 1),
            "kind": choose(rng, ("talk", "workshop", "meetup"), size),
            "date": days(rng, "2023-06-01", 400, size),
            "attendees": rng.integers(5, 300, size),
        }
    )


def make_events(folder: Path) -> None:
    events = true_events()
    events["date"] = mixed_dates(generator(302), events["date"])
    write_csv(events, folder / "events.csv")


def check_clean_dates(notebook_path: Path, folder: Path) -> None:
    truth = true_events()
    clean = checks.read_written(folder, "events_clean.csv")
    checks.require_columns(clean, ("event_id", "date", "attendees"), "events_clean.csv")
    checks.require_rows(clean, len(truth), "events_clean.csv")
    both = checks.beside(truth, clean, "event_id", "events_clean.csv")
    expected = both["date"].dt.strftime("%Y-%m-%d")
    wrong = both[both["date_written"].astype(str) != expected]
    if len(wrong):
        first = wrong.iloc[0]
        raise CheckFailed(
            f"{len(wrong)} dates in events_clean.csv are not the right YYYY-MM-DD date, e.g. "
            f"event {first['event_id']}: {first['date_written']} instead of "
            f"{first['date']:%Y-%m-%d}"
        )


def make_patients(folder: Path) -> None:
    rng = generator(303)
    size = 180
    age = rng.integers(18, 90, size).astype(float)
    weight = rng.normal(74, 12, size).round(1)
    age[rng.choice(size, 23, replace=False)] = np.nan
    weight[rng.choice(size, 14, replace=False)] = np.nan
    table = pd.DataFrame(
        {
            "patient_id": [f"P{i:04d}" for i in range(size)],
            "ward": choose(rng, ("A", "B", "C"), size),
            "age": age,
            "weight": weight,
        }
    )
    write_csv(table, folder / "patients.csv")


def check_filled_patients(notebook_path: Path, folder: Path) -> None:
    patients = pd.read_csv(folder / "patients.csv")
    expected = patients.assign(age=patients["age"].fillna(patients["age"].median()))
    expected = expected.dropna(subset=["weight"])
    clean = checks.read_written(folder, "patients_clean.csv")
    checks.require_columns(clean, ("patient_id", "age", "weight"), "patients_clean.csv")
    checks.require_rows(clean, len(expected), "patients_clean.csv")
    checks.require_numeric(clean, "age", "patients_clean.csv")
    if clean["age"].isna().any() or clean["weight"].isna().any():
        raise CheckFailed("patients_clean.csv still has missing ages or weights")
    both = checks.beside(expected, clean, "patient_id", "patients_clean.csv")
    wrong = both[~np.isclose(both["age"], both["age_written"])]
    if len(wrong):
        raise CheckFailed(
            f"{len(wrong)} ages in patients_clean.csv differ from the data with missing ages set "
            f"to the median ({patients['age'].median()}), e.g. {wrong['patient_id'].iloc[0]}"
        )


def make_customers(folder: Path) -> None:
    rng = generator(304)
    size = 160
    names = people(rng, size)
    rows = [
        {
            "customer_id": 1000 + i,
            "name": names[i],
            "email": f"{names[i].lower().replace(' ', '.')}.{version}@example.com",
            "updated_at": f"{day:%Y-%m-%d}",
        }
        for i in range(size)
        for version, day in enumerate(
            sorted(days(rng, "2022-01-01", 700, int(rng.choice((1, 1, 1, 2, 3)))).unique())
        )
    ]
    table = pd.DataFrame(rows).sample(frac=1, random_state=304)
    write_csv(table, folder / "customers.csv")


def check_latest_customers(notebook_path: Path, folder: Path) -> None:
    customers = pd.read_csv(folder / "customers.csv")
    latest = customers.sort_values("updated_at").groupby("customer_id").tail(1)
    clean = checks.read_written(folder, "customers_latest.csv")
    checks.require_columns(clean, ("customer_id", "email"), "customers_latest.csv")
    checks.require_unique(clean, "customer_id", "customers_latest.csv")
    checks.require_rows(clean, len(latest), "customers_latest.csv")
    both = checks.beside(latest, clean, "customer_id", "customers_latest.csv")
    stale = both[both["email"] != both["email_written"]]
    if len(stale):
        raise CheckFailed(
            f"{len(stale)} customers in customers_latest.csv are not their most recently updated "
            f"row, e.g. customer {stale['customer_id'].iloc[0]}"
        )


def true_cities(size: int) -> list[str]:
    """The cities as they are spelled: responses.csv types them carelessly."""
    return choose(generator(305), CITIES, size)


def make_responses(folder: Path) -> None:
    size = 240
    rng = generator(306)
    table = pd.DataFrame(
        {
            "response_id": range(1, size + 1),
            "city": stray_case(rng, true_cities(size)),
            "rating": rng.integers(1, 6, size),
        }
    )
    write_csv(table, folder / "responses.csv")


def check_city_counts(notebook_path: Path, folder: Path) -> None:
    counts = pd.Series(true_cities(len(pd.read_csv(folder / "responses.csv")))).value_counts()
    notebook = checks.read_notebook(notebook_path)
    for city in counts.index:
        checks.require_text(notebook, city, "each city's name")
    checks.require_numbers(notebook, counts.to_dict(), "the responses per city", 0)


def true_products() -> pd.DataFrame:
    """The products with numeric prices: products.csv writes them as "$1,234.50"."""
    rng = generator(307)
    size = 70
    return pd.DataFrame(
        {
            "product": [f"{name}-{i:02d}" for i, name in enumerate(choose(rng, PRODUCTS, size))],
            "price": money(rng, 4, 2600, size),
            "quantity": rng.integers(0, 40, size),
        }
    )


def make_products(folder: Path) -> None:
    products = true_products()
    products["price"] = with_thousands(products["price"].to_numpy(), currency="$")
    write_csv(products, folder / "products.csv")


def check_stock_value(notebook_path: Path, folder: Path) -> None:
    products = true_products()
    value = (products["price"] * products["quantity"]).sum()
    checks.require_number(checks.read_notebook(notebook_path), value, "the total stock value")


def true_towns() -> pd.DataFrame:
    """The towns with numeric populations: towns.csv writes them as "1,234,567"."""
    rng = generator(308)
    size = 90
    return pd.DataFrame(
        {
            "town": [f"Town {i:03d}" for i in range(size)],
            "country": choose(rng, ("FR", "PT", "IT", "BE", "AT"), size),
            "population": rng.integers(800, 3_500_000, size),
        }
    )


def make_towns(folder: Path) -> None:
    towns = true_towns()
    towns["population"] = [f"{n:,}" for n in towns["population"]]
    write_csv(towns, folder / "towns.csv")


def check_town_population(notebook_path: Path, folder: Path) -> None:
    truth = true_towns()
    clean = checks.read_written(folder, "towns_clean.csv")
    checks.require_columns(clean, ("town", "population"), "towns_clean.csv")
    checks.require_numeric(clean, "population", "towns_clean.csv")
    both = checks.beside(truth, clean, "town", "towns_clean.csv")
    wrong = both[both["population"] != both["population_written"]]
    if len(wrong):
        raise CheckFailed(
            f"{len(wrong)} populations in towns_clean.csv are not the numbers in towns.csv, e.g. "
            f"{wrong['town'].iloc[0]}"
        )
    total = truth["population"].sum()
    checks.require_number(checks.read_notebook(notebook_path), total, "the total population", 0)


TASKS = (
    Task(
        name="clean-mixed-dates",
        topic="cleaning",
        request=(
            "The date column in events.csv mixes several date formats. Turn it into real dates "
            "and save the table to events_clean.csv with the dates written as YYYY-MM-DD."
        ),
        make_data=make_events,
        check=check_clean_dates,
        reference=(
            "import pandas as pd\nevents = pd.read_csv('events.csv')\n"
            "events['date'] = pd.to_datetime(events['date'], format='mixed')\n"
            "events.to_csv('events_clean.csv', index=False, date_format='%Y-%m-%d')\n"
            "events.head()",
        ),
    ),
    Task(
        name="fill-missing-values",
        topic="cleaning",
        request=(
            "In patients.csv, fill the missing ages with the median age, then drop the rows "
            "that have no weight, and save the result as patients_clean.csv."
        ),
        make_data=make_patients,
        check=check_filled_patients,
        reference=(
            "import pandas as pd\npatients = pd.read_csv('patients.csv')\n"
            "patients['age'] = patients['age'].fillna(patients['age'].median())\n"
            "patients = patients.dropna(subset=['weight'])\n"
            "patients.to_csv('patients_clean.csv', index=False)\nprint(len(patients))",
        ),
    ),
    Task(
        name="dedupe-customers",
        topic="cleaning",
        request=(
            "customers.csv has several rows for some customers. Keep only the most recently "
            "updated row of each customer_id and save the result as customers_latest.csv."
        ),
        make_data=make_customers,
        check=check_latest_customers,
        reference=(
            "import pandas as pd\n"
            "customers = pd.read_csv('customers.csv', parse_dates=['updated_at'])\n"
            "latest = customers.sort_values('updated_at')"
            ".drop_duplicates('customer_id', keep='last')\n"
            "latest.to_csv('customers_latest.csv', index=False)\n"
            "print(len(customers), len(latest))",
        ),
    ),
    Task(
        name="normalize-city-labels",
        topic="cleaning",
        request=(
            "The city names in responses.csv are typed inconsistently (extra spaces, different "
            "capitalisation). Clean them up and print the number of responses per city."
        ),
        make_data=make_responses,
        check=check_city_counts,
        reference=(
            "import pandas as pd\nresponses = pd.read_csv('responses.csv')\n"
            "responses['city'] = responses['city'].str.strip().str.title()\n"
            "print(responses['city'].value_counts())",
        ),
    ),
    Task(
        name="parse-currency-prices",
        topic="cleaning",
        request=(
            'The price column of products.csv is text like "$1,234.50". Convert it to numbers '
            "and print the total stock value (price times quantity), rounded to 2 decimals."
        ),
        make_data=make_products,
        check=check_stock_value,
        reference=(
            "import pandas as pd\nproducts = pd.read_csv('products.csv')\n"
            "products['price'] = (\n"
            "    products['price'].str.replace(r'[$,]', '', regex=True).astype(float))\n"
            "print(round((products['price'] * products['quantity']).sum(), 2))",
        ),
    ),
    Task(
        name="thousands-separators",
        topic="cleaning",
        request=(
            "In towns.csv the population is written with thousands separators. Save a copy with "
            "population as a whole number to towns_clean.csv, and print the total population."
        ),
        make_data=make_towns,
        check=check_town_population,
        reference=(
            "import pandas as pd\ntowns = pd.read_csv('towns.csv', thousands=',')\n"
            "towns.to_csv('towns_clean.csv', index=False)\nprint(towns['population'].sum())",
        ),
    ),
)
