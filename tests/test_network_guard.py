import socket

import pytest

from tests.conftest import NetworkGuardError


def test_connecting_outside_loopback_fails() -> None:
    with socket.socket() as s, pytest.raises(NetworkGuardError):
        s.connect(("192.0.2.1", 80))


def test_resolving_a_public_name_fails() -> None:
    with pytest.raises(NetworkGuardError):
        socket.getaddrinfo("export.arxiv.org", 443)


def test_loopback_is_allowed() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.socket() as client:
            client.connect(server.getsockname())
