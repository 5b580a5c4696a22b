"""Whether a server can listen on host:port, asked before it starts (`serve`'s tritonserver, `web`'s uvicorn).

Both report a port in use or an unknown host late: tritonserver only after loading its models (until then a
readiness check reaches whatever holds the port), uvicorn after its start-up lines, on several lines. One bind
per address the host resolves to (`localhost`: ::1 and 127.0.0.1) answers it first.
"""
from __future__ import annotations

import errno
import socket


def listen_problem(host: str, port: int) -> tuple[str, str] | None:
    """None when every address of `host` can be bound at `port`; else (what is wrong: 'host' or 'port', a
    message without the field's name)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:  # UnicodeError: an empty label ('127.0.0..1')
        return "host", f"'{host}' is not a name or address to listen on ({getattr(exc, 'strerror', None) or exc})"
    for family, kind, proto, address in sorted({a[:3] + (a[4],) for a in infos}, key=str):
        with socket.socket(family, kind, proto) as probe:
            if hasattr(socket, "SO_EXCLUSIVEADDRUSE"):  # Windows: SO_REUSEADDR would bind over a listener
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)
            else:  # as servers bind: a port left in TIME_WAIT by a server that just stopped is free
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:  # as asyncio's servers bind: '::' apart from 0.0.0.0
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                at = f"[{address[0]}]:{port}" if family == socket.AF_INET6 else f"{address[0]}:{port}"
                if exc.errno == errno.EADDRINUSE:
                    return "port", f"{at} is in use; stop what listens there or give another port"
                if exc.errno == errno.EACCES:  # below 1024 without the privilege
                    return "port", f"{at} may not be bound by this user ({exc.strerror})"
                return "host", f"cannot listen on {at} ({exc.strerror or exc})"
    return None
