"""Loopback ports for the servers tests start (Triton, PostgreSQL, uvicorn)."""
from __future__ import annotations

import socket
from typing import Callable, TypeVar

T = TypeVar("T")


def free_port() -> int:
    """A 127.0.0.1 port nothing listens on at this moment. Another process can take it before the server binds
    it, so start servers through `start_on_free_ports`."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_on_free_ports(start: Callable[[], T], errors: tuple[type[BaseException], ...], attempts: int = 3,
                        retry_if: Callable[[BaseException], bool] = lambda e: True) -> T:
    """`start()` (which picks its ports with `free_port`), tried again with fresh ports while it raises one of
    `errors` that `retry_if` accepts; any other error, or the last attempt's, propagates."""
    for attempt in range(1, attempts + 1):
        try:
            return start()
        except errors as e:
            if attempt == attempts or not retry_if(e):
                raise
    raise ValueError("attempts must be at least 1")
