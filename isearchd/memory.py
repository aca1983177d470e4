"""Handing freed memory back to the system (glibc's ``malloc_trim``).

glibc keeps memory that was freed inside the process: large temporaries (ONNX Runtime's
activations for an image batch, the arrays a database open builds to reconcile its index)
stay resident until the heap is trimmed. Used by the models (after image batches) and the store
(after opening a database); imports nothing of ImgSearch.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Callable


def malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim`` (call it with 0), or None where there is none (macOS, musl)."""
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # musl and other C libraries have no malloc_trim
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def trim_heap() -> None:
    """Give the heap's free memory back to the system now, where the C library can."""
    trim = malloc_trim()
    if trim is not None:
        trim(0)
