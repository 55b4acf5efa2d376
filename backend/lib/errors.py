"""Domain errors and the one place where they (and framework errors) become HTTP answers.

Services raise :class:`DomainError` subclasses that know nothing of HTTP. Here each becomes:
- for ``/api/`` callers: JSON ``{"error": {"code", "message", "fields"}}``;
- for htmx requests: a toast fragment swapped into ``#toasts`` (``HX-Retarget``/``HX-Reswap``);
- otherwise: a friendly full page in the user's language.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, PermissionDeniedException
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from .i18n import gettext as _
from .i18n import lazy_gettext

log = logging.getLogger("forecourt.errors")


class DomainError(Exception):
    """A rule of the business was broken; ``message`` is shown to the person."""

    status_code = 400
    code = "bad_request"
    default_message = lazy_gettext("The request could not be processed.")

    def __init__(self, message: Any = None, *, fields: dict[str, str] | None = None, **extra: Any):
        self.message = str(message if message is not None else self.default_message)
        self.fields = fields or {}
        self.extra = extra
        super().__init__(self.message)


class NotFound(DomainError):
    status_code = 404
    code = "not_found"
    default_message = lazy_gettext("We could not find that.")


class Forbidden(DomainError):
    status_code = 403
    code = "forbidden"
    default_message = lazy_gettext("You do not have permission to do that.")


class Conflict(DomainError):
    status_code = 409
    code = "conflict"
    default_message = lazy_gettext("Someone else changed this first. Please reload and try again.")


class Invalid(DomainError):
    status_code = 422
    code = "invalid"
    default_message = lazy_gettext("Please correct the highlighted fields.")


class RateLimited(DomainError):
    status_code = 429
    code = "rate_limited"
    default_message = lazy_gettext("Too many attempts. Please wait a few minutes and try again.")


def _status_message(status: int) -> str:
    messages = {
        400: _("The request could not be processed."),
        401: _("Please sign in to continue."),
        403: _("You do not have permission to do that."),
        404: _("We could not find that page."),
        405: _("That action is not available here."),
        409: _("Someone else changed this first. Please reload and try again."),
        413: _("That upload is too large."),
        415: _("That kind of file or request is not supported."),
        422: _("Please correct the highlighted fields."),
        429: _("Too many attempts. Please wait a few minutes and try again."),
    }
    return messages.get(status, _("Something went wrong on our side. Please try again."))


def wants_json(request: Request) -> bool:
    if request.url.path.startswith("/api/"):
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def error_response(
    request: Request,
    status: int,
    message: str,
    code: str,
    fields: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    headers = dict(headers or {})
    if wants_json(request):
        body: dict[str, Any] = {"error": {"code": code, "message": message}}
        if fields:
            body["error"]["fields"] = fields
        return Response(body, status_code=status, media_type=MediaType.JSON, headers=headers)
    if is_htmx(request):
        headers |= {"HX-Retarget": "#toasts", "HX-Reswap": "afterbegin", "Vary": "HX-Request"}
        return Template("_toast.html", context={"message": message, "kind": "error"},
                        status_code=status, headers=headers)
    headers["Vary"] = "HX-Request"
    return Template("error.html", context={"status": status, "message": message},
                    status_code=status, headers=headers)


def handle_domain_error(request: Request, exc: DomainError) -> Response:
    headers = {}
    if retry := exc.extra.get("retry_after"):
        headers["Retry-After"] = str(retry)
    return error_response(request, exc.status_code, exc.message, exc.code, exc.fields, headers)


def handle_not_authorized(request: Request, exc: NotAuthorizedException) -> Response:
    if wants_json(request):
        return error_response(request, 401, _status_message(401), "not_authenticated",
                              headers={"WWW-Authenticate": "Bearer"})
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    target = "/sign-in?" + urlencode({"next": here})
    if is_htmx(request):
        return Response(None, status_code=200, headers={"HX-Redirect": target})
    return Redirect(target)


def handle_http_exception(request: Request, exc: HTTPException) -> Response:
    status = exc.status_code
    code = {403: "forbidden", 404: "not_found", 405: "method_not_allowed", 413: "too_large",
            429: "rate_limited"}.get(status, "bad_request" if status < 500 else "server_error")
    message = _status_message(status)
    if isinstance(exc, PermissionDeniedException) and "CSRF" in str(exc.detail):
        message = _("Your form expired. Please reload the page and try again.")
        code = "csrf_failed"
    fields = None
    if status == 400 and isinstance(exc.extra, list) and exc.extra:
        # Litestar's parameter validation: name the offending parameters.
        fields = {str(e.get("key")): str(e.get("message")) for e in exc.extra if isinstance(e, dict)}
        message = _("Invalid request parameters: %(names)s", names=", ".join(fields))
    return error_response(request, status, message, code, fields, headers=exc.headers)


def handle_server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error", exc_info=exc)
    return error_response(request, HTTP_500_INTERNAL_SERVER_ERROR, _status_message(500), "server_error")


exception_handlers = {
    DomainError: handle_domain_error,
    NotAuthorizedException: handle_not_authorized,
    HTTPException: handle_http_exception,
    HTTP_500_INTERNAL_SERVER_ERROR: handle_server_error,
}
