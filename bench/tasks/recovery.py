"""Tasks whose obvious first attempt raises or reads the data wrong: the agent has to look at
the error or the file and try again (separators, bad lines, encodings, odd headers, nesting,
day-first dates, a file in a subfolder)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from . import checks
from .base import Task
from .data import PRODUCTS, choose, days, generator, money, people, write_csv, write_parquet

CITIES_WITH_ACCENTS = ("Zürich", "Genève", "Besançon", "Malmö", "Kraków")


def make_european_prices(folder: Path) -> None:
    rng = generator(901)
    size = 90
    table = pd.DataFrame(
        {
            "article": [f"{name} {i}" for i, name in enumerate(choose(rng, PRODUCTS, size))],
            "price": money(rng, 1, 900, size),
            "stock": rng.integers(0, 500, size),
        }
    )
    write_csv(table, folder / "prices_eu.csv", sep=";", decimal=",")


def check_european_mean(notebook_path: Path, folder: Path) -> None:
    prices = pd.read_csv(folder / "prices_eu.csv", sep=";", decimal=",")
    checks.require_number(
        checks.read_notebook(notebook_path), prices["price"].mean(), "the mean price"
    )


def make_transactions(folder: Path) -> None:
    rng = generator(902)
    size = 200
    amounts = money(rng, 1, 400, size)
    dates = days(rng, "2024-01-01", 90, size).dt.strftime("%Y-%m-%d")
    broken = set(rng.choice(np.arange(10, size), 6, replace=False))
    lines = ["transaction_id,date,amount"]
    for i, (date, amount) in enumerate(zip(dates, amounts, strict=True)):
        extra = ",refund,see note" if i in broken else ""
        lines.append(f"{7000 + i},{date},{amount:.2f}{extra}")
    (folder / "transactions.csv").write_text("\n".join(lines) + "\n")


def check_total_without_bad_lines(notebook_path: Path, folder: Path) -> None:
    good = pd.read_csv(folder / "transactions.csv", on_bad_lines="skip")
    checks.require_number(
        checks.read_notebook(notebook_path),
        good["amount"].sum(),
        "the total amount of the well-formed lines",
    )


def make_clients(folder: Path) -> None:
    rng = generator(903)
    size = 140
    table = pd.DataFrame(
        {
            "client": people(rng, size),
            "city": choose(rng, CITIES_WITH_ACCENTS, size),
            "revenue": money(rng, 100, 5000, size),
        }
    )
    write_csv(table, folder / "clients.csv", encoding="latin-1")


def check_city_revenue(notebook_path: Path, folder: Path) -> None:
    clients = pd.read_csv(folder / "clients.csv", encoding="latin-1")
    totals = clients.groupby("city")["revenue"].sum()
    notebook = checks.read_notebook(notebook_path)
    for city in totals.index:
        checks.require_text(notebook, city, "each city's name, accents included")
    checks.require_numbers(notebook, totals.to_dict(), "the total revenue per city")


def make_shop(folder: Path) -> None:
    rng = generator(904)
    size = 160
    table = pd.DataFrame(
        {
            "date": days(rng, "2024-02-01", 60, size).dt.strftime("%Y-%m-%d"),
            "store": choose(rng, ("Centre", "Harbour", "Station"), size),
            "revenue ": money(rng, 50, 3000, size),
            "units": rng.integers(1, 80, size),
        }
    )
    write_csv(table, folder / "shop.csv")


def check_shop_revenue(notebook_path: Path, folder: Path) -> None:
    revenue = pd.read_csv(folder / "shop.csv")["revenue "].sum()
    checks.require_number(checks.read_notebook(notebook_path), revenue, "the total revenue")


def make_nested_orders(folder: Path) -> None:
    rng = generator(905)
    names = people(rng, 40)
    countries = choose(rng, ("Spain", "Ireland", "Norway"), 40)
    orders = []
    for number in range(1, 121):
        who = int(rng.integers(0, 40))
        count = int(rng.integers(1, 5))
        items = [
            {"sku": sku, "quantity": int(quantity), "price": float(price)}
            for sku, quantity, price in zip(
                choose(rng, PRODUCTS, count),
                rng.integers(1, 6, count),
                money(rng, 2, 90, count),
                strict=True,
            )
        ]
        orders.append(
            {
                "order_id": number,
                "customer": {"name": names[who], "country": countries[who]},
                "items": items,
            }
        )
    (folder / "orders.json").write_text(json.dumps(orders, indent=1) + "\n")


def check_nested_revenue(notebook_path: Path, folder: Path) -> None:
    orders = json.loads((folder / "orders.json").read_text())
    items = pd.json_normalize(orders, "items", [["customer", "country"]])
    revenue = (items["quantity"] * items["price"]).groupby(items["customer.country"]).sum()
    checks.require_numbers(
        checks.read_notebook(notebook_path), revenue.to_dict(), "the revenue per country"
    )


def make_bookings(folder: Path) -> None:
    rng = generator(906)
    size = 260
    dates = days(rng, "2024-01-01", 240, size)
    dates.iloc[0] = pd.Timestamp("2024-03-05")  # read month first, this one still parses
    table = pd.DataFrame(
        {
            "booking": [f"B{i:04d}" for i in range(size)],
            "date": dates.dt.strftime("%d/%m/%Y"),
            "guests": rng.integers(1, 7, size),
        }
    )
    write_csv(table, folder / "bookings.csv")


def check_bookings_per_month(notebook_path: Path, folder: Path) -> None:
    dates = pd.to_datetime(pd.read_csv(folder / "bookings.csv")["date"], format="%d/%m/%Y")
    counts = dates.dt.strftime("%Y-%m").value_counts()
    checks.require_numbers(
        checks.read_notebook(notebook_path), counts.to_dict(), "the bookings per month", 0
    )


def make_metrics(folder: Path) -> None:
    rng = generator(907)
    size = 500
    table = pd.DataFrame(
        {
            "endpoint": choose(rng, ("/search", "/cart", "/login"), size),
            "latency_ms": rng.lognormal(4, 0.5, size).round(2),
        }
    )
    write_parquet(table, folder / "exports" / "2024" / "q2" / "metrics.parquet")


def check_mean_latency(notebook_path: Path, folder: Path) -> None:
    (path,) = folder.rglob("metrics.parquet")
    latency = pd.read_parquet(path)["latency_ms"].mean()
    checks.require_number(checks.read_notebook(notebook_path), latency, "the mean latency")


def make_report(folder: Path) -> None:
    rng = generator(908)
    size = 110
    table = pd.DataFrame(
        {
            "team": choose(rng, ("red", "blue", "green"), size),
            "member": people(rng, size),
            "score": rng.normal(64, 11, size).round(1),
        }
    )
    preamble = "Quarterly review export\nGenerated 2024-07-01 by the reporting tool\n\n"
    (folder / "report.csv").write_text(preamble + table.to_csv(index=False, lineterminator="\n"))


def check_report_mean(notebook_path: Path, folder: Path) -> None:
    scores = pd.read_csv(folder / "report.csv", skiprows=3)["score"]
    checks.require_number(checks.read_notebook(notebook_path), scores.mean(), "the mean score")


TASKS = (
    Task(
        name="semicolon-decimal-comma",
        topic="recovery",
        request="Print the mean price in prices_eu.csv, rounded to 2 decimals.",
        make_data=make_european_prices,
        check=check_european_mean,
        reference=(
            "import pandas as pd\nprices = pd.read_csv('prices_eu.csv', sep=';', decimal=',')\n"
            "print(round(prices['price'].mean(), 2))",
        ),
    ),
    Task(
        name="skip-bad-lines",
        topic="recovery",
        request=(
            "Print the total amount in transactions.csv, rounded to 2 decimals. A few lines of "
            "the file are malformed; leave those out."
        ),
        make_data=make_transactions,
        check=check_total_without_bad_lines,
        reference=(
            "import pandas as pd\n"
            "transactions = pd.read_csv('transactions.csv', on_bad_lines='skip')\n"
            "print(len(transactions), round(transactions['amount'].sum(), 2))",
        ),
    ),
    Task(
        name="latin1-city-revenue",
        topic="recovery",
        request="Print the total revenue per city in clients.csv, rounded to 2 decimals.",
        make_data=make_clients,
        check=check_city_revenue,
        reference=(
            "import pandas as pd\nclients = pd.read_csv('clients.csv', encoding='latin-1')\n"
            "print(clients.groupby('city')['revenue'].sum().round(2))",
        ),
    ),
    Task(
        name="column-name-trailing-space",
        topic="recovery",
        request="Print the total of the revenue column in shop.csv, rounded to 2 decimals.",
        make_data=make_shop,
        check=check_shop_revenue,
        reference=(
            "import pandas as pd\nshop = pd.read_csv('shop.csv')\n"
            "shop.columns = shop.columns.str.strip()\nprint(round(shop['revenue'].sum(), 2))",
        ),
    ),
    Task(
        name="nested-json-orders",
        topic="recovery",
        request=(
            "orders.json holds orders with their customer and items nested inside. Print the "
            "total revenue (quantity times price of every item) per customer country, rounded "
            "to 2 decimals."
        ),
        make_data=make_nested_orders,
        check=check_nested_revenue,
        reference=(
            "import json\nimport pandas as pd\n"
            "with open('orders.json') as file:\n    orders = json.load(file)\n"
            "items = pd.json_normalize(orders, 'items', [['customer', 'country']])\n"
            "items['revenue'] = items['quantity'] * items['price']\n"
            "print(items.groupby('customer.country')['revenue'].sum().round(2))",
        ),
    ),
    Task(
        name="day-first-dates",
        topic="recovery",
        request="Print the number of bookings per month in bookings.csv.",
        make_data=make_bookings,
        check=check_bookings_per_month,
        reference=(
            "import pandas as pd\nbookings = pd.read_csv('bookings.csv')\n"
            "bookings['date'] = pd.to_datetime(bookings['date'], dayfirst=True)\n"
            "print(bookings['date'].dt.to_period('M').value_counts().sort_index())",
        ),
    ),
    Task(
        name="parquet-in-subfolder",
        topic="recovery",
        request="Print the mean latency_ms in metrics.parquet, rounded to 2 decimals.",
        make_data=make_metrics,
        check=check_mean_latency,
        reference=(
            "import glob\nimport pandas as pd\n"
            "(path,) = glob.glob('**/metrics.parquet', recursive=True)\n"
            "print(path, round(pd.read_parquet(path)['latency_ms'].mean(), 2))",
        ),
    ),
    Task(
        name="header-after-preamble",
        topic="recovery",
        request="Print the mean score in report.csv, rounded to 2 decimals.",
        make_data=make_report,
        check=check_report_mean,
        reference=(
            "import pandas as pd\nreport = pd.read_csv('report.csv', skiprows=3)\n"
            "print(round(report['score'].mean(), 2))",
        ),
    ),
)
