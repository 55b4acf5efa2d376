"""Languages: gettext catalogs (Babel), the request's locale, and locale-aware formatting.

Source strings are English; ``web/locale/<locale>/LC_MESSAGES/messages.po`` holds translations and is
compiled to ``.mo`` by ``make install`` (``pybabel compile``). The locale comes from the signed-in
user's setting, then the ``fc_lang`` cookie, then ``Accept-Language``, then the configured default.
"""

from __future__ import annotations

from contextvars import ContextVar
from datetime import date, datetime, tzinfo
from decimal import Decimal
from functools import cache
from zoneinfo import ZoneInfo

from babel import Locale, dates, numbers
from babel.support import LazyProxy, NullTranslations, Translations

from .settings import ROOT, get_settings

LOCALE_DIR = ROOT / "web" / "locale"
# Shown in the switch in their own language.
LOCALES: dict[str, str] = {"zh_CN": "中文", "en": "English"}
LANG_COOKIE = "fc_lang"

_current: ContextVar[str | None] = ContextVar("forecourt_locale", default=None)


def current_locale() -> str:
    return _current.get() or get_settings().default_locale


def set_locale(locale: str) -> None:
    _current.set(normalize(locale) or get_settings().default_locale)


def normalize(value: str | None) -> str | None:
    """Map ``zh-CN``, ``zh_cn``, ``zh-Hans``, ``zh`` and ``en-GB`` to a supported locale, else None."""
    if not value:
        return None
    v = value.strip().replace("-", "_").lower()
    if v.startswith("zh"):
        return "zh_CN"
    if v.startswith("en"):
        return "en"
    return None


def negotiate(user_choice: str | None, cookie: str | None, accept_language: str | None) -> str:
    for candidate in (user_choice, cookie):
        if found := normalize(candidate):
            return found
    if accept_language:
        weighted: list[tuple[float, int, str]] = []
        for position, part in enumerate(accept_language.split(",")):
            tag, _, params = part.strip().partition(";")
            quality = 1.0
            if params.strip().startswith("q="):
                try:
                    quality = float(params.strip()[2:])
                except ValueError:
                    quality = 0.0
            weighted.append((-quality, position, tag))
        for _, _, tag in sorted(weighted):
            if found := normalize(tag):
                return found
    return get_settings().default_locale


@cache
def translations(locale: str) -> NullTranslations:
    return Translations.load(str(LOCALE_DIR), [locale], domain="messages")


def gettext(message: str, **variables) -> str:
    text = translations(current_locale()).ugettext(message)
    return text % variables if variables else text


def ngettext(singular: str, plural: str, n: int, **variables) -> str:
    text = translations(current_locale()).ungettext(singular, plural, n)
    variables.setdefault("num", n)
    return text % variables


def lazy_gettext(message: str, **variables) -> LazyProxy:
    """For strings defined at import time (error messages, labels); translated when used."""
    return LazyProxy(gettext, message, enable_cache=False, **variables)


_ = gettext


# -- formatting ---------------------------------------------------------------------------------


def _babel_locale() -> Locale:
    return Locale.parse(current_locale())


def to_zone(value: datetime, tz: str | tzinfo | None) -> datetime:
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz or ZoneInfo(get_settings().default_timezone)
    return value.astimezone(zone)


def format_datetime(value: datetime | None, tz: str | tzinfo | None = None, fmt: str = "medium") -> str:
    if value is None:
        return ""
    local, locale = to_zone(value, tz), _babel_locale()
    if fmt == "medium":  # appointments are to the minute: the medium date with the short time, no seconds
        pattern = str(locale.datetime_formats["medium"]).replace("'", "")
        return (pattern.replace("{0}", dates.format_time(local, "short", locale=locale))
                .replace("{1}", dates.format_date(local, "medium", locale=locale)))
    return dates.format_datetime(local, format=fmt, locale=locale)


def format_date(value: date | datetime | None, tz: str | tzinfo | None = None, fmt: str = "medium") -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = to_zone(value, tz).date()
    return dates.format_date(value, format=fmt, locale=_babel_locale())


def format_time(value: datetime | None, tz: str | tzinfo | None = None, fmt: str = "short") -> str:
    if value is None:
        return ""
    return dates.format_time(to_zone(value, tz), format=fmt, locale=_babel_locale())


def format_money(amount: Decimal | int | float | None, currency: str | None = None) -> str:
    if amount is None:
        return ""
    return numbers.format_currency(amount, currency or get_settings().default_currency, locale=_babel_locale())


def format_number(value: Decimal | int | float | None, decimals: int | None = None) -> str:
    if value is None:
        return ""
    if decimals is not None:
        return numbers.format_decimal(value, format=f"#,##0.{'0' * decimals}" if decimals else "#,##0",
                                      locale=_babel_locale())
    return numbers.format_decimal(value, locale=_babel_locale())


def format_percent(value: float | None) -> str:
    if value is None:
        return ""
    return numbers.format_percent(value, locale=_babel_locale())


def html_lang() -> str:
    return current_locale().replace("_", "-")
