"""Summaries by group: totals, the top of a ranking, a pivot table, averages of durations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import checks
from .base import CheckFailed, Task
from .data import PRODUCTS, choose, days, generator, money, people, write_csv
from .smoke import make_sales

SUBJECTS = ("math", "physics", "history")


def check_region_totals(notebook_path: Path, folder: Path) -> None:
    totals = pd.read_csv(folder / "sales.csv").groupby("region")["amount"].sum()
    checks.require_numbers(
        checks.read_notebook(notebook_path), totals.to_dict(), "the total sales per region"
    )


def make_order_lines(folder: Path) -> None:
    rng = generator(402)
    size = 300
    catalogue = dict(zip(PRODUCTS, money(rng, 3, 60, len(PRODUCTS)), strict=True))
    products = choose(rng, PRODUCTS, size)
    table = pd.DataFrame(
        {
            "order_id": rng.integers(9000, 9150, size),
            "product": products,
            "quantity": rng.integers(1, 12, size),
            "unit_price": [catalogue[name] for name in products],
        }
    )
    write_csv(table, folder / "order_lines.csv")


def check_top_product(notebook_path: Path, folder: Path) -> None:
    lines = pd.read_csv(folder / "order_lines.csv")
    revenue = (lines["quantity"] * lines["unit_price"]).groupby(lines["product"]).sum()
    notebook = checks.read_notebook(notebook_path)
    checks.require_text(notebook, revenue.idxmax(), "the product with the most revenue")
    checks.require_number(notebook, revenue.max(), "its revenue")


def make_grades(folder: Path) -> None:
    rng = generator(403)
    size = 360
    table = pd.DataFrame(
        {
            "student": people(rng, size),
            "class": choose(rng, ("7A", "7B", "8A", "8B"), size),
            "subject": choose(rng, SUBJECTS, size),
            "score": rng.integers(35, 101, size),
        }
    )
    write_csv(table, folder / "grades.csv")


def check_class_averages(notebook_path: Path, folder: Path) -> None:
    grades = pd.read_csv(folder / "grades.csv")
    expected = grades.pivot_table(index="class", columns="subject", values="score", aggfunc="mean")
    written = checks.read_written(folder, "class_averages.csv")
    checks.require_columns(written, SUBJECTS, "class_averages.csv")
    for subject in SUBJECTS:
        checks.require_numeric(written, subject, "class_averages.csv")
    key = "class" if "class" in written.columns else written.columns[0]
    written = written.set_index(written[key].astype(str))
    if sorted(written.index) != sorted(expected.index):
        raise CheckFailed(
            f"class_averages.csv should have one row per class ({', '.join(expected.index)}); "
            f"its rows are {', '.join(written.index)}"
        )
    for subject in SUBJECTS:
        for group, mean in expected[subject].items():
            checks.require_close(
                written.loc[group, subject], mean, f"{group}'s average in {subject}", 0.051
            )


def make_orders_by_customer(folder: Path) -> None:
    rng = generator(404)
    names = list(dict.fromkeys(people(rng, 80)))[:30]
    counts = [19, 17, 15, 14, 12, *rng.integers(1, 11, len(names) - 5)]
    customers = [name for name, count in zip(names, counts, strict=True) for _ in range(count)]
    table = pd.DataFrame(
        {
            "order_id": range(70001, 70001 + len(customers)),
            "customer": customers,
            "total": money(rng, 8, 300, len(customers)),
        }
    ).sample(frac=1, random_state=404)
    write_csv(table, folder / "customer_orders.csv")


def check_top_customers(notebook_path: Path, folder: Path) -> None:
    counts = pd.read_csv(folder / "customer_orders.csv")["customer"].value_counts()
    top = counts.head(5)
    notebook = checks.read_notebook(notebook_path)
    for name in top.index:
        checks.require_text(notebook, name, "each of the top 5 customers")
    checks.require_numbers(notebook, top.to_dict(), "the number of orders of the top customers", 0)


def make_shipments(folder: Path) -> None:
    rng = generator(405)
    size = 250
    shipped = days(rng, "2024-02-01", 120, size)
    carrier = np.array(choose(rng, ("Fastly", "Parcelo", "Trucko"), size))
    delay = rng.poisson(np.select([carrier == "Fastly", carrier == "Parcelo"], [2, 4], 6)) + 1
    table = pd.DataFrame(
        {
            "shipment": [f"SH{i:05d}" for i in range(size)],
            "carrier": carrier,
            "shipped": shipped.dt.strftime("%Y-%m-%d"),
            "delivered": (shipped + pd.to_timedelta(delay, unit="D")).dt.strftime("%Y-%m-%d"),
        }
    )
    write_csv(table, folder / "shipments.csv")


def check_delivery_days(notebook_path: Path, folder: Path) -> None:
    shipments = pd.read_csv(folder / "shipments.csv", parse_dates=["shipped", "delivered"])
    took = (shipments["delivered"] - shipments["shipped"]).dt.days
    means = took.groupby(shipments["carrier"]).mean()
    checks.require_numbers(
        checks.read_notebook(notebook_path), means.to_dict(), "the average delivery days"
    )


TASKS = (
    Task(
        name="sales-total-by-region",
        topic="groupby",
        request="Print the total amount of sales per region in sales.csv, rounded to 2 decimals.",
        make_data=make_sales,
        check=check_region_totals,
        reference=(
            "import pandas as pd\nsales = pd.read_csv('sales.csv')\n"
            "print(sales.groupby('region')['amount'].sum().round(2))",
        ),
    ),
    Task(
        name="top-product-by-revenue",
        topic="groupby",
        request=(
            "Which product brought in the most revenue (quantity times unit_price) in "
            "order_lines.csv? Print its name and its revenue, rounded to 2 decimals."
        ),
        make_data=make_order_lines,
        check=check_top_product,
        reference=(
            "import pandas as pd\nlines = pd.read_csv('order_lines.csv')\n"
            "lines['revenue'] = lines['quantity'] * lines['unit_price']\n"
            "revenue = lines.groupby('product')['revenue'].sum()\n"
            "print(revenue.idxmax(), round(revenue.max(), 2))",
        ),
    ),
    Task(
        name="pivot-class-averages",
        topic="groupby",
        request=(
            "From grades.csv, make a table of the average score with one row per class and one "
            "column per subject, rounded to 1 decimal, and save it as class_averages.csv."
        ),
        make_data=make_grades,
        check=check_class_averages,
        reference=(
            "import pandas as pd\ngrades = pd.read_csv('grades.csv')\n"
            "table = grades.pivot_table(index='class', columns='subject', values='score',"
            " aggfunc='mean').round(1)\n"
            "table.to_csv('class_averages.csv')\ntable",
        ),
    ),
    Task(
        name="top-customers-by-orders",
        topic="groupby",
        request=(
            "Print the 5 customers with the most orders in customer_orders.csv, with how many "
            "orders each of them placed."
        ),
        make_data=make_orders_by_customer,
        check=check_top_customers,
        reference=(
            "import pandas as pd\norders = pd.read_csv('customer_orders.csv')\n"
            "print(orders['customer'].value_counts().head(5))",
        ),
    ),
    Task(
        name="delivery-days-by-carrier",
        topic="groupby",
        request=(
            "Using shipments.csv, print the average number of days from shipped to delivered "
            "for each carrier, rounded to 2 decimals."
        ),
        make_data=make_shipments,
        check=check_delivery_days,
        reference=(
            "import pandas as pd\n"
            "shipments = pd.read_csv('shipments.csv', parse_dates=['shipped', 'delivered'])\n"
            "shipments['days'] = (shipments['delivered'] - shipments['shipped']).dt.days\n"
            "print(shipments.groupby('carrier')['days'].mean().round(2))",
        ),
    ),
)
