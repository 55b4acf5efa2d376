"""Sockets for the app servers the tests start.

A port picked by binding to 0 and closing can be taken by another test run before uvicorn binds it; the
health check would then reach the other run's server. So the test binds and listens itself and hands the
open socket to uvicorn (``--fd``): the port is ours from the start.
"""

from __future__ import annotations

import socket


def listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def uvicorn_args(sock: socket.socket) -> list[str]:
    """``uvicorn`` options to serve on ``sock`` (pass ``pass_fds=(sock.fileno(),)`` to the process)."""
    return ["--fd", str(sock.fileno())]
