"""What the person's kernel holds, told to the model: a summary of its names, or one in detail.

The text is made in the kernel by one silent user expression (`inspection_expression`), so the
person's names, history and execution count stay as they were. The expression runs the source of
this module's `kernel_*` functions by exec in a fresh dict, so it defines nothing among the
person's names. Those functions import neither pandas nor numpy: they look for them in
sys.modules, since a kernel that never imported pandas holds no DataFrame, and a kernel without
them works as well.

Every text is at most `max_chars` long. The summary reads no more of a frame than its first rows
and calls no repr that is not bounded: containers show their first items only, and only an
unknown object's own `__repr__` is called (and its text cut); describing stops after about a
second, so that a slow `__repr__` delays a step once, not once per name.
"""

from __future__ import annotations

import ast
import inspect
from typing import Any

from ..kernels.base import KernelSession


def kernel_text(shell: Any, name: str | None, max_chars: int) -> str:
    """In the kernel: the summary of the person's names, or the details of `name`.

    The person's names are the public ones that the kernel did not start with (IPython keeps
    those in `user_ns_hidden`), newest first: `user_ns` keeps the order in which names were first
    bound, and what was made last is what the model most likely needs next."""
    namespace = shell.user_ns
    hidden = shell.user_ns_hidden
    unset = object()
    names = [
        key
        for key in reversed(namespace)
        if isinstance(key, str)
        and not key.startswith("_")
        and namespace[key] is not hidden.get(key, unset)
    ]
    if name is None:
        text = kernel_summary(namespace, names, max_chars)
    elif name in namespace:
        text = kernel_details(name, namespace[name], max_chars)
    else:
        text = kernel_name_list(f"no variable named {name!r}; the kernel has: ", names, max_chars)
    return kernel_clip(text, max_chars)


def kernel_summary(namespace: dict, names: list[str], max_chars: int) -> str:
    """In the kernel: the modules in one line, then a line or a few per name while they fit;
    the names left over are listed by name only."""
    import time
    import types

    started = time.perf_counter()
    time_budget_s = 1.0
    entry_chars = max(200, max_chars // 3)
    tail_chars = 160  # kept for the line of names left over
    modules = [name for name in names if isinstance(namespace[name], types.ModuleType)]
    rest = [name for name in names if not isinstance(namespace[name], types.ModuleType)]
    lines = []
    if modules:
        listed = (kernel_module(name, namespace[name]) for name in modules)
        lines.append(kernel_clip("modules: " + ", ".join(listed), entry_chars))
    used = sum(len(line) + 1 for line in lines)
    described = 0
    out_of_time = False
    for name in rest:
        if time.perf_counter() - started > time_budget_s:
            out_of_time = True
            break
        entry = kernel_clip(kernel_entry(name, namespace[name]), entry_chars)
        room = max_chars - used - (tail_chars if described + 1 < len(rest) else 0)
        if len(entry) > room:
            break
        lines.append(entry)
        used += len(entry) + 1
        described += 1
    left = rest[described:]
    if left:
        reason = ", not described in time" if out_of_time else ""
        prefix = f"... and {len(left)} more names{reason}: "
        lines.append(kernel_name_list(prefix, left, max(max_chars - used, 0)))
    return "\n".join(lines)


def kernel_entry(name: str, value: Any) -> str:
    """In the kernel: one name of the summary, with what tells its value apart; a value that
    cannot be described is named with its type."""
    import itertools

    kind = kernel_kind(value)
    if kernel_secret(name, value):
        return f"{name}: {type(value).__name__} (not shown: it may be a secret)"
    try:
        if kind == "frame":
            return f"{name}: " + kernel_frame(value, columns=20, rows=3, row_columns=8)
        if kind == "series":
            label = kernel_repr(value.name, 40)
            return f"{name}: Series {label}, length {len(value)}, dtype {value.dtype}"
        if kind == "array":
            return f"{name}: ndarray, shape {value.shape}, dtype {value.dtype}"
        if kind == "function":
            return f"{name}: function {kernel_signature(value)}"
        if kind == "class":
            return f"{name}: class {value.__module__}.{value.__qualname__}"
        if kind == "collection" and isinstance(value, dict):  # its values may be secrets
            keys = kernel_repr(list(itertools.islice(value, 5)), 100)
            return f"{name}: {type(value).__name__} of {len(value)}, keys {keys}"
        if kind == "collection":
            return f"{name}: {type(value).__name__} of {len(value)}: {kernel_repr(value, 100)}"
        return f"{name}: {type(value).__name__} {kernel_repr(value, 80)}"
    except Exception as error:
        return f"{name}: {type(value).__name__} (not described: {type(error).__name__})"


def kernel_details(name: str, value: Any, max_chars: int) -> str:
    """In the kernel: one name in detail, for the model that asked for it: a frame's dtypes and
    null counts (which read every row, of its first 50 columns) and first rows; else a longer
    bounded repr, with the length and shape where the value has them."""
    import inspect
    import itertools

    kind = kernel_kind(value)
    lines = [f"{name}: {type(value).__module__}.{type(value).__qualname__}"]
    if kernel_secret(name, value):
        return lines[0] + " (not shown: it may be a secret)"
    if isinstance(value, dict):  # what may be secrets among its first items stays hidden
        value = {
            key: "<not shown>" if kernel_secret(str(key), item) else item
            for key, item in itertools.islice(value.items(), 31)
        } | ({"...": f"{len(value) - 31} more"} if len(value) > 31 else {})
    try:
        if kind == "frame":
            lines.append(kernel_frame(value, columns=50, rows=5, row_columns=20, nulls=True))
        elif kind == "series":
            nulls = int(value.isna().sum())
            lines.append(
                f"name {kernel_repr(value.name, 60)}, length {len(value)}, dtype {value.dtype},"
                f" {nulls} nulls, first 5:"
            )
            lines.append(kernel_indent(value.iloc[:5].to_frame().to_string(max_colwidth=40)))
        elif kind == "array":
            lines.append(f"shape {value.shape}, dtype {value.dtype}, {value.nbytes} bytes")
            lines.append(kernel_repr(value, max_chars))
        elif kind in ("function", "class"):
            lines[0] = f"{name}: {kind} {kernel_signature(value)}"
            lines.append(kernel_clip(inspect.getdoc(value) or "(no docstring)", max_chars // 2))
        elif kind == "collection":
            lines.append(f"length {len(value)}")
            lines.append(kernel_repr(value, max_chars, items=30))
        else:
            lines.extend(kernel_size(value))
            lines.append(kernel_repr(value, max_chars))
    except Exception as error:
        lines.append(f"(not described: {type(error).__name__}: {kernel_repr(str(error), 200)})")
    return "\n".join(lines)


def kernel_secret(name: str, value: Any) -> bool:
    """In the kernel: a name or a string that may hold a secret (an API key, a token, a
    password), which the model, maybe on another machine, is not sent."""
    import re

    if re.search(r"key|token|secret|passw|credential|auth", name, re.IGNORECASE):
        return True
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return (
        isinstance(value, str)
        and 20 <= len(value) <= 500
        and not re.search(r"\s", value)
        and re.search(r"[A-Za-z]", value) is not None
        and re.search(r"[0-9]", value) is not None
        and "/" not in value.strip("/")  # a path
    )


def kernel_kind(value: Any) -> str:
    """In the kernel: which description fits the value."""
    import sys
    import types

    pandas, numpy = sys.modules.get("pandas"), sys.modules.get("numpy")
    if isinstance(value, getattr(pandas, "DataFrame", ())):
        return "frame"
    if isinstance(value, getattr(pandas, "Series", ())):
        return "series"
    if isinstance(value, getattr(numpy, "ndarray", ())):
        return "array"
    if isinstance(value, type):
        return "class"
    if isinstance(value, (types.FunctionType, types.BuiltinFunctionType, types.MethodType)):
        return "function"
    if isinstance(value, (list, tuple, dict, set, frozenset)):
        return "collection"
    return "other"


def kernel_frame(frame: Any, columns: int, rows: int, row_columns: int, nulls: bool = False) -> str:
    """In the kernel: a DataFrame's shape, its first `columns` columns with their dtypes (and
    null counts), and its first `rows` rows of its first `row_columns` columns."""
    height, width = frame.shape
    shown = min(columns, width)
    dtypes = frame.dtypes.iloc[:shown]
    labels = [kernel_label(label) for label in dtypes.index]
    more = f"and {width - shown} more" if shown < width else ""
    lines = [f"DataFrame ({height} rows, {width} columns)"]
    if nulls:
        counts = frame.iloc[:, :shown].isna().sum().tolist()
        lines.append("  columns (dtype, nulls):")
        lines.extend(
            f"    {label}: {dtype}, {count}"
            for label, dtype, count in zip(labels, dtypes, counts, strict=True)
        )
        if more:
            lines.append(f"    {more}")
    else:
        listed = [f"{label} {dtype}" for label, dtype in zip(labels, dtypes, strict=True)]
        lines.append("  columns: " + ", ".join([*listed, more] if more else listed))
    of = f", first {row_columns} of {width} columns" if width > row_columns else ""
    lines.append(f"  first {rows} rows{of}:")
    lines.append(kernel_indent(frame.iloc[:rows, :row_columns].to_string(max_colwidth=24)))
    return "\n".join(lines)


def kernel_module(name: str, module: Any) -> str:
    """In the kernel: `np (numpy)`, or `os` where the name is the module's own."""
    real = getattr(module, "__name__", name)
    return name if real == name else f"{name} ({kernel_clip(str(real), 60)})"


def kernel_signature(function: Any) -> str:
    """In the kernel: `name(parameters)`, bounded."""
    import inspect

    try:
        parameters = str(inspect.signature(function))
    except (TypeError, ValueError):
        parameters = "(...)"
    return kernel_clip(f"{getattr(function, '__qualname__', '?')}{parameters}", 120)


def kernel_size(value: Any) -> list[str]:
    """In the kernel: the length and shape of a value that has them."""
    lines = []
    if hasattr(type(value), "__len__"):
        try:
            lines.append(f"length {len(value)}")
        except Exception:
            pass
    shape = getattr(value, "shape", None)
    if shape is not None:
        lines.append(f"shape {kernel_repr(shape, 80)}")
    return lines


def kernel_label(label: Any) -> str:
    """In the kernel: a column's label, bounded."""
    return kernel_clip(label, 30) if isinstance(label, str) else kernel_repr(label, 30)


def kernel_repr(value: Any, width: int, items: int = 4) -> str:
    """In the kernel: a repr that containers and strings cannot make long or slow: dicts, sets
    and long subclassed lists are cut to their first items before reprlib sees them (it would
    sort a whole dict or set, and call a subclass's own repr); only an unknown object's own
    repr is called, and its text cut at `width`."""
    import itertools
    import reprlib

    class Bounded(reprlib.Repr):
        def repr1(self, x: Any, level: int) -> str:
            if isinstance(x, dict):
                x = dict(itertools.islice(x.items(), items + 1))
            elif isinstance(x, (set, frozenset)):
                x = set(itertools.islice(x, items + 1))
            elif isinstance(x, (list, tuple)) and type(x) not in (list, tuple) and len(x) > items:
                x = list(itertools.islice(x, items + 1))
            return super().repr1(x, level)

    bounded = Bounded()
    bounded.maxlevel = 2
    for limit in ("maxtuple", "maxlist", "maxarray", "maxdict", "maxset", "maxfrozenset"):
        setattr(bounded, limit, items)
    bounded.maxdeque = items
    bounded.maxstring = bounded.maxother = bounded.maxlong = width
    try:
        return kernel_clip(bounded.repr(value), width)
    except Exception as error:
        return f"<{type(value).__name__}, repr failed: {type(error).__name__}>"


def kernel_name_list(prefix: str, names: list[str], max_chars: int) -> str:
    """In the kernel: `prefix` and as many of the names as fit in `max_chars`."""
    text = prefix
    for position, name in enumerate(names):
        piece = kernel_clip(name, 40) + (", " if position + 1 < len(names) else "")
        if len(text) + len(piece) > max_chars - 3:
            return text + "..."
        text += piece
    return text


def kernel_indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def kernel_clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


#: The code the expression runs in the kernel; `kernel_text` is its entry.
KERNEL_FUNCTIONS = (
    kernel_text,
    kernel_summary,
    kernel_entry,
    kernel_details,
    kernel_secret,
    kernel_kind,
    kernel_frame,
    kernel_module,
    kernel_signature,
    kernel_size,
    kernel_label,
    kernel_repr,
    kernel_name_list,
    kernel_indent,
    kernel_clip,
)
KERNEL_SOURCE = "from __future__ import annotations\n\n\n" + "\n\n".join(
    inspect.getsource(function) for function in KERNEL_FUNCTIONS
)


def inspection_expression(name: str | None = None, max_chars: int = 4000) -> str:
    """A user expression whose value is the text, a str: the summary of the kernel's names, or
    the details of `name`, at most `max_chars` long. It binds no name where it runs: the code
    runs in a fresh dict, the lambda's argument."""
    call = f"scope['kernel_text'](__import__('IPython').get_ipython(), {name!r}, {max_chars:d})"
    return f"(lambda scope: exec({KERNEL_SOURCE!r}, scope) or {call})({{}})"


async def kernel_variables(
    session: KernelSession, name: str | None = None, max_chars: int = 4000, timeout_s: float = 10.0
) -> str:
    """The text of `inspection_expression`, from the session's kernel. The caller decides what a
    failure means: RuntimeError where the kernel raised (one that is not IPython's, say),
    TimeoutError where it did not answer in time (it may still be busy with it)."""
    text = ast.literal_eval(
        await session.evaluate(inspection_expression(name, max_chars), timeout_s)
    )
    if not isinstance(text, str):
        raise RuntimeError(f"the kernel answered a {type(text).__name__}, not a text")
    return text
