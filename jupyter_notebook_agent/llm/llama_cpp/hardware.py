"""What the installed llama.cpp build can offload to, and what GPUs this machine has: a build
without the GPU's backend runs on the CPU, and the person should hear how to rebuild."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from pathlib import Path

#: GPU backends of llama.cpp, as its system info names them, with the build flag for each.
GPU_BACKENDS = {
    "CUDA": "-DGGML_CUDA=on",
    "ROCm": "-DGGML_HIP=on",
    "Metal": "-DGGML_METAL=on",
    "Vulkan": "-DGGML_VULKAN=on",
    "SYCL": "-DGGML_SYCL=on",
}
_BACKEND_NAME = re.compile(r"(?:^|\| )([A-Za-z][\w-]*) : ")


def build_backends() -> list[str]:
    """The backends compiled into the installed llama.cpp (e.g. ["CUDA", "CPU"])."""
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode(errors="replace")
    names = []
    for name in _BACKEND_NAME.findall(info):
        canonical = "ROCm" if name.upper() in ("ROCM", "HIP") else name
        if canonical not in names:
            names.append(canonical)
    return names


def machine_gpus() -> dict[str, list[str]]:
    """The GPUs this machine has, by the llama.cpp backend that would drive them."""
    found: dict[str, list[str]] = {}
    if shutil.which("nvidia-smi"):
        names = _lines(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"])
        if names:
            found["CUDA"] = names
    if Path("/dev/kfd").exists():
        names = _lines(["rocm-smi", "--showproductname"]) if shutil.which("rocm-smi") else []
        found["ROCm"] = [line for line in names if "Card series" in line] or ["an AMD GPU"]
    if platform.system() == "Darwin" and platform.machine() == "arm64":
        found["Metal"] = ["Apple silicon"]
    return found


def rebuild_hint(gpus: dict[str, list[str]], backends: list[str]) -> str | None:
    """How to rebuild llama-cpp-python for a GPU the build cannot use, or None."""
    for backend, flag in GPU_BACKENDS.items():
        if backend in gpus and backend not in backends:
            return (
                f'CMAKE_ARGS="{flag}" pip install --force-reinstall --no-cache-dir llama-cpp-python'
            )
    return None


def _lines(command: list[str]) -> list[str]:
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=20, env={**os.environ, "LC_ALL": "C"}
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    if done.returncode != 0:
        return []
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]
