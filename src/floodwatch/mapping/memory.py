"""One malloc arena for the mapping threads.

glibc gives each thread that allocates under contention its own malloc arena (up to 8 per core). In
`map_scene` the reader thread allocates each window, the predicting thread frees it, and the writer and
ONNX Runtime's threads allocate beside them: freed memory then stays spread over several arenas, and a
whole-scene run's RSS climbed about 130 MB over the window loop while its live memory stayed flat (memray:
RSS minus live heap grew, live heap did not). With one arena the RSS stayed flat at 10,000² at the same speed
(docs/benchmarks.md, eleventh session).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_ARENA_MAX = -8  # glibc's mallopt parameter number (malloc.h)


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def share_one_malloc_arena() -> bool:
    """Ask glibc to hand out no further arenas: threads that have none yet share the main one. Threads that
    already hold an arena keep it, so call this before the mapping threads (and, from the CLI, before the model
    loads). The environment's MALLOC_ARENA_MAX wins. Returns whether the setting was made (False off glibc)."""
    libc = None if os.environ.get("MALLOC_ARENA_MAX") else _libc()
    try:
        return bool(libc is not None and libc.mallopt(M_ARENA_MAX, 1))
    except AttributeError:  # not glibc (musl has no mallopt)
        return False


def release_freed_memory() -> bool:
    """Give the pages of freed memory back to the system (glibc's malloc_trim). Called when the window loop
    ends: what it freed would otherwise stay in the process while the probability COG's helper process and
    vectorising run beside it. Returns whether glibc released anything (False off glibc)."""
    libc = _libc()
    try:
        return bool(libc is not None and libc.malloc_trim(0))
    except AttributeError:
        return False
