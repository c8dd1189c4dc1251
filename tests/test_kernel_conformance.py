"""The sandbox kernel passes jupyter_kernel_test's conformance suite, like any Jupyter kernel."""

from __future__ import annotations

import unittest

import jupyter_kernel_test

from jupyter_notebook_agent.sandbox import SANDBOX_KERNEL
from jupyter_notebook_agent.sandbox.image import ensure_image


class SandboxKernelConformance(jupyter_kernel_test.KernelTests):
    kernel_name = SANDBOX_KERNEL
    language_name = "python"
    file_extension = ".py"

    code_hello_world = "print('hello, world')"
    code_stderr = "import sys; print('oops', file=sys.stderr)"
    code_page_something = "print?"
    code_generate_error = "raise ValueError('boom')"
    code_execute_result = [{"code": "6 * 7", "result": "42"}]
    code_display_data = [
        {"code": "from IPython.display import HTML, display; display(HTML('<b>hi</b>'))",
         "mime": "text/html"},
    ]  # fmt: skip
    code_clear_output = "from IPython.display import clear_output; clear_output()"
    code_history_pattern = "6 * *"
    # ipykernel answers a range query from its database, which lags the session: a local
    # ipykernel fails that check too, so it is not the sandbox's to pass.
    supported_history_operations = ("tail", "search")
    code_inspect_sample = "zip"
    completion_samples = [{"text": "zi", "matches": {"zip"}}]
    complete_code_samples = ["1", "print('hello, world')", "def f(x):\n  return x*2\n\n"]
    incomplete_code_samples = ["print('''hello", "def f(x):\n  x*2"]
    invalid_code_samples = ["import = 7q"]

    @classmethod
    def setUpClass(cls) -> None:
        ensure_image()  # the kernelspec uses the default image
        super().setUpClass()


if __name__ == "__main__":
    unittest.main()
