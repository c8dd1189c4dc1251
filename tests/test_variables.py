"""What the model is told of the kernel's names, from a real local kernel: what it says, that it
stays within its bound whatever the names hold, and that asking changes nothing in the kernel."""

from __future__ import annotations

import ast
import re
import time
from queue import Empty

from jupyter_notebook_agent.agent.variables import kernel_variables
from jupyter_notebook_agent.kernels import JupyterKernelSession

#: A person's session: data, an array, a number, a function, a name of their own to hide.
SESSION = """
import pandas as pd, numpy as np
df = pd.DataFrame({"price": [1.5, 2.0, None, 4.0], "city": ["Oslo", "Lima", "Pune", "Kyiv"]})
arr = np.zeros((3, 4))
x = 5
_private = 1
def f(a, b=2):
    "Adds b."
    return a + b
"""


async def run(kernel: JupyterKernelSession, code: str) -> tuple[str, int | None]:
    """What the code printed, and its execution count; it must not fail."""
    execution = await kernel.execute(code, 60)
    assert execution.status == "ok", execution.outputs
    printed = "".join(o.text for o in execution.outputs if o.output_type == "stream")
    return printed, execution.execution_count


async def iopub_types(kernel: JupyterKernelSession) -> list[str]:
    """The types of the messages waiting on IOPub, once it has been quiet for half a second."""
    types = []
    while True:
        try:
            message = await kernel.client.get_iopub_msg(timeout=0.5)
        except Empty:
            return types
        types.append(message["header"]["msg_type"])


async def test_the_summary_tells_each_name_newest_first(kernel):
    await run(kernel, SESSION)
    text = await kernel_variables(kernel)
    lines = text.splitlines()
    assert lines[0] in ("modules: np (numpy), pd (pandas)", "modules: pd (pandas), np (numpy)")
    assert "f: function f(a, b=2)" in lines
    assert "x: int 5" in lines
    assert "arr: ndarray, shape (3, 4), dtype float64" in lines
    assert "df: DataFrame (4 rows, 2 columns)" in lines
    assert re.search(r"^  columns: price float64, city \w+$", text, re.M)
    assert "Oslo" in text and "Pune" in text and "Kyiv" not in text  # its first 3 rows
    named = [line.split(":")[0] for line in lines[1:] if not line.startswith(" ")]
    assert named == ["f", "x", "arr", "df"]  # newest first, nothing private or IPython's


async def test_asking_changes_nothing_in_the_kernel(kernel):
    await run(kernel, SESSION)
    names = "print(sorted(get_ipython().user_ns))"
    printed, count = await run(kernel, names)
    before = set(ast.literal_eval(printed))
    await iopub_types(kernel)
    assert "df: DataFrame" in await kernel_variables(kernel)
    assert "price: float64, 1" in await kernel_variables(kernel, "df")
    assert await iopub_types(kernel) == ["status"] * 4  # busy and idle, twice: nothing printed
    printed, count_after = await run(kernel, names)
    assert count is not None and count_after == count + 1  # the asking was not counted
    assert set(ast.literal_eval(printed)) - before == {f"_i{count_after}"}  # the new input only


async def test_the_summary_stays_within_its_bound(kernel):
    await run(kernel, "for i in range(500):\n    globals()[f'v{i}'] = list(range(i))")
    for max_chars in (4000, 1000, 300):
        text = await kernel_variables(kernel, max_chars=max_chars)
        assert len(text) <= max_chars
        described = [line for line in text.splitlines() if line.startswith("v")]
        assert described[0].startswith("v499: list of 499: [0, 1, 2, 3, ...]")
        more = re.fullmatch(r"\.\.\. and (\d+) more names: (v\d+), .*\.\.\.", text.splitlines()[-1])
        assert more, text[-300:]
        # every public name is told: v0..v499 and i, described or named as left over
        assert len(described) + int(more[1]) == 501
        assert more[2] == f"v{499 - len(described)}"


async def test_the_details_of_a_frame_and_of_other_values(kernel):
    await run(kernel, SESSION)
    text = await kernel_variables(kernel, "df")
    assert text.startswith("df: pandas.")
    assert "DataFrame (4 rows, 2 columns)" in text
    assert re.search(r"^    price: float64, 1$", text, re.M)  # dtype and null count
    assert re.search(r"^    city: \w+, 0$", text, re.M)
    assert "first 5 rows" in text and "Kyiv" in text
    assert (await kernel_variables(kernel, "x")).splitlines() == ["x: builtins.int", "5"]
    assert (await kernel_variables(kernel, "f")).splitlines() == [
        "f: function f(a, b=2)",
        "Adds b.",
    ]
    arr = await kernel_variables(kernel, "arr")
    assert "shape (3, 4), dtype float64, 96 bytes" in arr and "array([[0., 0., 0., 0.]," in arr


async def test_a_missing_name_is_said_with_the_names_there_are(kernel):
    await run(kernel, SESSION)
    text = await kernel_variables(kernel, "y")
    assert text == "no variable named 'y'; the kernel has: f, x, arr, df, np, pd"


async def test_values_that_cannot_be_shown_whole_are_bounded(kernel):
    await run(
        kernel,
        """
class Raises:
    def __repr__(self):
        raise ValueError("no repr")
class Huge:
    def __repr__(self):
        return "h" * 10_000_000
class Tracked(dict):
    def __repr__(self):
        raise AssertionError("the whole dict was shown")
raises, huge, tracked = Raises(), Huge(), Tracked.fromkeys(range(100_000), 0)
big, text = 10**5000, "t" * 10_000_000
""",
    )
    text = await kernel_variables(kernel)
    assert len(text) <= 4000
    assert "raises: Raises <Raises instance at 0x" in text
    assert re.search(r"^huge: Huge h+\.\.\.h+$", text, re.M)
    assert "tracked: Tracked of 100000, keys [0, 1, 2, 3, ...]" in text
    assert "big: int <int, repr failed: ValueError>" in text
    assert re.search(r"^text: str 't+\.\.\.t+'$", text, re.M)
    for name in ("raises", "huge", "tracked", "big", "text"):
        details = await kernel_variables(kernel, name, max_chars=500)
        assert details.startswith(f"{name}: ") and len(details) <= 500


async def test_slow_reprs_stop_the_describing_after_a_second(kernel):
    await run(
        kernel,
        "import time\nclass Slow:\n    def __repr__(self):\n        time.sleep(0.6)\n"
        "        return 'slow'\nslow1, slow2, slow3 = Slow(), Slow(), Slow()",
    )
    started = time.perf_counter()
    text = await kernel_variables(kernel)
    assert time.perf_counter() - started < 1.6  # two reprs, not three
    lines = text.splitlines()
    assert lines[1:] == [
        "slow3: Slow slow",
        "slow2: Slow slow",
        "... and 2 more names, not described in time: slow1, Slow",
    ]


async def test_a_kernel_without_pandas_is_told_and_gets_no_pandas(kernel):
    await run(kernel, "import sys\ndata = {'a': 1}")
    assert (await kernel_variables(kernel)).splitlines() == [
        "modules: sys",
        "data: dict of 1, keys ['a']",
    ]
    printed, _ = await run(kernel, "print('pandas' in sys.modules, 'numpy' in sys.modules)")
    assert printed == "False False\n"


async def test_what_may_be_a_secret_is_not_sent_to_the_model(kernel):
    await kernel.execute(
        "import os\n"
        "api_key = 'hunter2'\n"
        "token_like = 'sk-A1b2C3d4E5f6G7h8I9j0K1l2'\n"
        "settings = {'user': 'ada', 'password': 'swordfish', 'region': 'eu'}\n"
        "env = dict(os.environ, OPENAI_TOKEN='zz-9Y8x7W6v5U4t3S2r1Q0p')\n"
        "data_path = 'data/sales_2024_q1.csv'\n",
        30,
    )
    summary = await kernel_variables(kernel)
    for secret in ("hunter2", "sk-A1b2C3d4", "swordfish", "zz-9Y8x7W6v"):
        assert secret not in summary, summary
    assert "api_key: str (not shown: it may be a secret)" in summary
    assert "token_like: str (not shown" in summary
    assert "settings: dict of 3, keys ['user', 'password', 'region']" in summary
    assert "data/sales_2024_q1.csv" in summary  # a path is no secret
    details = await kernel_variables(kernel, "settings")
    assert "swordfish" not in details and "'ada'" in details and "<not shown>" in details
    assert "hunter2" not in await kernel_variables(kernel, "api_key")
    assert "zz-9Y8x7W6v" not in await kernel_variables(kernel, "env")
