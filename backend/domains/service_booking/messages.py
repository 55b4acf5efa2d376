"""What the customer is told about a service appointment, rendered in their language when sent."""

from __future__ import annotations

from datetime import datetime

from backend.domains.notifications.messages import Message, register
from backend.lib.i18n import current_locale, format_datetime
from backend.lib.i18n import gettext as _


def _when(params: dict) -> str:
    try:
        return format_datetime(datetime.fromisoformat(params["slot"]), params.get("tz"), "medium")
    except (KeyError, ValueError):
        return ""


def _branch(params: dict) -> str:
    return params.get("branch", "") if current_locale() == "zh_CN" else params.get("branch_en") or params.get(
        "branch", "")


@register("service_appointment.booked")
def booked(params: dict) -> Message:
    return Message(
        title=_("Service appointment booked"),
        body=_("Your service appointment %(reference)s at %(branch)s is booked for %(when)s. Use the link to "
               "see, move or cancel it.", reference=params.get("reference", ""), branch=_branch(params),
               when=_when(params)),
        sms=_("Booked: service %(when)s at %(branch)s (%(reference)s).", when=_when(params), branch=_branch(params),
              reference=params.get("reference", "")),
    )


@register("service_appointment.reminder")
def reminder(params: dict) -> Message:
    return Message(
        title=_("Your service appointment is tomorrow"),
        body=_("We expect your car at %(branch)s at %(when)s (appointment %(reference)s).",
               branch=_branch(params), when=_when(params), reference=params.get("reference", "")),
    )


@register("service_appointment.rescheduled")
def rescheduled(params: dict) -> Message:
    return Message(
        title=_("Service appointment moved"),
        body=_("Your service appointment %(reference)s at %(branch)s is now on %(when)s.",
               reference=params.get("reference", ""), branch=_branch(params), when=_when(params)),
    )


@register("service_appointment.cancelled")
def cancelled(params: dict) -> Message:
    return Message(
        title=_("Service appointment cancelled"),
        body=_("Your service appointment %(reference)s on %(when)s has been cancelled.",
               reference=params.get("reference", ""), when=_when(params)),
    )
