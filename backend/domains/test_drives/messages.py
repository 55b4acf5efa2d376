"""What customers and salespeople are told about test drives, rendered in their language when sent."""

from __future__ import annotations

from datetime import datetime

from backend.domains.notifications.messages import Message, register
from backend.lib.i18n import current_locale, format_datetime, format_time
from backend.lib.i18n import gettext as _


def _when(params: dict, fmt: str = "medium") -> str:
    try:
        return format_datetime(datetime.fromisoformat(params["start"]), params.get("tz"), fmt)
    except (KeyError, TypeError, ValueError):
        return ""


def _time(params: dict) -> str:
    try:
        return format_time(datetime.fromisoformat(params["start"]), params.get("tz"))
    except (KeyError, TypeError, ValueError):
        return ""


def _branch(params: dict) -> str:
    if current_locale() == "zh_CN":
        return params.get("branch", "")
    return params.get("branch_en") or params.get("branch", "")


def _common(params: dict) -> dict:
    return {"car": params.get("car", ""), "branch": _branch(params), "when": _when(params),
            "reference": params.get("reference", "")}


@register("test_drive.booked")
def booked(params: dict) -> Message:
    return Message(
        title=_("Test drive booked"),
        body=_("Your test drive of the %(car)s at %(branch)s is booked for %(when)s (%(reference)s). Use the link to "
               "see, move or cancel it, or to add it to your calendar.", **_common(params)),
        sms=_("Test drive booked: %(car)s, %(when)s at %(branch)s (%(reference)s).", **_common(params)),
    )


@register("test_drive.reminder_24h")
def reminder_24h(params: dict) -> Message:
    """The day before: asks the customer to confirm on their page (a salesperson then knows who will come),
    unless they already have."""
    if params.get("confirmed"):
        body = _("We look forward to seeing you at %(branch)s at %(when)s for your drive in the %(car)s. Thank you "
                 "for confirming. Please bring your driving licence.", **_common(params))
    else:
        body = _("We look forward to seeing you at %(branch)s at %(when)s for your drive in the %(car)s. Are you "
                 "coming? Please confirm with one tap on your page, or move the drive if the time no longer suits "
                 "you. Please bring your driving licence.", **_common(params))
    return Message(title=_("Your test drive is tomorrow"), body=body)


@register("test_drive.reminder_2h")
def reminder_2h(params: dict) -> Message:
    return Message(
        title=_("Your test drive starts at %(time)s", time=_time(params)),
        body=_("The %(car)s is waiting for you at %(branch)s. Please bring your driving licence.", **_common(params)),
    )


@register("test_drive.rescheduled")
def rescheduled(params: dict) -> Message:
    return Message(
        title=_("Test drive moved"),
        body=_("Your test drive of the %(car)s (%(reference)s) is now on %(when)s at %(branch)s.", **_common(params)),
    )


@register("test_drive.cancelled")
def cancelled(params: dict) -> Message:
    return Message(
        title=_("Test drive cancelled"),
        body=_("Your test drive of the %(car)s on %(when)s (%(reference)s) has been cancelled.", **_common(params)),
    )


@register("test_drive.how_was_it")
def how_was_it(params: dict) -> Message:
    return Message(
        title=_("How was your test drive?"),
        body=_("Thank you for driving the %(car)s with us. How did you like it? Tell us in one tap, and ask your "
               "salesperson anything.", **_common(params)),
    )


@register("test_drive.assigned")
def assigned(params: dict) -> Message:
    return Message(
        title=_("New test drive booked online"),
        body=_("%(customer)s booked the %(car)s for %(when)s (%(reference)s). You are the salesperson.",
               customer=params.get("customer", ""), **_common(params)),
    )


@register("test_drive.follow_up_due")
def follow_up_due(params: dict) -> Message:
    return Message(
        title=_("Follow up yesterday's test drive"),
        body=_("Call %(customer)s about the %(car)s they drove (%(reference)s).", customer=params.get("customer", ""),
               **_common(params)),
    )
