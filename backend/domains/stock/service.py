"""Use cases for stock: search, vehicle records, status changes and reservations, photos, imports.

Speaks in plain values and domain errors; the request boundary (or the job) commits. The same methods
serve the screens, the JSON API and the worker.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import time
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backend.domains.accounts.guards import Principal
from backend.domains.audit import service as audit
from backend.lib.db import utcnow
from backend.lib.errors import Conflict, Forbidden, Invalid, NotFound
from backend.lib.i18n import current_locale
from backend.lib.i18n import gettext as _

from . import importer, photos, repository, rules, search_sql
from .models import Vehicle, VehicleImport, VehiclePhoto, VehicleReservation
from .rules import PUBLIC_STATUSES, VehicleStatus
from .schemas import FacetValue, SearchFilters, SearchResult, StatusChange, VehicleCreate, VehicleUpdate

MAY_SET_STATUS = ("admin", "manager")
# Fields an update may change, and which of them an audit entry records.
EDITABLE = ("make", "model", "trim", "model_year", "body", "powertrain", "battery_kwh", "range_km", "colour",
            "mileage_km", "condition", "list_price", "cost", "arrival_date", "lot_location", "features",
            "internal_notes", "eta")


@dataclass(slots=True)
class BranchInfo:
    id: int
    code: str
    name: str
    name_en: str | None

    def label(self) -> str:
        return self.name if current_locale() == "zh_CN" or not self.name_en else self.name_en


class _BranchCache:
    """Branches change rarely and every search needs their codes: keep them for a few seconds, and look
    again at once when a code or id is not found (so a new branch is never "unknown")."""

    ttl = 30.0

    def __init__(self) -> None:
        self.by_id: dict[int, BranchInfo] = {}
        self.by_code: dict[str, BranchInfo] = {}
        self.loaded_at = 0.0

    async def get(self, session: AsyncSession, *, code: str | None = None, ids=()) -> None:
        fresh = time.monotonic() - self.loaded_at < self.ttl
        missing = (code is not None and code not in self.by_code) or any(i not in self.by_id for i in ids)
        if fresh and not missing:
            return
        conn = await repository.driver(session)
        rows = await conn.fetch("SELECT id, code, name, name_en FROM branch")
        self.by_id = {r["id"]: BranchInfo(r["id"], r["code"], r["name"], r["name_en"]) for r in rows}
        self.by_code = {b.code: b for b in self.by_id.values()}
        self.loaded_at = time.monotonic()


branch_cache = _BranchCache()


def actor_of(principal: Principal | None) -> tuple[str, int | None, str]:
    if principal is None:
        return "system", None, "system"
    return principal.kind, principal.id, principal.audit_label


class StockService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # -- search ---------------------------------------------------------------------------------

    async def search(self, filters: SearchFilters, *, principal: Principal | None = None,
                     staff: bool = False) -> SearchResult:
        """The customer's search (``staff`` False) or the staff search, scoped to the person's branch."""
        scope = principal.branch_scope if staff and principal is not None else None
        branch_id = None
        if filters.branch is not None:
            await branch_cache.get(self.session, code=filters.branch)
            branch = branch_cache.by_code.get(filters.branch)
            if branch is None:
                raise Invalid(_("Unknown branch “%(code)s”.", code=filters.branch),
                              fields={"branch": _("Unknown value “%(value)s”.", value=filters.branch)})
            branch_id = branch.id
        built = search_sql.build(filters, staff=staff, scope_branch_id=scope, branch_id=branch_id)
        facet_rows, items = await repository.search(self.session, built)
        total, counts = search_sql.decode_facets(facet_rows, built.facets)
        branch_ids = {int(v) for v in counts.get("branch", {})} | {i["branch_id"] for i in items}
        await branch_cache.get(self.session, ids=branch_ids)
        today = date.today()
        for item in items:
            for name in ("eta", "arrival_date"):
                if item.get(name):
                    item[name] = date.fromisoformat(item[name])
            if item.get("reserved_at"):
                item["reserved_at"] = datetime.fromisoformat(item["reserved_at"])
            item["photo_url"] = photos.url(item.pop("photo"), thumbnail=True) if item.get("photo") else None
            if staff:
                item["days_in_stock"] = (rules.days_in_stock(item.get("arrival_date"), today)
                                         if item["status"] != VehicleStatus.IN_TRANSIT else None)
        return SearchResult(filters=filters, items=items, total=total, facets=self._facets(counts),
                            price_steps={int(k): v for k, v in counts.get("price", {}).items()},
                            from_counts=built.from_counts)

    def _facets(self, counts: dict[str, dict[str, int]]) -> dict[str, list[FacetValue]]:
        labels = _CODE_LABELS
        locale = current_locale()
        facets: dict[str, list[FacetValue]] = {}
        for name, values in counts.items():
            if name == "price":
                steps = {int(k): v for k, v in values.items()}
                facets[name] = [
                    FacetValue(value=f"{'' if low is None else low}-{'' if high is None else high}",
                               label=_price_band_label(locale, low, high), count=n)
                    for low, high in rules.price_bands() if (n := rules.band_count(steps, low, high))
                ]
                continue
            if name == "branch":
                entries = []
                for value, n in values.items():
                    branch = branch_cache.by_id.get(int(value))
                    if branch is not None:
                        entries.append(FacetValue(value=branch.code, label=branch.label(), count=n))
                facets[name] = sorted(entries, key=lambda f: f.label)
                continue
            table = labels.get(name)
            entries = [FacetValue(value=value, label=_code_label(locale, name, value) if table else value,
                                  count=n) for value, n in values.items()]
            if name == "year":
                entries.sort(key=lambda f: f.value, reverse=True)
            elif table:
                order = list(table)
                entries.sort(key=lambda f: order.index(f.value) if f.value in order else len(order))
            else:
                entries.sort(key=lambda f: (-f.count, f.value))
            facets[name] = entries
        return facets

    # -- one vehicle --------------------------------------------------------------------------------

    async def public_vehicle(self, vehicle_id: int) -> tuple[Vehicle, list[VehiclePhoto], BranchInfo]:
        """A car as customers see it: only cars in stock or in transit exist for them."""
        vehicle = await repository.vehicle_by_id(self.session, vehicle_id)
        if vehicle is None or vehicle.status not in PUBLIC_STATUSES:
            raise NotFound()
        return vehicle, await repository.photos_of(self.session, vehicle.id), await self._branch(vehicle.branch_id)

    async def staff_vehicle(self, principal: Principal, vehicle_id: int, *, for_update: bool = False) -> Vehicle:
        """A car the person may see: another branch's car is "not found" (not "forbidden": no probing)."""
        vehicle = await repository.vehicle_by_id(self.session, vehicle_id, for_update=for_update)
        if vehicle is None or (principal.branch_scope is not None and vehicle.branch_id != principal.branch_scope):
            raise NotFound()
        return vehicle

    async def staff_details(self, principal: Principal, vehicle_id: int) -> dict:
        vehicle = await self.staff_vehicle(principal, vehicle_id)
        return {
            "vehicle": vehicle,
            "photos": await repository.photos_of(self.session, vehicle.id),
            "branch": await self._branch(vehicle.branch_id),
            "reservation": await repository.open_reservation(self.session, vehicle.id),
            "history": await repository.reservations_of(self.session, vehicle.id),
            "days_in_stock": (rules.days_in_stock(vehicle.arrival_date, date.today())
                              if vehicle.status != VehicleStatus.IN_TRANSIT else None),
        }

    async def _branch(self, branch_id: int) -> BranchInfo:
        await branch_cache.get(self.session, ids=[branch_id])
        return branch_cache.by_id[branch_id]

    async def find_by_vin(self, principal: Principal, text: str) -> list[dict]:
        """The VIN box: a full VIN or the last six characters, within the person's branch."""
        kind = rules.vin_lookup_kind(text)
        if kind is None:
            raise Invalid(fields={"vin": _("Enter the full VIN (17 characters) or its last 6 characters.")})
        result = await self.search(SearchFilters(vin=rules.normalize_vin(text), status=None), principal=principal,
                                   staff=True)
        return result.items

    # -- create and update --------------------------------------------------------------------------

    async def _check_branch(self, principal: Principal, branch_id: int) -> None:
        if principal.branch_scope is not None and branch_id != principal.branch_scope:
            raise Invalid(fields={"branch_id": _("You can only add cars to your own branch.")})
        await branch_cache.get(self.session, ids=[branch_id])
        if branch_id not in branch_cache.by_id:
            raise Invalid(fields={"branch_id": _("Unknown branch.")})

    async def create_vehicle(self, principal: Principal, data: VehicleCreate) -> Vehicle:
        fields: dict[str, str] = {}
        if problem := rules.vin_problem(data.vin):
            fields["vin"] = problem[1]
        if problem := rules.electrics_problem(data.powertrain, data.battery_kwh, data.range_km):
            fields["powertrain"] = problem
        if data.status not in rules.IMPORTABLE_STATUSES:
            fields["status"] = _("A new car starts in stock, in transit or as a demonstrator.")
        elif data.status == VehicleStatus.IN_TRANSIT and data.eta is None:
            fields["eta"] = _("Give the expected arrival date (ETA) of a car in transit.")
        if fields:
            raise Invalid(fields=fields)
        await self._check_branch(principal, data.branch_id)
        values = data.model_dump()
        if data.status == VehicleStatus.IN_STOCK and values.get("arrival_date") is None:
            values["arrival_date"] = date.today()
        vehicle = Vehicle(**values)
        try:
            async with self.session.begin_nested():
                self.session.add(vehicle)
                await self.session.flush()
        except IntegrityError as exc:
            message = _("A car with this VIN is already in stock.")
            raise Conflict(message, fields={"vin": message}) from exc
        await audit.record_by(self.session, principal, action="create", entity="vehicle", entity_id=vehicle.id,
                              branch_id=vehicle.branch_id,
                              after={"vin": vehicle.vin, "make": vehicle.make, "model": vehicle.model,
                                     "status": vehicle.status, "list_price": vehicle.list_price})
        await self.session.refresh(vehicle)
        return vehicle

    async def update_vehicle(self, principal: Principal, vehicle_id: int, data: VehicleUpdate) -> Vehicle:
        vehicle = await self.staff_vehicle(principal, vehicle_id, for_update=True)
        changes = data.model_dump(exclude_unset=True)
        powertrain = changes.get("powertrain", vehicle.powertrain)
        battery = changes.get("battery_kwh", vehicle.battery_kwh)
        range_km = changes.get("range_km", vehicle.range_km)
        if problem := rules.electrics_problem(powertrain, battery, range_km):
            raise Invalid(fields={"powertrain": problem})
        if "eta" in changes and changes["eta"] is None and vehicle.status == VehicleStatus.IN_TRANSIT:
            raise Invalid(fields={"eta": _("Give the expected arrival date (ETA) of a car in transit.")})
        for name in ("make", "model", "body", "powertrain", "condition", "model_year", "list_price", "mileage_km"):
            if name in changes and changes[name] is None:
                raise Invalid(fields={name: _("This field is required.")})
        before, after = {}, {}
        for name, value in changes.items():
            if name in EDITABLE and getattr(vehicle, name) != value:
                before[name], after[name] = getattr(vehicle, name), value
                setattr(vehicle, name, value)
        if after:
            vehicle.updated_at = utcnow()
            await self.session.flush()
            await audit.record_by(self.session, principal, action="update", entity="vehicle", entity_id=vehicle.id,
                                  branch_id=vehicle.branch_id, before=before, after=after)
            await self.session.refresh(vehicle)
        return vehicle

    # -- status, reservations -------------------------------------------------------------------------

    async def change_status(self, principal: Principal, vehicle_id: int, change: StatusChange) -> Vehicle:
        """One door for every status change; reserving and releasing need a reason."""
        vehicle = await self.staff_vehicle(principal, vehicle_id)
        target = change.status
        releasing = vehicle.status == VehicleStatus.RESERVED and target in rules.RESERVABLE
        if target != VehicleStatus.RESERVED and not releasing and principal.role not in MAY_SET_STATUS:
            raise Forbidden(_("Only managers change a car's status; salespeople reserve and release."))
        if target == VehicleStatus.RESERVED:
            return await self.reserve(principal, vehicle_id, change.reason)
        if releasing:
            return await self.release(principal, vehicle_id, change.reason)
        if problem := rules.transition_problem(vehicle.status, target, eta=change.eta or vehicle.eta):
            raise Conflict(problem, fields={"status": problem})
        extra: dict = {}
        if target == VehicleStatus.IN_TRANSIT:
            extra["eta"] = change.eta or vehicle.eta
        if target == VehicleStatus.IN_STOCK and vehicle.arrival_date is None:
            extra["arrival_date"] = date.today()
        old = await repository.set_status_if(self.session, vehicle.id, expected=[vehicle.status], status=target,
                                             **extra)
        if old is None:
            raise Conflict()  # someone changed it between our read and our write
        if vehicle.status == VehicleStatus.RESERVED:  # sold while reserved: the reservation ends here
            reservation = await repository.open_reservation(self.session, vehicle.id)
            if reservation is not None:
                reservation.released_at = utcnow()
                reservation.released_by_label = principal.audit_label
                reservation.release_reason = change.reason or rules.status_label(target)
        await audit.record_by(self.session, principal, action="status", entity="vehicle", entity_id=vehicle.id,
                              branch_id=vehicle.branch_id, before={"status": old},
                              after={"status": target.value, "reason": change.reason or None, **extra})
        await self.session.refresh(vehicle)
        return vehicle

    async def reserve(self, principal: Principal, vehicle_id: int, reason: str) -> Vehicle:
        """Hold a car. Of two people reserving the same car at once exactly one succeeds: the status
        moves by a conditional UPDATE, and an open reservation is unique per car in the database."""
        reason = (reason or "").strip()
        if not reason:
            raise Invalid(fields={"reason": _("Say who the car is reserved for, or why.")})
        if len(reason) > 300:
            raise Invalid(fields={"reason": _("Use at most %(n)s characters.", n=300)})
        vehicle = await self.staff_vehicle(principal, vehicle_id)
        if problem := rules.reserve_problem(vehicle.status):
            raise Conflict(problem)
        previous = await repository.set_status_if(self.session, vehicle.id, expected=list(rules.RESERVABLE),
                                                  status=VehicleStatus.RESERVED)
        if previous is None:
            raise Conflict(_("Someone else reserved or sold this car a moment ago."))
        reservation = VehicleReservation(vehicle_id=vehicle.id, branch_id=vehicle.branch_id, previous_status=previous,
                                         reason=reason, reserved_by_id=principal.id,
                                         reserved_by_kind=principal.kind, reserved_by_label=principal.audit_label)
        self.session.add(reservation)
        await self.session.flush()
        await audit.record_by(self.session, principal, action="reserve", entity="vehicle", entity_id=vehicle.id,
                              branch_id=vehicle.branch_id, before={"status": previous},
                              after={"status": VehicleStatus.RESERVED.value, "reason": reason})
        await self.session.refresh(vehicle)
        return vehicle

    async def release(self, principal: Principal, vehicle_id: int, reason: str) -> Vehicle:
        reason = (reason or "").strip()
        if not reason:
            raise Invalid(fields={"reason": _("Say why the reservation ends.")})
        if len(reason) > 300:
            raise Invalid(fields={"reason": _("Use at most %(n)s characters.", n=300)})
        vehicle = await self.staff_vehicle(principal, vehicle_id, for_update=True)
        reservation = await repository.open_reservation(self.session, vehicle.id)
        if vehicle.status != VehicleStatus.RESERVED:
            raise Conflict(_("This car is not reserved."))
        target = rules.release_target(reservation.previous_status if reservation else None)
        old = await repository.set_status_if(self.session, vehicle.id, expected=[VehicleStatus.RESERVED],
                                             status=target)
        if old is None:
            raise Conflict()
        if reservation is not None:
            reservation.released_at = utcnow()
            reservation.released_by_label = principal.audit_label
            reservation.release_reason = reason
        await audit.record_by(self.session, principal, action="release", entity="vehicle", entity_id=vehicle.id,
                              branch_id=vehicle.branch_id, before={"status": VehicleStatus.RESERVED.value},
                              after={"status": target.value, "reason": reason})
        await self.session.refresh(vehicle)
        return vehicle

    # -- photos -------------------------------------------------------------------------------------

    async def add_photo(self, principal: Principal, vehicle_id: int, data: bytes) -> VehiclePhoto:
        vehicle = await self.staff_vehicle(principal, vehicle_id)
        try:
            processed = await asyncio.to_thread(photos.process, data)  # CPU-heavy: off the event loop
        except photos.PhotoError as exc:
            raise Invalid(str(exc), fields={"photo": str(exc)}) from exc
        key = photos.new_key()
        await asyncio.to_thread(photos.store, key, processed)
        photo = VehiclePhoto(vehicle_id=vehicle.id, file_key=key, width=processed.width, height=processed.height,
                             position=await repository.next_photo_position(self.session, vehicle.id))
        self.session.add(photo)
        await self.session.flush()
        await audit.record_by(self.session, principal, action="photo", entity="vehicle", entity_id=vehicle.id,
                              branch_id=vehicle.branch_id, after={"photo": key})
        return photo

    # -- imports ------------------------------------------------------------------------------------

    async def start_import(self, principal: Principal, filename: str, data: bytes) -> VehicleImport:
        """Check the file and its header now (a bad file changes nothing); the rows are the worker's job."""
        file_format = importer.sniff_format(data) if data else "csv"
        if file_format is None:
            raise Invalid(_("This is not a CSV file or an Excel workbook (.xlsx)."),
                          fields={"file": _("This is not a CSV file or an Excel workbook (.xlsx).")})
        try:
            parsed = await asyncio.to_thread(importer.open_file, data, file_format)
        except importer.ImportFileError as exc:
            raise Invalid(str(exc), fields={"file": str(exc)}) from exc
        if parsed.total_rows == 0:
            message = _("The file has a header but no rows.")
            raise Invalid(message, fields={"file": message})
        safe_name = "".join(ch for ch in filename if ch.isprintable() and ch not in "/\\")[-120:] or "upload"
        record = VehicleImport(filename=safe_name, file_format=file_format, content=data,
                               file_sha256=hashlib.sha256(data).hexdigest(), branch_id=principal.branch_scope,
                               created_by_id=principal.id, created_by_kind=principal.kind,
                               created_by_label=principal.audit_label, total_rows=parsed.total_rows,
                               locale=current_locale())
        self.session.add(record)
        await self.session.flush()
        await audit.record_by(self.session, principal, action="import", entity="vehicle_import", entity_id=record.id,
                              branch_id=principal.branch_scope,
                              after={"filename": safe_name, "rows": parsed.total_rows})
        return record

    async def get_import(self, principal: Principal, import_id: int) -> VehicleImport:
        record = await repository.import_by_id(self.session, import_id)
        if record is None or (principal.branch_scope is not None and record.branch_id != principal.branch_scope):
            raise NotFound()
        return record

    async def recent_imports(self, principal: Principal) -> list[VehicleImport]:
        return await repository.recent_imports(self.session, branch_id=principal.branch_scope)

    async def rejections(self, principal: Principal, import_id: int):
        record = await self.get_import(principal, import_id)
        return record, await repository.rejections_of(self.session, record.id)


_CODE_LABELS = {"body": rules.BODY_LABELS, "powertrain": rules.POWERTRAIN_LABELS,
                "condition": rules.CONDITION_LABELS, "status": rules.STATUS_LABELS}


@functools.lru_cache(maxsize=512)
def _code_label(locale: str, facet: str, value: str) -> str:
    """A body, powertrain, condition or status code's label in ``locale`` (the current one; part of the key)."""
    table = _CODE_LABELS[facet]
    return str(table[value]) if value in table else value


@functools.lru_cache(maxsize=64)
def _price_band_label(locale: str, low: int | None, high: int | None) -> str:
    """The band's label in ``locale`` (the current one; part of the key): the same few on every search, and
    number formatting is most of the time the search spends in Python."""
    from backend.lib.i18n import format_number

    if low is None:
        return _("Under ¥%(amount)s", amount=format_number(high + 1))
    if high is None:
        return _("¥%(amount)s and above", amount=format_number(low))
    return _("¥%(low)s – %(high)s", low=format_number(low), high=format_number(high + 1))


# -- running an import (the worker's job) ---------------------------------------------------------------

IMPORT_CHUNK_ROWS = 5_000
IMPORT_JOB = "import_vehicles"  # the arq function in workers/stock_jobs.py
IMPORT_LOCK_CLASS = 3779  # pg advisory lock (class, import id): one runner per import at a time


def import_job_id(import_id: int) -> str:
    return f"stock-import-{import_id}"


def _check_chunk(rows, size: int, parsed: importer.ParsedFile, context: importer.ImportContext,
                 seen: dict[str, int]) -> tuple[list[tuple], list[tuple[int, str, str, str]], int]:
    """Read and check up to ``size`` rows (runs in a thread: parsing is CPU work)."""
    import json

    records: list[tuple] = []
    rejected: list[tuple[int, str, str, str]] = []
    count = 0
    for number, cells in rows:
        count += 1
        if isinstance(cells, Exception):
            rejected.append((number, "", _("This line cannot be read: %(problem)s", problem=str(cells)), "{}"))
        else:
            try:
                record, vin = importer.check_row(cells, parsed.columns, context)
            except importer.RowError as exc:
                raw = importer.raw_row(cells, parsed.header)
                vin = raw.get(parsed.header[parsed.columns["vin"]], "") if "vin" in parsed.columns else ""
                rejected.append((number, vin, str(exc), json.dumps(raw, ensure_ascii=False)))
            else:
                if vin in seen:
                    raw = importer.raw_row(cells, parsed.header)
                    rejected.append((number, vin, _("The same VIN is already in row %(row)s of this file.",
                                                    row=seen[vin]), json.dumps(raw, ensure_ascii=False)))
                else:
                    seen[vin] = number
                    records.append((number, *record))
        if count >= size:
            break
    return records, rejected, count


async def run_import(session_maker, import_id: int, *, chunk_rows: int = IMPORT_CHUNK_ROWS) -> str:
    """Import a stored file: safe to run twice and from two workers (an advisory lock lets one run; a rerun
    of a finished import does nothing; a rerun after a crash upserts the same rows again, changing nothing).

    Each chunk of rows is written, with its rejected rows and the progress counters, in a transaction of
    its own, so the progress bar shows what is really committed.
    """
    from sqlalchemy import text

    from backend.lib import i18n
    from backend.lib.db import unit_of_work

    async with session_maker() as lock_session:
        locked = await lock_session.scalar(text("SELECT pg_try_advisory_lock(:c, :i)"),
                                           {"c": IMPORT_LOCK_CLASS, "i": import_id})
        if not locked:
            return "busy"
        try:
            async with unit_of_work(session_maker) as session:
                record = await repository.import_by_id(session, import_id, for_update=True)
                if record is None:
                    return "missing"
                if record.state in ("done", "failed"):
                    return record.state
                i18n.set_locale(record.locale or "en")
                record.state = "running"
                record.started_at = record.started_at or utcnow()
                record.processed_rows = record.inserted = record.updated = record.unchanged = record.rejected = 0
                await repository.clear_rejections(session, import_id)
                branch_codes = await repository.branch_ids_by_code(session)
                content, file_format, scope = record.content, record.file_format, record.branch_id
                actor = (record.created_by_kind, record.created_by_id, record.created_by_label)
            default_branch = scope or (next(iter(branch_codes.values())) if len(branch_codes) == 1 else None)
            context = importer.ImportContext(branch_ids_by_code=branch_codes, scope_branch_id=scope,
                                             default_branch_id=default_branch, today=date.today())
            try:
                parsed = await asyncio.to_thread(importer.open_file, content, file_format)
            except importer.ImportFileError as exc:
                async with unit_of_work(session_maker) as session:
                    await repository.touch_import(session, import_id, state="failed", error=str(exc),
                                                  finished_at=utcnow())
                return "failed"
            columns = importer.columns_written(parsed.columns)
            seen: dict[str, int] = {}
            def read_ahead() -> asyncio.Task:
                return asyncio.ensure_future(asyncio.to_thread(_check_chunk, parsed.rows, chunk_rows, parsed,
                                                               context, seen))

            # Reading the next chunk (Python, in a thread) overlaps with writing this one (PostgreSQL).
            upcoming = read_ahead()
            while True:
                try:
                    records, rejected, count = await upcoming
                    if count:
                        upcoming = read_ahead()
                except importer.ImportFileError as exc:  # found while reading on (e.g. too many rows)
                    async with unit_of_work(session_maker) as session:
                        await repository.touch_import(session, import_id, state="failed", error=str(exc),
                                                      finished_at=utcnow())
                    return "failed"
                if count == 0:
                    break
                async with unit_of_work(session_maker) as session:
                    if scope is not None and records:
                        existing = await repository.existing_by_vin(session, [r[1] for r in records])
                        foreign = {vin for vin, (branch_id, _status) in existing.items() if branch_id != scope}
                        if foreign:
                            message = _("This VIN belongs to a car of another branch.")
                            rejected += [(r[0], r[1], message, "{}") for r in records if r[1] in foreign]
                            records = [r for r in records if r[1] not in foreign]
                    inserted = updated = 0
                    if records:
                        inserted, updated = await repository.bulk_upsert(session, records, columns=columns,
                                                                         actor=actor)
                    await repository.add_rejections(session, import_id, rejected)
                    current = await repository.import_by_id(session, import_id, for_update=True)
                    current.processed_rows += count
                    current.inserted += inserted
                    current.updated += updated
                    current.unchanged += len(records) - inserted - updated
                    current.rejected += len(rejected)
                    current.total_rows = max(current.total_rows, current.processed_rows)
            async with unit_of_work(session_maker) as session:
                current = await repository.import_by_id(session, import_id, for_update=True)
                current.state = "done"
                current.total_rows = current.processed_rows
                current.finished_at = utcnow()
            return "done"
        finally:
            await lock_session.execute(text("SELECT pg_advisory_unlock(:c, :i)"),
                                       {"c": IMPORT_LOCK_CLASS, "i": import_id})
            await lock_session.commit()


async def stale_imports(session: AsyncSession, *, queued_for: float, running_for: float) -> list[int]:
    """Imports whose job was lost (Redis flushed, worker died): the sweeper enqueues them again."""
    from sqlalchemy import text

    rows = await session.execute(text("""
        SELECT id FROM vehicle_import
        WHERE (state = 'queued' AND created_at < now() - make_interval(secs => :queued))
           OR (state = 'running' AND started_at < now() - make_interval(secs => :running))
        ORDER BY id LIMIT 100"""), {"queued": queued_for, "running": running_for})
    return list(rows.scalars())
