"""The house's import rules, read from the code: each part imports only the parts below it, and
the agent stays free of the server, the container engine and the browser's side."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "jupyter_notebook_agent"

#: Each part of the package and its floor: a part imports parts of lower floors alone.
FLOORS = {
    "_version": 0,
    "partial_json": 0,
    "notebook": 0,
    "llm": 1,
    "mcp": 1,
    "kernels": 1,
    "sandbox": 1,
    "agent": 2,
    "testing": 2,
    "server": 3,
    "cli": 4,
    "doctor": 3,
    "__init__": 5,
}
#: Libraries the agent never imports: it runs the same headless, in the server, or elsewhere.
NOT_IN_AGENT = {"tornado", "jupyter_server", "docker", "jupyterlab"}
#: The parts that may use the test tools (doctor checks llama.cpp with the tiny model).
USE_TESTING = {"testing", "doctor"}


def modules() -> list[Path]:
    return [p for p in PACKAGE.rglob("*.py") if "labextension" not in p.parts]


def part(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def imported(path: Path) -> list[str]:
    """What the module imports, as absolute module names, lazy imports included."""
    package = ".".join(("jupyter_notebook_agent", *path.relative_to(PACKAGE).parent.parts))
    return imports_in(path.read_text(), package)


def imports_in(source: str, package: str) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level:
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            if node.module:
                names.append(f"{base}.{node.module}")
            else:
                names += [f"{base}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append(node.module or "")
    return names


def our_part(name: str) -> str | None:
    """The part of the package a module name is in; "__init__" for a name the package's face
    hands on (`from . import __version__`)."""
    parts = name.split(".")
    if parts[0] != "jupyter_notebook_agent":
        return None
    return parts[1] if len(parts) > 1 and parts[1] in FLOORS else "__init__"


def test_every_part_has_a_floor():
    assert {part(path) for path in modules()} <= set(FLOORS)


def test_each_part_imports_only_parts_below_it():
    upward = []
    for path in modules():
        here = part(path)
        for name in imported(path):
            there = our_part(name)
            if there is None or there == here:
                continue
            if FLOORS[there] >= FLOORS[here]:
                upward.append(f"{path.relative_to(PACKAGE)} imports {name}")
            if there == "testing" and here not in USE_TESTING:
                upward.append(f"{path.relative_to(PACKAGE)} uses the test tools ({name})")
    assert upward == []


def test_the_agent_imports_no_server_no_engine_no_lab():
    found = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in modules()
        if part(path) == "agent"
        for name in imported(path)
        if name.split(".")[0] in NOT_IN_AGENT
    ]
    assert found == []


def test_the_reader_resolves_relative_imports_lazy_ones_too():
    """The rules above hold only if relative and lazy imports are read right."""
    source = "from ..agent import Agent\nfrom . import image\ndef f():\n    from .pool import P\n"
    assert imports_in(source, "jupyter_notebook_agent.sandbox") == [
        "jupyter_notebook_agent.agent",
        "jupyter_notebook_agent.sandbox.image",
        "jupyter_notebook_agent.sandbox.pool",
    ]
