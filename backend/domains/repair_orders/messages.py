"""What customers and advisors are told about a repair order, in their language when it is sent."""

from __future__ import annotations

from datetime import datetime

from backend.domains.notifications.messages import Message, register
from backend.lib.i18n import current_locale, format_datetime
from backend.lib.i18n import gettext as _


def _branch(params: dict) -> str:
    if current_locale() == "zh_CN":
        return params.get("branch", "")
    return params.get("branch_en") or params.get("branch", "")


def _promised(params: dict) -> str:
    try:
        return format_datetime(datetime.fromisoformat(params["promised_at"]), params.get("tz"), "short")
    except (KeyError, TypeError, ValueError):
        return ""


@register("repair_order.checked_in")
def checked_in(params: dict) -> Message:
    promised = _promised(params)
    body = _("Your car is checked in at %(branch)s (repair order %(number)s).", branch=_branch(params),
             number=params.get("number", ""))
    if promised:
        body += " " + _("We expect it to be ready by %(when)s.", when=promised)
    return Message(title=_("Your car is checked in"), body=body + " " + _("Follow the work with the link."))


@register("repair_order.approval_needed")
def approval_needed(params: dict) -> Message:
    return Message(
        title=_("Your approval is needed"),
        body=_("We found extra work on your car (repair order %(number)s). Please approve or decline each item "
               "with the link; the work waits for your answer.", number=params.get("number", "")),
        sms=_("Repair %(number)s: extra work needs your approval. Open the link to answer.",
              number=params.get("number", "")),
    )


@register("repair_order.ready")
def ready(params: dict) -> Message:
    return Message(
        title=_("Your car is ready for pickup"),
        body=_("Repair order %(number)s is done. Your car is ready for pickup at %(branch)s.",
               number=params.get("number", ""), branch=_branch(params)),
    )


@register("repair_order.survey")
def survey(params: dict) -> Message:
    return Message(
        title=_("How did we do?"),
        body=_("Thank you for visiting %(branch)s. How likely are you to recommend our service to a friend? "
               "Tell us in one tap.", branch=_branch(params)),
    )


@register("repair_order.approvals_answered")
def approvals_answered(params: dict) -> Message:
    return Message(
        title=_("The customer has answered"),
        body=_("Every extra-work item of repair order %(number)s has an answer; the work can go on.",
               number=params.get("number", "")),
    )
