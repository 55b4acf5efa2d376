"""A local SMTP server (aiosmtpd) that keeps every message it receives."""

from __future__ import annotations

import asyncio
import socket
import time
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller


class _Handler:
    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.messages: list[EmailMessage] = []
        self.started_at: list[float] = []  # per message: time.monotonic() when its DATA was complete

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        started_at = time.monotonic()
        if self.delay:  # a slow server: the message is kept even if the client is gone meanwhile
            await asyncio.sleep(self.delay)
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        self.started_at.append(started_at)
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SmtpReceiver:
    def __init__(self, delay: float = 0.0) -> None:
        self.handler = _Handler(delay)
        self.port = _free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    @property
    def messages(self) -> list[EmailMessage]:
        return self.handler.messages

    def start(self) -> SmtpReceiver:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
