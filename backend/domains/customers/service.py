"""Customer use cases: contact details with consent, and tracking links."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from backend.domains.audit import service as audit
from backend.lib.db import utcnow
from backend.lib.errors import Invalid, NotFound
from backend.lib.i18n import gettext as _
from backend.lib.i18n import normalize

from . import repository, rules
from .models import Customer, TrackingLink


async def create_customer(session: AsyncSession, *, branch_id: int, name: str, phone: str | None = None,
                          email: str | None = None, locale: str | None = None, marketing_consent: bool = False,
                          actor=None) -> Customer:
    fields = {}
    if not name.strip():
        fields["name"] = _("This field is required.")
    normalized_phone = rules.normalize_phone(phone) if phone else None
    if phone and normalized_phone is None:
        fields["phone"] = _("Enter a mobile number such as 13812345678.")
    if email and ("@" not in email or len(email) > 254):
        fields["email"] = _("Enter a valid e-mail address.")
    if fields:
        raise Invalid(fields=fields)
    customer = Customer(branch_id=branch_id, name=name.strip(), phone=normalized_phone, email=email or None,
                        locale=normalize(locale), marketing_consent=marketing_consent,
                        consent_at=utcnow() if marketing_consent else None)
    session.add(customer)
    await session.flush()
    await audit.record_by(session, actor, action="create", entity="customer", entity_id=customer.id,
                          branch_id=branch_id, after={"name": customer.name})
    return customer


async def get_customer(session: AsyncSession, customer_id: int, *, scope: int | None) -> Customer:
    customer = await repository.customer_by_id(session, customer_id)
    if customer is None or (scope is not None and customer.branch_id != scope):
        raise NotFound()  # another branch's customer looks exactly like a missing one
    return customer


async def branch_for_new_customer(session: AsyncSession, raw_branch_id: str | None, *, scope: int | None) -> int:
    """Group-wide staff choose the customer's branch; it must be one they can see."""
    from backend.domains.branches import service as branches

    try:
        branch = await branches.get_branch(session, int(raw_branch_id or ""), scope=scope)
    except (ValueError, NotFound) as exc:
        raise Invalid(fields={"branch_id": _("Choose a branch.")}) from exc
    return branch.id


async def search_customers(session: AsyncSession, *, scope: int | None, q: str | None) -> list[Customer]:
    return await repository.search(session, branch_id=scope, q=(q or "").strip()[:100] or None)


async def issue_tracking_link(session: AsyncSession, *, customer: Customer, record_type: str, record_id: int,
                              valid_for: timedelta = timedelta(days=90)) -> str:
    """Returns the token (shown once, in the link); only its hash is stored."""
    token = rules.new_token()
    session.add(TrackingLink(token_hash=rules.hash_token(token), customer_id=customer.id,
                             branch_id=customer.branch_id, record_type=record_type, record_id=record_id,
                             expires_at=utcnow() + valid_for))
    await session.flush()
    return token


async def resolve_tracking_link(session: AsyncSession, token: str | None) -> TrackingLink | None:
    if not token or len(token) > 100:
        return None
    return await repository.live_link_by_hash(session, rules.hash_token(token), utcnow())


async def revoke_tracking_link(session: AsyncSession, token: str) -> None:
    link = await resolve_tracking_link(session, token)
    if link is not None:
        link.revoked_at = utcnow()
