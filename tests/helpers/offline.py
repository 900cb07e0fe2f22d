"""Prove a test makes no network call: every socket connect raises and is recorded."""
from __future__ import annotations

import socket


class NetworkBlocked(OSError):
    pass


def block_network(monkeypatch) -> list:
    """Patch socket connects to raise NetworkBlocked; returns the list of attempted addresses."""
    attempts: list = []

    def connect(self, address, *args, **kwargs):
        attempts.append(address)
        raise NetworkBlocked(f"network blocked by the test: connect to {address!r}")

    def create_connection(address, *args, **kwargs):
        attempts.append(address)
        raise NetworkBlocked(f"network blocked by the test: connect to {address!r}")

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    return attempts
