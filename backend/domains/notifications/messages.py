"""What each kind of notification says, in the recipient's language.

Each domain registers its messages with :func:`register`; a message is rendered when it is sent,
in the recipient's locale, from the notification's ``params``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

from backend.lib import i18n
from backend.lib.i18n import gettext as _


@dataclass(frozen=True, slots=True)
class Message:
    title: str
    body: str
    sms: str | None = None  # a shorter text for SMS; the body is used when None


MessageBuilder = Callable[[dict], Message]
_registry: dict[str, MessageBuilder] = {}


def register(template: str) -> Callable[[MessageBuilder], MessageBuilder]:
    def decorator(builder: MessageBuilder) -> MessageBuilder:
        _registry[template] = builder
        return builder

    return decorator


def known(template: str) -> bool:
    return template in _registry


@contextmanager
def in_locale(locale: str | None):
    previous = i18n.current_locale()
    i18n.set_locale(locale or previous)
    try:
        yield
    finally:
        i18n.set_locale(previous)


def render(template: str, params: dict, locale: str | None) -> Message:
    with in_locale(locale):
        return _registry[template](params)


@register("system.test")
def _test_message(params: dict) -> Message:
    return Message(
        title=_("Forecourt test notification"),
        body=_("Hello %(name)s, notifications reach you on this channel.", name=params.get("name", "")),
    )
