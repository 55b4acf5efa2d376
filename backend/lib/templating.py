"""The Jinja environment: gettext, locale formatting filters and versioned static URLs."""

from __future__ import annotations

import hashlib
from functools import cache

from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar.plugins.jinja import JinjaTemplateEngine

from . import i18n
from .settings import ROOT

TEMPLATE_DIR = ROOT / "web" / "templates"
STATIC_DIR = ROOT / "web" / "static"


@cache
def static_version() -> str:
    """A digest of every static file: changes whenever any of them does (cache busting, SW cache name)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in STATIC_DIR.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(STATIC_DIR)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def asset(path: str) -> str:
    return f"/static/{path}?v={static_version()}"


def make_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=select_autoescape(["html", "j2", "xml"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.globals.update(
        asset=asset,
        html_lang=i18n.html_lang,
        current_locale=i18n.current_locale,
        locales=i18n.LOCALES,
    )
    env.filters.update(
        datetime=i18n.format_datetime,
        date=i18n.format_date,
        time=i18n.format_time,
        money=i18n.format_money,
        number=i18n.format_number,
        percent=i18n.format_percent,
    )
    return env


def template_engine() -> JinjaTemplateEngine:
    return JinjaTemplateEngine.from_environment(make_environment())
