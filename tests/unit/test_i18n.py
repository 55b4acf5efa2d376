"""Languages: negotiation, formatting, and catalogs that leave no string untranslated."""

from datetime import UTC, datetime
from decimal import Decimal
from io import BytesIO

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from backend.lib import i18n
from backend.lib.settings import ROOT


def test_negotiation_order_user_then_cookie_then_header():
    assert i18n.negotiate("en", "zh_CN", "zh-CN") == "en"
    assert i18n.negotiate(None, "en", "zh-CN,zh;q=0.9") == "en"
    assert i18n.negotiate(None, None, "fr-FR, en-GB;q=0.8, zh;q=0.5") == "en"
    assert i18n.negotiate(None, None, "de, zh-Hans;q=0.9, en;q=0.1") == "zh_CN"
    assert i18n.negotiate(None, "klingon", "xx") == "zh_CN"  # the configured default
    assert i18n.negotiate(None, None, "en;q=garbage, zh-TW") == "zh_CN"


def test_formatting_follows_the_locale_and_time_zone():
    at = datetime(2026, 11, 29, 12, 30, tzinfo=UTC)
    i18n.set_locale("en")
    assert i18n.format_money(Decimal("1234.5"), "CNY") == "CN¥1,234.50"
    assert i18n.format_time(at, "Asia/Shanghai") == "8:30\u202fPM"
    assert i18n.format_date(at, "Asia/Shanghai", "medium") == "Nov 29, 2026"
    assert i18n.format_datetime(at, "Asia/Shanghai") == "Nov 29, 2026, 8:30\u202fPM"  # to the minute
    i18n.set_locale("zh_CN")
    assert i18n.format_datetime(at, "Asia/Shanghai") == "2026年11月29日 20:30"
    assert i18n.format_money(Decimal("1234.5"), "CNY") == "¥1,234.50"
    assert i18n.format_date(at, "Asia/Shanghai", "long") == "2026年11月29日"
    assert i18n.format_time(at, "Asia/Shanghai") == "20:30"
    assert i18n.gettext("Sign in") == "登录"
    i18n.set_locale("en")
    assert i18n.gettext("Sign in") == "Sign in"


def test_every_string_in_the_code_has_a_chinese_translation():
    method_map = [("backend/**.py", "python"), ("workers/**.py", "python"), ("web/templates/**.html", "jinja2")]
    options = {"web/templates/**.html": {"extensions": "jinja2.ext.i18n"}}
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "lazy_gettext": None}
    in_code = {msg for _, _, msg, _, _ in extract_from_dir(str(ROOT), method_map, options, keywords=keywords)}
    in_code = {m if isinstance(m, str) else m[0] for m in in_code}
    with open(ROOT / "web/locale/zh_CN/LC_MESSAGES/messages.po", "rb") as f:
        catalog = read_po(BytesIO(f.read()), locale="zh_CN")
    translated = {
        (m.id if isinstance(m.id, str) else m.id[0])
        for m in catalog if m.id and m.string and "fuzzy" not in m.flags
    }
    missing = sorted(in_code - translated)
    assert not missing, f"untranslated in zh_CN (run make i18n-extract and translate): {missing}"


def test_every_chinese_translation_formats_like_its_english_source():
    """A translation that drops or mangles a %(name)s placeholder would raise in front of a customer."""
    import re

    with open(ROOT / "web/locale/zh_CN/LC_MESSAGES/messages.po", "rb") as f:
        catalog = read_po(BytesIO(f.read()), locale="zh_CN")
    assert [(m.id, errors) for m, errors in catalog.check()] == []
    broken = []
    for message in catalog:
        if not message.id or not message.string:
            continue
        sources = message.id if isinstance(message.id, tuple) else (message.id,)
        targets = message.string if isinstance(message.string, tuple) else (message.string,)
        names = {n for s in sources for n in re.findall(r"%\((\w+)\)s", s)}
        values = dict.fromkeys(names | {"num"}, "7")
        for target in targets:
            if not target:
                broken.append((sources[0], "empty plural form"))
                continue
            try:
                target % values if names or "%" in target else target
            except (ValueError, KeyError, TypeError) as exc:
                broken.append((sources[0], f"{type(exc).__name__}: {exc}"))
    assert broken == []


async def test_public_pages_render_in_chinese(client):
    for path in ("/", "/sign-in", "/stock", "/service/book", "/track", "/offline"):
        response = await client.get(path, headers={"Accept-Language": "zh-CN"})
        assert response.status_code == 200, (path, response.status_code)
        assert '<html lang="zh-CN">' in response.text, path
