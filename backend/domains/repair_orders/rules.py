"""Pure rules for repair orders: the life cycle, who may move it, approvals, clocked time, totals. No I/O.

    open -> diagnosing -> awaiting_approval -> awaiting_parts -> in_progress -> quality_check
         -> ready_for_pickup -> delivered            (and cancelled from any state before the pickup)

Shortcuts a workshop really takes are allowed (a car needing no diagnosis goes from open straight to
in_progress; a failed quality check goes back to in_progress). A repair order waits in
awaiting_approval until the customer has answered every extra-work item.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from backend.domains.accounts.rules import StaffRole
from backend.domains.service_booking.rules import money
from backend.lib.i18n import gettext as _
from backend.lib.i18n import lazy_gettext


class Status(StrEnum):
    OPEN = "open"
    DIAGNOSING = "diagnosing"
    AWAITING_APPROVAL = "awaiting_approval"
    AWAITING_PARTS = "awaiting_parts"
    IN_PROGRESS = "in_progress"
    QUALITY_CHECK = "quality_check"
    READY_FOR_PICKUP = "ready_for_pickup"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


STATUS_LABELS = {
    Status.OPEN: lazy_gettext("Open"),
    Status.DIAGNOSING: lazy_gettext("Diagnosing"),
    Status.AWAITING_APPROVAL: lazy_gettext("Awaiting approval"),
    Status.AWAITING_PARTS: lazy_gettext("Awaiting parts"),
    Status.IN_PROGRESS: lazy_gettext("In progress"),
    Status.QUALITY_CHECK: lazy_gettext("Quality check"),
    Status.READY_FOR_PICKUP: lazy_gettext("Ready for pickup"),
    Status.DELIVERED: lazy_gettext("Delivered"),
    Status.CANCELLED: lazy_gettext("Cancelled"),
}
# What the customer reads on the tracking page: plain words, not workshop jargon.
CUSTOMER_WORDS = {
    Status.OPEN: lazy_gettext("Your car is checked in and waiting for a technician."),
    Status.DIAGNOSING: lazy_gettext("A technician is inspecting your car."),
    Status.AWAITING_APPROVAL: lazy_gettext("We found extra work: please approve or decline each item below."),
    Status.AWAITING_PARTS: lazy_gettext("We are waiting for parts to arrive."),
    Status.IN_PROGRESS: lazy_gettext("Work on your car is in progress."),
    Status.QUALITY_CHECK: lazy_gettext("The work is done; we are giving your car a final quality check."),
    Status.READY_FOR_PICKUP: lazy_gettext("Your car is ready for pickup."),
    Status.DELIVERED: lazy_gettext("You have collected your car. Thank you!"),
    Status.CANCELLED: lazy_gettext("This repair order was cancelled."),
}

TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.OPEN: frozenset({Status.DIAGNOSING, Status.IN_PROGRESS, Status.CANCELLED}),
    Status.DIAGNOSING: frozenset({Status.AWAITING_APPROVAL, Status.AWAITING_PARTS, Status.IN_PROGRESS,
                                  Status.CANCELLED}),
    Status.AWAITING_APPROVAL: frozenset({Status.AWAITING_PARTS, Status.IN_PROGRESS, Status.CANCELLED}),
    Status.AWAITING_PARTS: frozenset({Status.IN_PROGRESS, Status.AWAITING_APPROVAL, Status.CANCELLED}),
    Status.IN_PROGRESS: frozenset({Status.AWAITING_APPROVAL, Status.AWAITING_PARTS, Status.QUALITY_CHECK,
                                   Status.CANCELLED}),
    Status.QUALITY_CHECK: frozenset({Status.IN_PROGRESS, Status.READY_FOR_PICKUP}),
    Status.READY_FOR_PICKUP: frozenset({Status.DELIVERED}),
    Status.DELIVERED: frozenset(),
    Status.CANCELLED: frozenset(),
}
ACTIVE_ORDERED = tuple(s for s in Status if s not in (Status.DELIVERED, Status.CANCELLED))
ACTIVE = frozenset(ACTIVE_ORDERED)
# Where a technician's clock may run.
WORKING = frozenset({Status.DIAGNOSING, Status.IN_PROGRESS})
# The customer hears about these (checked in is the creation of the order itself).
NOTIFY_CUSTOMER = {Status.AWAITING_APPROVAL: "repair_order.approval_needed",
                   Status.READY_FOR_PICKUP: "repair_order.ready"}
TECHNICIAN_TARGETS = frozenset({Status.DIAGNOSING, Status.IN_PROGRESS, Status.AWAITING_PARTS,
                                Status.QUALITY_CHECK})
ADVISOR_ROLES = frozenset({StaffRole.ADMIN, StaffRole.MANAGER, StaffRole.SERVICE_ADVISOR})
WORKSHOP_ROLES = ADVISOR_ROLES | {StaffRole.TECHNICIAN}


def status_label(status: str) -> str:
    try:
        return str(STATUS_LABELS[Status(status)])
    except ValueError:
        return status


@dataclass(frozen=True, slots=True)
class OrderFacts:
    """What the transition guards look at besides the two states."""

    pending_approvals: int = 0
    open_labour_lines: int = 0  # not done and not declined
    running_clocks: int = 0


def transition_problem(current: str, target: str, facts: OrderFacts = OrderFacts()) -> str | None:
    """Why the order cannot go from ``current`` to ``target`` now, or None when it can."""
    try:
        now, to = Status(current), Status(target)
    except ValueError:
        return _("Unknown status.")
    if now == to:
        return _("The repair order is already “%(status)s”.", status=status_label(now))
    if not TRANSITIONS[now]:
        return _("This repair order is “%(status)s” and can no longer change.", status=status_label(now))
    if to not in TRANSITIONS[now]:
        return _("A repair order that is “%(current)s” cannot become “%(target)s”.",
                 current=status_label(now), target=status_label(to))
    if to == Status.AWAITING_APPROVAL and facts.pending_approvals == 0:
        return _("There is no extra work waiting for the customer's approval.")
    if now == Status.AWAITING_APPROVAL and to != Status.CANCELLED and facts.pending_approvals > 0:
        return _("The customer has not answered every item yet (%(n)s waiting).", n=facts.pending_approvals)
    if to == Status.QUALITY_CHECK and facts.running_clocks:
        return _("A technician's clock is still running on this order: stop it first.")
    if to == Status.QUALITY_CHECK and facts.open_labour_lines:
        return _("%(n)s operation(s) are not done yet.", n=facts.open_labour_lines)
    return None


def role_may_move(role: str, target: str) -> bool:
    """Advisors (and managers, admins) move orders anywhere allowed; technicians only inside the workshop."""
    if role in ADVISOR_ROLES:
        return True
    return role == StaffRole.TECHNICIAN and target in TECHNICIAN_TARGETS


def after_last_answer(status: str) -> Status | None:
    """Once every item is answered the order moves on by itself: to work (even if all were declined,
    the booked work remains)."""
    if status != Status.AWAITING_APPROVAL:
        return None
    return Status.IN_PROGRESS


def status_when_work_starts(status: str, skill: str) -> Status | None:
    """A technician's first clock on an open order moves it on: to diagnosing for a diagnosis, else to work."""
    if status != Status.OPEN:
        return None
    return Status.DIAGNOSING if skill == "diagnosis" else Status.IN_PROGRESS


def status_when_last_line_done(status: str) -> Status | None:
    """Work finished: the order goes to quality check (a diagnosis alone does not finish an order)."""
    return Status.QUALITY_CHECK if status == Status.IN_PROGRESS else None


# -- approvals ----------------------------------------------------------------------------------


class Decision(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DECLINED = "declined"


DECISION_LABELS = {
    Decision.PENDING: lazy_gettext("Waiting for the customer"),
    Decision.APPROVED: lazy_gettext("Approved"),
    Decision.DECLINED: lazy_gettext("Declined"),
}


def decision_from(value: str) -> Decision | None:
    """Accept the words a form or an API client sends; only approve or decline."""
    normalized = (value or "").strip().lower()
    if normalized in ("approve", "approved", "yes"):
        return Decision.APPROVED
    if normalized in ("decline", "declined", "no"):
        return Decision.DECLINED
    return None


def finding_price(labour_hours: Decimal, labour_rate: Decimal, parts_price: Decimal) -> Decimal:
    """What the customer is asked to approve: standard hours at the branch's rate plus parts."""
    return money(Decimal(labour_hours) * Decimal(labour_rate) + Decimal(parts_price))


# -- clocked time and totals --------------------------------------------------------------------


def clocked_minutes(started_at: datetime, stopped_at: datetime) -> int:
    """Whole minutes on the clock, at least one for any started clock (it was touched)."""
    seconds = (stopped_at - started_at).total_seconds()
    return max(1, round(seconds / 60)) if seconds > 0 else 0


@dataclass(frozen=True, slots=True)
class Totals:
    labour: Decimal
    parts: Decimal
    total: Decimal
    parts_cost: Decimal
    pending: Decimal  # extra work still waiting for an answer (not in the total)


def totals(labour_prices: Iterable[Decimal], parts: Iterable[Mapping],
           pending_prices: Iterable[Decimal] = ()) -> Totals:
    """The order's money so far: labour and parts lines that stand (declined work is never a line)."""
    labour = money(sum((Decimal(p) for p in labour_prices), Decimal(0)))
    parts_price = Decimal(0)
    parts_cost = Decimal(0)
    for part in parts:
        quantity = Decimal(part["quantity"])
        parts_price += quantity * Decimal(part["unit_price"])
        parts_cost += quantity * Decimal(part.get("unit_cost") or 0)
    parts_price, parts_cost = money(parts_price), money(parts_cost)
    return Totals(labour=labour, parts=parts_price, total=money(labour + parts_price), parts_cost=parts_cost,
                  pending=money(sum((Decimal(p) for p in pending_prices), Decimal(0))))


_RO_NUMBER = re.compile(r"^[A-Z0-9]{2,16}-\d{4,8}$")


def ro_number(branch_code: str, sequence: int) -> str:
    """``SH01-000042``: the branch and its own running number (never a global id)."""
    return f"{branch_code.upper()}-{sequence:06d}"


def normalize_ro_number(value: str) -> str | None:
    text = re.sub(r"\s+", "", (value or "")).upper()
    return text if _RO_NUMBER.match(text) else None


ENERGY_LEVELS = (0, 25, 50, 75, 100)
