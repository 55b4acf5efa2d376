"""E-mail over SMTP (aiosmtplib): multipart text and HTML in the recipient's language."""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass
from email.message import EmailMessage

import aiosmtplib

from backend.lib.settings import Settings


@dataclass(frozen=True, slots=True)
class EmailResult:
    ok: bool
    transient: bool = False
    error: str | None = None


def message_id(key: str, sender: str) -> str:
    """The same notification always gets the same Message-ID, so a resend after a crash (the mail was
    accepted, the worker died before recording it) is the same message to mail systems that
    de-duplicate. (``email.utils.make_msgid`` adds the time, the pid and a random number.)"""
    domain = re.sub(r"[^A-Za-z0-9.-]", "", sender.rsplit("@", 1)[-1]) or "forecourt.local"
    readable = re.sub(r"[^A-Za-z0-9._-]+", ".", key).strip(".")[:64]
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return f"<{readable}.{digest}@{domain}>"


class EmailSender:
    """Sends over a connection of its own per message, at most ``max_connections`` at once: a worker
    delivers a batch at a time, and an SMTP server refuses clients that open too many."""

    def __init__(self, settings: Settings, max_connections: int = 10) -> None:
        self.settings = settings
        self._connections = asyncio.Semaphore(max_connections)

    @property
    def configured(self) -> bool:
        return bool(self.settings.smtp_host)

    def build(self, *, to: str, subject: str, text: str, html: str, key: str, lang: str) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.settings.smtp_from
        message["To"] = to
        message["Subject"] = subject
        message["Content-Language"] = lang
        message["Message-ID"] = message_id(key, self.settings.smtp_from)
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        return message

    async def send(self, message: EmailMessage) -> EmailResult:
        s = self.settings
        try:
            async with self._connections:
                await aiosmtplib.send(
                    message, hostname=s.smtp_host, port=s.smtp_port, username=s.smtp_username,
                    password=s.smtp_password, start_tls=s.smtp_starttls if not s.smtp_use_tls else False,
                    use_tls=s.smtp_use_tls, timeout=15,
                )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            return EmailResult(ok=False, transient=False, error=str(exc)[:300])
        except aiosmtplib.SMTPResponseException as exc:
            return EmailResult(ok=False, transient=exc.code >= 400 and exc.code < 500, error=str(exc)[:300])
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            return EmailResult(ok=False, transient=True, error=f"{type(exc).__name__}: {exc}"[:300])
        return EmailResult(ok=True)
