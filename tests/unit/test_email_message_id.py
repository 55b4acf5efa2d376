"""A notification's e-mail has the same Message-ID every time it is built (a resend after a worker
died between the SMTP server's 250 and the commit is then the same message to the mail system)."""

from email.headerregistry import Address
from email.utils import parseaddr

from backend.domains.notifications.channels.email import EmailSender, message_id
from backend.lib.settings import Settings


def build(key: str):
    sender = EmailSender(Settings(smtp_host="127.0.0.1", smtp_from="Forecourt <no-reply@dealer.example>"))
    return sender.build(to="li@example.test", subject="Ready", text="Your car is ready", html="<p>Ready</p>",
                        key=key, lang="en")


def test_the_same_notification_always_has_the_same_message_id():
    first, again = build("repair_order:42:ready:customer"), build("repair_order:42:ready:customer")
    assert first["Message-ID"] == again["Message-ID"]
    assert first["Message-ID"].startswith("<repair_order.42.ready.customer.")
    assert first["Message-ID"].endswith("@dealer.example>")
    assert build("repair_order:43:ready:customer")["Message-ID"] != first["Message-ID"]


def test_odd_keys_and_senders_still_make_a_valid_message_id():
    value = message_id("x <y>@z \"q\" " + "k" * 300, "weird name <ops@mail.dealer.example>")
    local, domain = value[1:-1].split("@")
    assert value.startswith("<") and value.endswith(">") and domain == "mail.dealer.example"
    assert " " not in value and "<" not in local and len(value) < 120
    assert parseaddr(f"a <{value[1:-1]}>")[1] == value[1:-1]
    assert Address(addr_spec=value[1:-1]).domain == "mail.dealer.example"
