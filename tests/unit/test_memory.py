"""isearchd.memory: the daemon's glibc settings. Each check runs in a child process, so this test
process keeps glibc's defaults."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import ctypes, sys
from isearchd.memory import keep_large_blocks_mapped, trim_heap
set_now = keep_large_blocks_mapped(1 << 20)
trim_heap()
# a freed 4 MiB block is mapped (returned to the system) only below the threshold: 1 MiB, fixed
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
FIELDS = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
class Info(ctypes.Structure):  # struct mallinfo2 (malloc.h), returned by value: all its fields
    _fields_ = [(n, ctypes.c_size_t) for n in FIELDS.split()]
libc.mallinfo2.restype = Info
libc.free(libc.malloc(8 << 20))  # glibc's own rule raises its threshold to 8 MiB here
mapped = libc.mallinfo2().hblks
block = libc.malloc(4 << 20)
print(set_now, libc.mallinfo2().hblks == mapped + 1)
libc.free(block)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_large_blocks_stay_mapped_unless_the_user_says_otherwise() -> None:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True"]
    # glibc's own rule, for comparison: after the 8 MiB block, a 4 MiB one comes from the heap
    plain = PROBE.replace("keep_large_blocks_mapped(1 << 20)", "False")
    out = subprocess.run([sys.executable, "-c", plain], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
    # the user's MALLOC_MMAP_THRESHOLD_ wins: nothing is set
    env["MALLOC_MMAP_THRESHOLD_"] = str(16 << 20)
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
