"""How an audit entry reads to a person."""

from __future__ import annotations

from backend.lib.i18n import gettext as _
from backend.lib.i18n import lazy_gettext

ACTIONS = {
    "sign_in": lazy_gettext("signed in"),
    "sign_out": lazy_gettext("signed out"),
    "create": lazy_gettext("created"),
    "update": lazy_gettext("changed"),
    "revoke": lazy_gettext("revoked"),
    "delete": lazy_gettext("deleted"),
    "status": lazy_gettext("changed the status of"),
    "reserve": lazy_gettext("reserved"),
    "release": lazy_gettext("released"),
    "photo": lazy_gettext("added a photo to"),
    "import": lazy_gettext("imported"),
    "reschedule": lazy_gettext("rescheduled"),
    "cancel": lazy_gettext("cancelled"),
    "confirm": lazy_gettext("confirmed"),
    "check_out": lazy_gettext("checked out"),
    "return": lazy_gettext("took back"),
    "no_show": lazy_gettext("marked as a no-show:"),
    "follow_up": lazy_gettext("followed up"),
    "feedback": lazy_gettext("received feedback on"),
    "resend": lazy_gettext("sent again"),
}
ENTITIES = {
    "staff_user": lazy_gettext("staff account"),
    "api_key": lazy_gettext("API key"),
    "branch": lazy_gettext("branch"),
    "customer": lazy_gettext("customer"),
    "vehicle": lazy_gettext("vehicle"),
    "vehicle_import": lazy_gettext("stock import"),
    "service_appointment": lazy_gettext("service appointment"),
    "repair_order": lazy_gettext("repair order"),
    "repair_order_finding": lazy_gettext("inspection finding"),
    "repair_order_labour": lazy_gettext("labour line"),
    "repair_order_part": lazy_gettext("parts line"),
    "test_drive": lazy_gettext("test drive"),
    "notification": lazy_gettext("message"),
    "lead": lazy_gettext("lead"),
    "opening_hours": lazy_gettext("opening hours of branch"),
    "branch_holiday": lazy_gettext("branch holiday"),
    "test_drive_settings": lazy_gettext("test-drive booking rules of branch"),
    "test_drive_model_length": lazy_gettext("test-drive length of model"),
    "salesperson_hours": lazy_gettext("working hours of salesperson"),
}


def describe(action: str, entity: str, entity_id: str | None = None) -> str:
    """``"created staff account #12"``; unknown codes are shown as they are rather than hidden."""
    verb = str(ACTIONS.get(action, action))
    noun = str(ENTITIES.get(entity, entity))
    if action in ("sign_in", "sign_out"):
        return verb
    return _("%(verb)s %(noun)s #%(id)s", verb=verb, noun=noun, id=entity_id) if entity_id else f"{verb} {noun}"
