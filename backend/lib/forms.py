"""Read an HTML form into a schema, with messages beside the fields in the person's language."""

from __future__ import annotations

from datetime import date
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from .i18n import gettext as _

M = TypeVar("M", bound=BaseModel)


def _message(error: dict[str, Any]) -> str:
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    if kind in ("missing", "string_too_short") and ctx.get("min_length", 1) <= 1:
        return _("This field is required.")
    if kind == "string_too_short":
        return _("Use at least %(n)s characters.", n=ctx.get("min_length"))
    if kind == "string_too_long":
        return _("Use at most %(n)s characters.", n=ctx.get("max_length"))
    if kind in ("int_parsing", "int_type", "float_parsing", "decimal_parsing"):
        return _("Enter a number.")
    if kind in ("greater_than_equal", "greater_than"):
        return _("Enter a value of at least %(n)s.", n=ctx.get("ge", ctx.get("gt")))
    if kind in ("less_than_equal", "less_than"):
        return _("Enter a value of at most %(n)s.", n=ctx.get("le", ctx.get("lt")))
    if kind in ("date_parsing", "date_from_datetime_parsing", "datetime_parsing"):
        return _("Enter a valid date.")
    if kind in ("enum", "literal_error"):
        return _("Choose one of the offered options.")
    if kind == "value_error" and "email" in str(error.get("msg", "")).lower():
        return _("Enter a valid e-mail address.")
    return _("This value is not valid.")


def field_errors(exc: ValidationError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for error in exc.errors():
        name = str(error["loc"][0]) if error.get("loc") else "__all__"
        errors.setdefault(name, _message(error))
    return errors


def parse_form(schema: type[M], data: Any) -> tuple[M | None, dict[str, str]]:
    """Validate form data; return (values, {}) or (None, {field: message})."""
    values = {k: v for k, v in dict(data).items() if k != "_csrf_token"}
    try:
        return schema.model_validate(values), {}
    except ValidationError as exc:
        return None, field_errors(exc)


def form_values(data: Any) -> dict[str, str]:
    """A submitted form's text fields (files and the CSRF token left out)."""
    return {k: v for k, v in dict(data).items() if isinstance(v, str) and k != "_csrf_token"}


def form_int(raw: Any) -> int | None:
    """A positive whole number typed or posted (at most ten digits), else None."""
    text = str(raw or "").strip()
    return int(text) if text.isdigit() and len(text) <= 10 else None


def form_day(raw: Any) -> date | None:
    """An ISO date (``2030-05-01``), else None."""
    try:
        return date.fromisoformat(str(raw)) if raw else None
    except ValueError:
        return None
