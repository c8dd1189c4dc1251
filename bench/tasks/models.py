"""Simple models with a held-out test set. The data comes from a known rule plus noise, so the
score a sound model can reach follows from the data; the checker wants a printed score near it
(a broken model lands below, one scored on the rows it learned from often above) and a split in
the code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import checks
from .base import Task
from .data import generator, write_csv

#: How far below the best reachable score a sound model's test score may fall, and above it
#: a lucky split may land (test sets of 200 to 300 rows).
BELOW, ABOVE = 0.12, 0.07


def houses() -> pd.DataFrame:
    """Houses priced by a linear rule plus noise, so a linear model fits them well, not fully."""
    rng = generator(801)
    size = 800
    table = pd.DataFrame(
        {
            "size_m2": rng.integers(40, 221, size),
            "rooms": rng.integers(1, 7, size),
            "age_years": rng.integers(0, 81, size),
        }
    )
    rule = 2800 * table["size_m2"] + 9000 * table["rooms"] - 700 * table["age_years"]
    return table.assign(price=(rule + 60_000 + rng.normal(0, 60_000, size)).round(-2))


def make_houses(folder: Path) -> None:
    write_csv(houses(), folder / "houses.csv")


def check_house_r2(notebook_path: Path, folder: Path) -> None:
    table = pd.read_csv(folder / "houses.csv")
    features = np.column_stack([table[["size_m2", "rooms", "age_years"]], np.ones(len(table))])
    fitted = features @ np.linalg.lstsq(features, table["price"], rcond=None)[0]
    r2 = (
        1
        - ((table["price"] - fitted) ** 2).sum()
        / ((table["price"] - table["price"].mean()) ** 2).sum()
    )
    notebook = checks.read_notebook(notebook_path)
    checks.require_split(notebook)
    checks.require_score(
        notebook, round(r2 - BELOW, 2), round(min(r2 + ABOVE, 1.0), 2), "the R² on the test set"
    )


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def churn() -> tuple[pd.DataFrame, np.ndarray]:
    """Customers and whether they left; and each one's true chance of leaving."""
    rng = generator(802)
    size = 1000
    table = pd.DataFrame(
        {
            "tenure_months": rng.integers(1, 73, size),
            "monthly_fee": rng.uniform(20, 120, size).round(2),
            "support_calls": rng.poisson(2.5, size),
        }
    )
    chance = sigmoid(
        -0.08 * table["tenure_months"]
        + 0.035 * table["monthly_fee"]
        + 0.6 * table["support_calls"]
        - 1.6
    ).to_numpy()
    return table.assign(churned=(rng.random(size) < chance).astype(int)), chance


def make_churn(folder: Path) -> None:
    write_csv(churn()[0], folder / "churn.csv")


def require_accuracy_near_best(notebook_path: Path, chance: np.ndarray) -> None:
    """A test accuracy near the best any model can expect (always guessing the likelier side)."""
    best = float(np.maximum(chance, 1 - chance).mean())
    notebook = checks.read_notebook(notebook_path)
    checks.require_split(notebook)
    checks.require_score(
        notebook, round(best - BELOW, 2), round(min(best + ABOVE, 1.0), 2), "the test accuracy"
    )


def check_churn_accuracy(notebook_path: Path, folder: Path) -> None:
    require_accuracy_near_best(notebook_path, churn()[1])


def subscriptions() -> tuple[pd.DataFrame, np.ndarray]:
    """Subscriptions (some usage hours not recorded) and each one's true chance of upgrading."""
    rng = generator(803)
    size = 1000
    plans = np.array(("basic", "pro", "team"))[rng.integers(0, 3, size)]
    seats = rng.integers(1, 30, size)
    usage = rng.gamma(4, 10, size).round(1)
    plan_effect = np.select([plans == "basic", plans == "pro"], [-2.2, 0.4], 1.8)
    chance = sigmoid(plan_effect + 0.08 * (usage - 40) + 0.06 * (seats - 15))
    recorded = np.where(rng.random(size) < 0.08, np.nan, usage)
    table = pd.DataFrame(
        {
            "plan": plans,
            "seats": seats,
            "usage_hours": recorded,
            "upgraded": (rng.random(size) < chance).astype(int),
        }
    )
    return table, chance


def make_subscriptions(folder: Path) -> None:
    write_csv(subscriptions()[0], folder / "subscriptions.csv")


def check_upgrade_accuracy(notebook_path: Path, folder: Path) -> None:
    require_accuracy_near_best(notebook_path, subscriptions()[1])


TASKS = (
    Task(
        name="house-price-regression",
        topic="model",
        request=(
            "Fit a linear regression that predicts price from the other columns of houses.csv. "
            "Keep 25% of the rows as a test set and print the R² score on it."
        ),
        make_data=make_houses,
        check=check_house_r2,
        reference=(
            "import pandas as pd\nfrom sklearn.linear_model import LinearRegression\n"
            "from sklearn.model_selection import train_test_split\n"
            "houses = pd.read_csv('houses.csv')\n"
            "X_train, X_test, y_train, y_test = train_test_split(\n"
            "    houses.drop(columns='price'), houses['price'], test_size=0.25, random_state=0)\n"
            "model = LinearRegression().fit(X_train, y_train)\n"
            "print(round(model.score(X_test, y_test), 3))",
        ),
    ),
    Task(
        name="churn-classifier",
        topic="model",
        request=(
            "Train a classifier on churn.csv that predicts churned from the other columns. Hold "
            "out 20% of the rows for testing and print the accuracy on that test set."
        ),
        make_data=make_churn,
        check=check_churn_accuracy,
        reference=(
            "import pandas as pd\nfrom sklearn.linear_model import LogisticRegression\n"
            "from sklearn.model_selection import train_test_split\n"
            "from sklearn.pipeline import make_pipeline\n"
            "from sklearn.preprocessing import StandardScaler\n"
            "churn = pd.read_csv('churn.csv')\n"
            "X_train, X_test, y_train, y_test = train_test_split(\n"
            "    churn.drop(columns='churned'), churn['churned'], test_size=0.2, random_state=0)\n"
            "model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X_train, y_train)\n"
            "print(f'accuracy: {model.score(X_test, y_test):.3f}')",
        ),
    ),
    Task(
        name="upgrade-classifier-text-and-gaps",
        topic="model",
        request=(
            "Using subscriptions.csv, train a classifier that predicts upgraded from the other "
            "columns, test it on a held-out 25% of the rows, and print its accuracy on them."
        ),
        make_data=make_subscriptions,
        check=check_upgrade_accuracy,
        reference=(
            "import pandas as pd\nfrom sklearn.linear_model import LogisticRegression\n"
            "from sklearn.model_selection import train_test_split\n"
            "from sklearn.pipeline import make_pipeline\n"
            "from sklearn.preprocessing import StandardScaler\n"
            "subs = pd.read_csv('subscriptions.csv')\n"
            "subs['usage_hours'] = subs['usage_hours'].fillna(subs['usage_hours'].median())\n"
            "X = pd.get_dummies(subs.drop(columns='upgraded'), columns=['plan'], dtype=int)\n"
            "X_train, X_test, y_train, y_test = train_test_split(\n"
            "    X, subs['upgraded'], test_size=0.25, random_state=0)\n"
            "model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X_train, y_train)\n"
            "print('accuracy', round(model.score(X_test, y_test), 3))",
        ),
    ),
)
