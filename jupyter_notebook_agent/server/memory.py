"""What the server's allocator keeps of a run's output: as little as it can.

A run whose cells print a flood passes megabytes of messages through the server. glibc's
allocator then keeps them: it raises its threshold for giving a buffer pages of its own (returned
to the system when freed) to the largest buffer freed so far, up to 32 MB, so later megabyte
messages come from the heap, which fragments and stays the process's. A soak of 200 runs, a fifth
of them floods, grew the server 1.4 times; with the threshold held, about 1.0. Elsewhere than
glibc there is nothing to do.
"""

from __future__ import annotations

import ctypes
import os

#: mallopt's parameter for that threshold (malloc.h), and glibc's own starting value for it.
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 128 * 1024

_LIBC = ctypes.CDLL(None)


def keep_large_buffers_apart() -> bool:
    """Holds the threshold at glibc's starting value for this process, unless the person set it
    (`MALLOC_MMAP_THRESHOLD_`); whether it did."""
    mallopt = getattr(_LIBC, "mallopt", None)
    if mallopt is None or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))


def release_freed_memory() -> None:
    """Hands back to the system what the heap holds free at its top and in its free pages, once a
    run has ended."""
    trim = getattr(_LIBC, "malloc_trim", None)
    if trim is not None:
        trim(0)
