"""One page template, two answers: the whole page for a normal request, a named block for htmx.

Every handler that can answer both uses :func:`page`, which also sets ``Vary: HX-Request`` so a cache
or the back button never shows a bare fragment. Boosted navigation (``hx-boost``) gets the whole page.
"""

from __future__ import annotations

from typing import Any

from jinja2_fragments.litestar import HTMXBlockTemplate
from litestar import Request
from litestar.response import Template


def is_fragment_request(request: Request) -> bool:
    """htmx wants a fragment, unless it is boosted navigation or a back-button history restore
    (htmx then replaces the whole body, so it needs the whole page)."""
    headers = request.headers
    return (headers.get("hx-request") == "true" and headers.get("hx-boosted") != "true"
            and headers.get("hx-history-restore-request") != "true")


def page(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    block: str = "content",
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    push_url: str | bool | None = None,
) -> Template:
    headers = {"Vary": "HX-Request", **(headers or {})}
    context = context or {}
    if is_fragment_request(request):
        return HTMXBlockTemplate(
            template_name=template, block_name=block, context=context, status_code=status_code,
            headers=headers, push_url=push_url if push_url is not None else None,
        )
    return Template(template_name=template, context=context, status_code=status_code, headers=headers)


def toast(message: str, kind: str = "success", status_code: int = 200) -> Template:
    """A toast for htmx actions that change nothing else on the page."""
    return Template("_toast.html", context={"message": message, "kind": kind}, status_code=status_code,
                    headers={"HX-Retarget": "#toasts", "HX-Reswap": "afterbegin", "Vary": "HX-Request"})
