"""Screens: the customer's stock search and car page, the staff stock screen, reservations, imports, photos."""

from __future__ import annotations

import csv
import io
import logging
from typing import Annotated

from litestar import Controller, Request, Response, get, post
from litestar.background_tasks import BackgroundTask
from litestar.datastructures import UploadFile
from litestar.di import Provide
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import File, Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from backend.domains.accounts.guards import roles_required, sessions_only, staff_required
from backend.domains.accounts.rules import StaffRole
from backend.lib.errors import Conflict, DomainError, Invalid, NotFound
from backend.lib.forms import parse_form
from backend.lib.htmx import is_fragment_request, page
from backend.lib.i18n import format_number
from backend.lib.i18n import gettext as _

from . import importer, photos, rules
from .schemas import ReasonForm, SearchFilters, StatusChange, VehicleCreate, parse_filters
from .service import IMPORT_JOB, StockService, import_job_id

IMPORT_MAX_BYTES = importer.MAX_FILE_BYTES + 1024 * 1024  # the file plus the form around it
PHOTO_MAX_BYTES = photos.MAX_PHOTO_BYTES + 1024 * 1024


def provide_stock(db_session: AsyncSession) -> StockService:
    return StockService(db_session)


stock_dependencies = {"stock": Provide(provide_stock, sync_to_thread=False)}
LABELS = {
    "body": rules.BODY_LABELS, "powertrain": rules.POWERTRAIN_LABELS, "condition": rules.CONDITION_LABELS,
    "status": rules.STATUS_LABELS, "sort": rules.SORT_LABELS,
}


def _search_context(request: Request, result, problems: dict[str, str], *, staff: bool) -> dict:
    notice = None
    if problems:
        notice = _("Some filters were not understood and were ignored: %(names)s.",
                   names=", ".join(sorted(problems)))
    steps = result.price_steps
    price_options = {
        "min": [(edge, _("From ¥%(amount)s", amount=format_number(edge)), rules.band_count(steps, edge, None))
                for edge in rules.PRICE_EDGES],
        "max": [(edge - 1, _("Under ¥%(amount)s", amount=format_number(edge)), rules.band_count(steps, None, edge - 1))
                for edge in rules.PRICE_EDGES],
    }
    for key, current in (("min", result.filters.min_price), ("max", result.filters.max_price)):
        if current is not None and all(value != current for value, _label, _n in price_options[key]):
            price_options[key].append((current, "¥" + format_number(current), result.total))
    years = {int(f.value): f.count for f in result.facets.get("year", [])}
    year_options = {
        "from": [(y, sum(n for year, n in years.items() if year >= y)) for y in sorted(years, reverse=True)],
        "to": [(y, sum(n for year, n in years.items() if year <= y)) for y in sorted(years, reverse=True)],
    }
    return {
        "result": result, "filters": result.filters, "problems": problems, "notice": notice, "labels": LABELS,
        "staff": staff, "fragment": is_fragment_request(request),
        "base_path": "/staff/stock" if staff else "/stock", "price_options": price_options,
        "year_options": year_options,
    }


def _page(request: Request, template: str, context: dict, *, block: str, status_code: int = 200) -> Template:
    """:func:`page`, with the address bar showing the filters in use (no empty or ignored parameters)."""
    query = context["filters"].query_string()
    return page(request, template, context, block=block, status_code=status_code,
                push_url=context["base_path"] + (f"?{query}" if query else ""))


async def _search(request: Request, stock: StockService, *, staff: bool) -> tuple[object, dict[str, str]]:
    filters, problems = parse_filters(request.query_params.dict(), staff=staff, allow_unknown_names=True)
    try:
        result = await stock.search(filters, principal=request.user, staff=staff)
    except Invalid as exc:  # an unknown branch code: ignore it like any other unknown value
        problems |= exc.fields
        filters = SearchFilters(**{**_as_dict(filters), "branch": None})
        result = await stock.search(filters, principal=request.user, staff=staff)
    return result, problems


def _as_dict(filters: SearchFilters) -> dict:
    return {name: getattr(filters, name) for name in filters.__slots__}


class StockController(Controller):
    """What customers see: no sign-in, only cars in stock or in transit, never costs or reservations."""

    include_in_schema = False
    dependencies = stock_dependencies

    @get("/stock", name="stock_search")
    async def search(self, request: Request, stock: StockService) -> Template:
        result, problems = await _search(request, stock, staff=False)
        return _page(request, "stock/search.html", _search_context(request, result, problems, staff=False),
                     block="results")

    @get("/stock/{vehicle_id:int}", name="stock_vehicle")
    async def vehicle(self, request: Request, stock: StockService, vehicle_id: int) -> Template:
        vehicle, vehicle_photos, branch = await stock.public_vehicle(vehicle_id)
        return page(request, "stock/vehicle.html", {
            "vehicle": vehicle, "photos": vehicle_photos, "branch": branch, "labels": LABELS,
            "photo_url": photos.url, "back": request.query_params.get("back"),
        })

    @get("/media/vehicles/{file_name:str}", name="vehicle_photo")
    async def photo(self, file_name: str) -> File:
        path = photos.path_for(file_name)
        if path is None:
            raise NotFound()
        # The key is random and the content never changes for it.
        return File(path=path, content_disposition_type="inline", media_type="image/jpeg",
                    headers={"Cache-Control": "public, max-age=31536000, immutable"})


class StaffStockController(Controller):
    path = "/staff/stock"
    include_in_schema = False
    guards = [staff_required, sessions_only]
    dependencies = stock_dependencies

    @get("/", name="staff_stock")
    async def search(self, request: Request, stock: StockService) -> Template:
        result, problems = await _search(request, stock, staff=True)
        context = _search_context(request, result, problems, staff=True)
        return _page(request, "stock/staff.html", context, block="results")

    @get("/{vehicle_id:int}")
    async def vehicle(self, request: Request, stock: StockService, vehicle_id: int) -> Template:
        details = await stock.staff_details(request.user, vehicle_id)
        return page(request, "stock/staff_vehicle.html", _vehicle_context(details), block="actions")

    @post("/{vehicle_id:int}/reserve", guards=[roles_required(StaffRole.SALES, StaffRole.MANAGER)])
    async def reserve(self, request: Request, stock: StockService, vehicle_id: int) -> Response:
        values, errors = parse_form(ReasonForm, await request.form())
        if values is None:
            return await _actions_again(request, stock, vehicle_id, {"reserve_reason": errors.get("reason")})
        await stock.reserve(request.user, vehicle_id, values.reason)
        return await _after_action(request, stock, vehicle_id, _("Reserved."))

    @post("/{vehicle_id:int}/release", guards=[roles_required(StaffRole.SALES, StaffRole.MANAGER)])
    async def release(self, request: Request, stock: StockService, vehicle_id: int) -> Response:
        values, errors = parse_form(ReasonForm, await request.form())
        if values is None:
            return await _actions_again(request, stock, vehicle_id, {"release_reason": errors.get("reason")})
        await stock.release(request.user, vehicle_id, values.reason)
        return await _after_action(request, stock, vehicle_id, _("The reservation has ended."))

    @post("/{vehicle_id:int}/status", guards=[roles_required(StaffRole.MANAGER)])
    async def status(self, request: Request, stock: StockService, vehicle_id: int) -> Response:
        form = {k: v for k, v in (await request.form()).items() if v != ""}
        values, errors = parse_form(StatusChange, form)
        if values is None:
            return await _actions_again(request, stock, vehicle_id,
                                        {f"status_{k}": v for k, v in errors.items()})
        await stock.change_status(request.user, vehicle_id, values)
        return await _after_action(request, stock, vehicle_id, _("Status changed."))

    @post("/{vehicle_id:int}/photos", guards=[roles_required(StaffRole.SALES, StaffRole.MANAGER)],
          request_max_body_size=PHOTO_MAX_BYTES)
    async def add_photo(self, request: Request, stock: StockService, vehicle_id: int,
                        data: Annotated[dict, Body(media_type=RequestEncodingType.MULTI_PART)]) -> Response:
        upload = data.get("photo")
        if not isinstance(upload, UploadFile):
            return await _actions_again(request, stock, vehicle_id, {"photo": _("Choose a photo to upload.")})
        try:
            await stock.add_photo(request.user, vehicle_id, await upload.read())
        except Invalid as exc:
            return await _actions_again(request, stock, vehicle_id, {"photo": exc.fields.get("photo", exc.message)})
        return await _after_action(request, stock, vehicle_id, _("Photo added."))

    @get("/new", guards=[roles_required(StaffRole.MANAGER)])
    async def new_vehicle(self, request: Request, stock: StockService) -> Template:
        return page(request, "stock/new.html", await _new_context(stock, request, {}, {}), block="form")

    @post("/new", guards=[roles_required(StaffRole.MANAGER)])
    async def create_vehicle(self, request: Request, stock: StockService) -> Response:
        form = {k: v for k, v in (await request.form()).items() if k != "_csrf_token"}
        raw = dict(form)
        form["features"] = [f.strip() for f in str(form.get("features", "")).split(",") if f.strip()]
        form = {k: v for k, v in form.items() if v not in ("", None)}
        values, errors = parse_form(VehicleCreate, form)
        if values is not None:
            try:
                vehicle = await stock.create_vehicle(request.user, values)
            except (Invalid, Conflict) as exc:
                errors = exc.fields or {"vin": exc.message}
            else:
                return Redirect(f"/staff/stock/{vehicle.id}", status_code=303)
        return page(request, "stock/new.html", await _new_context(stock, request, raw, errors), block="form",
                    status_code=422)


async def _new_context(stock: StockService, request: Request, values: dict, errors: dict) -> dict:
    from backend.domains.branches import service as branches

    return {"values": values, "errors": errors, "labels": LABELS,
            "branches": await branches.visible_branches(stock.session, scope=request.user.branch_scope),
            "statuses": rules.IMPORTABLE_STATUSES}


def _vehicle_context(details: dict, errors: dict | None = None, notice: str | None = None) -> dict:
    return {**details, "labels": LABELS, "errors": errors or {}, "notice": notice, "photo_url": photos.url,
            "transitions": sorted(rules.TRANSITIONS[rules.VehicleStatus(details["vehicle"].status)] -
                                  {rules.VehicleStatus.RESERVED}),
            "reservable": details["vehicle"].status in rules.RESERVABLE}


async def _actions_again(request: Request, stock: StockService, vehicle_id: int, errors: dict) -> Template:
    details = await stock.staff_details(request.user, vehicle_id)
    return page(request, "stock/staff_vehicle.html", _vehicle_context(details, errors), block="actions",
                status_code=422)


async def _after_action(request: Request, stock: StockService, vehicle_id: int, notice: str) -> Response:
    if not is_fragment_request(request):
        return Redirect(f"/staff/stock/{vehicle_id}", status_code=303)
    details = await stock.staff_details(request.user, vehicle_id)
    return page(request, "stock/staff_vehicle.html", _vehicle_context(details, notice=notice), block="actions")


class StockImportController(Controller):
    path = "/staff/stock/imports"
    include_in_schema = False
    guards = [roles_required(StaffRole.MANAGER), sessions_only]
    dependencies = stock_dependencies

    @get("/")
    async def index(self, request: Request, stock: StockService) -> Template:
        return page(request, "stock/imports.html", {"imports": await stock.recent_imports(request.user),
                                                    "errors": {}, "headers": importer.HEADERS,
                                                    "required": importer.REQUIRED})

    @post("/", request_max_body_size=IMPORT_MAX_BYTES)
    async def upload(self, request: Request, stock: StockService,
                     data: Annotated[dict, Body(media_type=RequestEncodingType.MULTI_PART)]) -> Response:
        upload = data.get("file")
        try:
            if not isinstance(upload, UploadFile) or not upload.filename:
                raise Invalid(fields={"file": _("Choose a CSV or Excel file to import.")})
            record = await stock.start_import(request.user, upload.filename, await upload.read())
        except DomainError as exc:
            context = {"imports": await stock.recent_imports(request.user), "headers": importer.HEADERS,
                       "required": importer.REQUIRED, "errors": exc.fields or {"file": exc.message}}
            return page(request, "stock/imports.html", context, status_code=422)
        # Enqueued after the response, i.e. after this request's transaction committed the import.
        task = BackgroundTask(_enqueue_import, request.app.state, record.id)
        target = f"/staff/stock/imports/{record.id}"
        if is_fragment_request(request):
            return Response(None, status_code=200, headers={"HX-Location": target}, background=task)
        return Redirect(target, status_code=303, background=task)

    @get("/{import_id:int}")
    async def progress(self, request: Request, stock: StockService, import_id: int) -> Template:
        record = await stock.get_import(request.user, import_id)
        return page(request, "stock/import.html", {"record": record}, block="progress")

    @get("/{import_id:int}/rejected.csv")
    async def rejected_report(self, request: Request, stock: StockService, import_id: int) -> Response:
        record, rejected = await stock.rejections(request.user, import_id)
        out = io.StringIO()
        out.write("\ufeff")  # so that Excel reads UTF-8
        writer = csv.writer(out)
        raw_names: list[str] = []
        for row in rejected:
            raw_names += [k for k in row.raw if k not in raw_names]
        writer.writerow([_("Row"), "VIN", _("Reason"), *raw_names])
        for row in rejected:
            writer.writerow([row.row_number, row.vin, row.reason, *[_safe_cell(row.raw.get(k, "")) for k in raw_names]])
        return Response(out.getvalue().encode("utf-8"), media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="import-{record.id}-rejected.csv"'})


def _safe_cell(value: str) -> str:
    """Cells starting with = + - @ would be formulas in a spreadsheet: quote them."""
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value


async def _enqueue_import(state, import_id: int) -> None:
    arq = getattr(state, "arq", None)
    if arq is None:
        return  # the sweeper will enqueue it
    try:
        await arq.enqueue_job(IMPORT_JOB, import_id, _job_id=import_job_id(import_id))
    except Exception:  # noqa: BLE001 - Redis may be down: the sweeper re-enqueues queued imports
        logging.getLogger("forecourt.stock").warning("could not enqueue import %s", import_id, exc_info=True)

