import socket

import pytest

from tests.ports import free_port, start_on_free_ports


def test_free_port_can_be_bound():
    with socket.socket() as s:
        s.bind(("127.0.0.1", free_port()))


def test_start_is_retried_on_the_named_errors_only():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise OSError("address in use")
        return "up"

    assert start_on_free_ports(flaky, (OSError,)) == "up" and len(calls) == 3

    def taken():
        calls.append(1)
        raise OSError("taken")

    calls.clear()
    with pytest.raises(OSError, match="taken"):
        start_on_free_ports(taken, (OSError,), attempts=2)
    assert len(calls) == 2

    def wrong():
        calls.append(1)
        raise ValueError("bad model repository")

    calls.clear()
    with pytest.raises(ValueError):
        start_on_free_ports(wrong, (OSError,))
    assert len(calls) == 1
    calls.clear()
    with pytest.raises(OSError, match="taken"):  # an error retry_if refuses is not retried
        start_on_free_ports(taken, (OSError,), retry_if=lambda e: "in use" in str(e))
    assert len(calls) == 1
