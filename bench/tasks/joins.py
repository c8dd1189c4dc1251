"""Combining tables: a plain join, keys written differently on each side, keys with no match."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from . import checks
from .base import CheckFailed, Task
from .data import generator, money, people, stray_case, write_csv

COUNTRIES = ("France", "Portugal", "Italy", "Belgium", "Austria")


def make_customers_and_orders(folder: Path, seed: int, orphans: int) -> None:
    """customers.csv, and orders.csv whose last `orphans` customer ids are in no customer row."""
    rng = generator(seed)
    customers = 60
    table = pd.DataFrame(
        {
            "customer_id": range(1, customers + 1),
            "name": people(rng, customers),
            "country": [COUNTRIES[i] for i in rng.integers(0, len(COUNTRIES), customers)],
        }
    )
    write_csv(table, folder / "customers.csv")
    size = 320
    ids = rng.integers(1, customers + 1, size)
    ids[rng.choice(size, orphans, replace=False)] = rng.integers(customers + 1, 99, orphans)
    orders = pd.DataFrame(
        {
            "order_id": range(30001, 30001 + size),
            "customer_id": ids,
            "amount": money(rng, 5, 800, size),
        }
    )
    write_csv(orders, folder / "orders.csv")


def make_country_orders(folder: Path) -> None:
    make_customers_and_orders(folder, seed=501, orphans=0)


def check_country_totals(notebook_path: Path, folder: Path) -> None:
    orders = pd.read_csv(folder / "orders.csv")
    joined = orders.merge(pd.read_csv(folder / "customers.csv"), on="customer_id")
    totals = joined.groupby("country")["amount"].sum()
    checks.require_numbers(
        checks.read_notebook(notebook_path), totals.to_dict(), "the total order amount per country"
    )


def make_orphan_orders(folder: Path) -> None:
    make_customers_and_orders(folder, seed=502, orphans=17)


def check_orphans(notebook_path: Path, folder: Path) -> None:
    orders = pd.read_csv(folder / "orders.csv")
    known = pd.read_csv(folder / "customers.csv")["customer_id"]
    expected = set(orders.loc[~orders["customer_id"].isin(known), "order_id"])
    written = checks.read_written(folder, "orphans.csv")
    checks.require_columns(written, ("order_id",), "orphans.csv")
    found = set(written["order_id"])
    if found != expected:
        raise CheckFailed(
            f"orphans.csv should list the {len(expected)} orders with an unknown customer; "
            f"{len(found - expected)} of its ids are not such orders and "
            f"{len(expected - found)} such orders are missing"
        )


def true_stock() -> pd.DataFrame:
    """Stock and prices by sku, spelled alike: stock.csv spells its skus carelessly."""
    rng = generator(503)
    size = 80
    return pd.DataFrame(
        {
            "sku": [f"AB-{n:03d}" for n in rng.choice(900, size, replace=False)],
            "quantity": rng.integers(0, 60, size),
            "price": money(rng, 2, 250, size),
        }
    )


def make_stock(folder: Path) -> None:
    stock = true_stock()
    rng = generator(504)
    write_csv(stock[["sku", "price"]], folder / "prices.csv")
    messy = stock[["sku", "quantity"]].assign(sku=stray_case(rng, stock["sku"]))
    write_csv(messy.sample(frac=1, random_state=504), folder / "stock.csv")


def check_stock_value(notebook_path: Path, folder: Path) -> None:
    stock = true_stock()
    value = (stock["quantity"] * stock["price"]).sum()
    checks.require_number(checks.read_notebook(notebook_path), value, "the total stock value")


def make_employees(folder: Path) -> None:
    rng = generator(505)
    size = 120
    table = pd.DataFrame(
        {
            "employee_id": range(1, size + 1),
            "name": people(rng, size),
            "department": [("Sales", "Ops", "R&D", "Finance")[i] for i in rng.integers(0, 4, size)],
        }
    )
    write_csv(table, folder / "employees.csv")
    salaries = [
        {"employee": f"E-{i:04d}", "salary": int(salary)}
        for i, salary in zip(range(1, size + 1), rng.integers(300, 900, size) * 100, strict=True)
    ]
    (folder / "salaries.json").write_text(json.dumps(salaries, indent=1) + "\n")


def check_department_salaries(notebook_path: Path, folder: Path) -> None:
    employees = pd.read_csv(folder / "employees.csv")
    salaries = pd.read_json(folder / "salaries.json")
    salaries["employee_id"] = salaries["employee"].str.removeprefix("E-").astype(int)
    means = employees.merge(salaries, on="employee_id").groupby("department")["salary"].mean()
    checks.require_numbers(
        checks.read_notebook(notebook_path), means.to_dict(), "the average salary per department"
    )


TASKS = (
    Task(
        name="revenue-by-country",
        topic="join",
        request=(
            "Join orders.csv with customers.csv and print the total order amount per country, "
            "rounded to 2 decimals."
        ),
        make_data=make_country_orders,
        check=check_country_totals,
        reference=(
            "import pandas as pd\norders = pd.read_csv('orders.csv')\n"
            "customers = pd.read_csv('customers.csv')\n"
            "joined = orders.merge(customers, on='customer_id')\n"
            "print(joined.groupby('country')['amount'].sum().round(2))",
        ),
    ),
    Task(
        name="orders-without-customer",
        topic="join",
        request=(
            "Some orders in orders.csv have a customer_id that is not in customers.csv. Save the "
            "order_id of those orders to orphans.csv, in a column named order_id."
        ),
        make_data=make_orphan_orders,
        check=check_orphans,
        reference=(
            "import pandas as pd\norders = pd.read_csv('orders.csv')\n"
            "customers = pd.read_csv('customers.csv')\n"
            "orphans = orders[~orders['customer_id'].isin(customers['customer_id'])]\n"
            "orphans[['order_id']].to_csv('orphans.csv', index=False)\nprint(len(orphans))",
        ),
    ),
    Task(
        name="sku-mismatch-stock-value",
        topic="join",
        request=(
            "Join stock.csv with prices.csv on sku and print the total value of the stock "
            "(quantity times price), rounded to 2 decimals. The sku codes are not typed the "
            "same way in both files."
        ),
        make_data=make_stock,
        check=check_stock_value,
        reference=(
            "import pandas as pd\nstock = pd.read_csv('stock.csv')\n"
            "prices = pd.read_csv('prices.csv')\n"
            "stock['sku'] = stock['sku'].str.strip().str.upper()\n"
            "joined = stock.merge(prices, on='sku', validate='one_to_one')\n"
            "print(len(joined), round((joined['quantity'] * joined['price']).sum(), 2))",
        ),
    ),
    Task(
        name="salaries-by-department",
        topic="join",
        request=(
            "Match the employees in employees.csv with their salaries in salaries.json and print "
            "the average salary per department, rounded to 2 decimals."
        ),
        make_data=make_employees,
        check=check_department_salaries,
        reference=(
            "import pandas as pd\nemployees = pd.read_csv('employees.csv')\n"
            "salaries = pd.read_json('salaries.json')\n"
            "salaries['employee_id'] = salaries['employee'].str.removeprefix('E-').astype(int)\n"
            "joined = employees.merge(salaries, on='employee_id')\n"
            "print(joined.groupby('department')['salary'].mean().round(2))",
        ),
    ),
)
