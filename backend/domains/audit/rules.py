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
}
ENTITIES = {
    "staff_user": lazy_gettext("staff account"),
    "api_key": lazy_gettext("API key"),
    "branch": lazy_gettext("branch"),
}


def describe(action: str, entity: str, entity_id: str | None = None) -> str:
    """``"created staff account #12"``; unknown codes are shown as they are rather than hidden."""
    verb = str(ACTIONS.get(action, action))
    noun = str(ENTITIES.get(entity, entity))
    if action in ("sign_in", "sign_out"):
        return verb
    return _("%(verb)s %(noun)s #%(id)s", verb=verb, noun=noun, id=entity_id) if entity_id else f"{verb} {noun}"
