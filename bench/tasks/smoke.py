"""The three easiest tasks, one short step each: CI runs them with a real tiny model."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import checks
from .base import Task
from .data import PRODUCTS, REGIONS, choose, days, generator, money, write_csv


def make_sales(folder: Path) -> None:
    rng = generator(101)
    size = 137
    table = pd.DataFrame(
        {
            "date": days(rng, "2024-01-01", 180, size).dt.strftime("%Y-%m-%d"),
            "region": choose(rng, REGIONS, size),
            "product": choose(rng, PRODUCTS, size),
            "amount": money(rng, 5, 500, size),
        }
    )
    write_csv(table, folder / "sales.csv")


def check_sales_rows(notebook_path: Path, folder: Path) -> None:
    rows = len(pd.read_csv(folder / "sales.csv"))
    checks.require_number(checks.read_notebook(notebook_path), rows, "the number of rows", 0)


def make_items(folder: Path) -> None:
    rng = generator(102)
    size = 48
    table = pd.DataFrame(
        {
            "item": [f"item-{i:03d}" for i in range(size)],
            "category": choose(rng, ("tools", "toys", "books"), size),
            "price": money(rng, 3, 120, size),
        }
    )
    write_csv(table, folder / "items.csv")


def check_mean_price(notebook_path: Path, folder: Path) -> None:
    mean = pd.read_csv(folder / "items.csv")["price"].mean()
    checks.require_number(checks.read_notebook(notebook_path), mean, "the mean price", 2)


def make_orders(folder: Path) -> None:
    rng = generator(103)
    size = 85
    table = pd.DataFrame(
        {
            "order_id": range(5001, 5001 + size),
            "customer": [f"C{n:03d}" for n in rng.integers(1, 40, size)],
            "amount": money(rng, 10, 900, size),
        }
    )
    write_csv(table, folder / "orders.csv")


def check_total_amount(notebook_path: Path, folder: Path) -> None:
    total = pd.read_csv(folder / "orders.csv")["amount"].sum()
    checks.require_number(checks.read_notebook(notebook_path), total, "the total amount", 2)


TASKS = (
    Task(
        name="count-sales-rows",
        topic="loading",
        request="Load sales.csv and print how many rows it has.",
        make_data=make_sales,
        check=check_sales_rows,
        reference=("import pandas as pd\nsales = pd.read_csv('sales.csv')\nprint(len(sales))",),
        smoke=True,
    ),
    Task(
        name="mean-item-price",
        topic="loading",
        request="Print the mean of the price column of items.csv, rounded to 2 decimals.",
        make_data=make_items,
        check=check_mean_price,
        reference=(
            "import pandas as pd\nitems = pd.read_csv('items.csv')\n"
            "print(round(items['price'].mean(), 2))",
        ),
        smoke=True,
    ),
    Task(
        name="total-order-amount",
        topic="loading",
        request="Compute the total of the amount column in orders.csv and print it.",
        make_data=make_orders,
        check=check_total_amount,
        reference=(
            "import pandas as pd\norders = pd.read_csv('orders.csv')\n"
            "print(orders['amount'].sum())",
        ),
        smoke=True,
    ),
)
