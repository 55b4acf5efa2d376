"""E-mail over SMTP (aiosmtplib): multipart text and HTML in the recipient's language."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib

from backend.lib.settings import Settings


@dataclass(frozen=True, slots=True)
class EmailResult:
    ok: bool
    transient: bool = False
    error: str | None = None


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
        # The same notification always has the same Message-ID, so a resend after a crash is
        # recognisable as the same message by mail systems that de-duplicate.
        domain = self.settings.smtp_from.rsplit("@", 1)[-1].rstrip(">") or "forecourt.local"
        message["Message-ID"] = make_msgid(idstring=key.replace(":", "."), domain=domain)
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
