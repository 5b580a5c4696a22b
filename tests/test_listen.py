"""listen_problem: a free port, a port in use, a host that does not resolve."""
from __future__ import annotations

import socket

from floodwatch.listen import listen_problem


def test_a_free_port_a_busy_port_and_an_unknown_host():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert listen_problem("127.0.0.1", port) == ("port", f"127.0.0.1:{port} is in use; stop what listens there "
                                                             "or give another port")
    assert listen_problem("127.0.0.1", port) is None  # closed: free again
    field, message = listen_problem("no-such-host.invalid", 8000)
    assert field == "host" and message.startswith("'no-such-host.invalid' is not a name or address")
    assert listen_problem("127.0.0..1", 8000)[0] == "host"
