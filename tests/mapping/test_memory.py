"""share_one_malloc_arena: glibc's mallopt is called where it exists, and the environment's setting wins."""
from __future__ import annotations

import ctypes
import sys

import pytest

from floodwatch.mapping import memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_mallopt_gets_one_arena(monkeypatch):
    calls = []

    class Libc:
        def mallopt(self, param, value):
            calls.append((param, value))
            return 1

    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    monkeypatch.setattr(memory.ctypes, "CDLL", lambda name: Libc())
    assert memory.share_one_malloc_arena() is True
    assert calls == [(-8, 1)]  # M_ARENA_MAX in glibc's malloc.h


def test_the_environment_wins(monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    monkeypatch.setattr(memory.ctypes, "CDLL", lambda name: pytest.fail("mallopt called"))
    assert memory.share_one_malloc_arena() is False


def test_no_glibc_is_not_an_error(monkeypatch):
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)

    def missing(name):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(memory.ctypes, "CDLL", missing)
    assert memory.share_one_malloc_arena() is False
    assert memory.release_freed_memory() is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_freed_memory_goes_back_to_the_system():
    """A block freed below the mmap threshold stays in the process until trimmed."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim
    except (OSError, AttributeError):
        pytest.skip("not glibc")
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = [libc.malloc(64 * 1024) for _ in range(512)]  # 32 MB in blocks under the mmap threshold
    for b in blocks:
        ctypes.memset(b, 1, 64 * 1024)
    for b in blocks:
        libc.free(b)
    assert memory.release_freed_memory() is True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_the_real_call_succeeds_on_this_machine(monkeypatch):
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    try:
        ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        pytest.skip("not glibc")
    assert memory.share_one_malloc_arena() is True
