"""JSON API for stock: the search with facet counts, one car, and create/update/status for staff and API keys.

Anyone may search and read cars in stock or in transit (no cost, no notes, no reservations). A signed-in
person or an API key sees their branch's cars in every status, with cost.
"""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Request, get, patch, post
from litestar.params import Parameter
from litestar.status_codes import HTTP_201_CREATED

from backend.domains.accounts.guards import roles_required
from backend.domains.accounts.rules import StaffRole
from backend.lib.errors import DomainError
from backend.lib.i18n import gettext as _

from . import photos
from .controllers import stock_dependencies
from .schemas import (
    PhotoOut,
    ReservationOut,
    SearchResponse,
    StatusChange,
    VehicleCreate,
    VehiclePublic,
    VehicleStaff,
    VehicleUpdate,
    parse_filters,
)
from .service import StockService


class BadParameters(DomainError):
    status_code = 400
    code = "bad_request"


def _search_body(result) -> dict:
    filters = result.filters
    return {
        "items": result.items,
        "total": result.total,
        "page": filters.page,
        "page_size": filters.page_size,
        "pages": result.pages,
        "facets": {name: [{"value": f.value, "label": f.label, "count": f.count} for f in values]
                   for name, values in result.facets.items()},
    }


def _photos(items) -> list[PhotoOut]:
    return [PhotoOut(url=photos.url(p.file_key), thumbnail_url=photos.url(p.file_key, thumbnail=True),
                     width=p.width, height=p.height) for p in items]


def _public(vehicle, vehicle_photos, branch_code: str) -> VehiclePublic:
    return VehiclePublic(**{name: getattr(vehicle, name) for name in VehiclePublic.model_fields
                            if name not in ("photos", "branch_code")},
                         branch_code=branch_code, photos=_photos(vehicle_photos))


def _staff(details: dict) -> VehicleStaff:
    vehicle, reservation = details["vehicle"], details["reservation"]
    base = _public(vehicle, details["photos"], details["branch"].code).model_dump()
    return VehicleStaff(**base, cost=vehicle.cost, arrival_date=vehicle.arrival_date,
                        days_in_stock=details["days_in_stock"], lot_location=vehicle.lot_location,
                        internal_notes=vehicle.internal_notes, created_at=vehicle.created_at,
                        updated_at=vehicle.updated_at,
                        reservation=ReservationOut(reason=reservation.reason, reserved_by=reservation.reserved_by_label,
                                                   reserved_at=reservation.reserved_at) if reservation else None)


class VehicleApi(Controller):
    path = "/api/v1/vehicles"
    tags = ["stock"]
    dependencies = stock_dependencies

    @get("/", summary="Search stock, with facet counts", security=[{}, {"apiKey": []}])
    async def search(
        self, request: Request, stock: StockService,
        make: str | None = None, model: str | None = None,
        body_type: Annotated[str | None, Parameter(query="body", description="sedan, suv, ...")] = None,
        powertrain: str | None = None, min_price: str | None = None, max_price: str | None = None,
        year_from: str | None = None, year_to: str | None = None, branch: str | None = None,
        condition: str | None = None, q: str | None = None, sort: str | None = None, page: str | None = None,
        page_size: str | None = None, status: str | None = None, vin: str | None = None,
    ) -> SearchResponse:
        """Filters as query parameters. Facets count the cars matching every filter but their own.
        Prices are whole yuan; ``min_price``/``max_price`` include the bound. Staff and API keys may also
        filter by ``status`` and ``vin`` (full or last 6). An unknown parameter or value is a 400 naming it."""
        staff = request.user is not None
        filters, problems = parse_filters(request.query_params.dict(), staff=staff)
        if problems:
            raise BadParameters(_("Invalid request parameters: %(names)s", names=", ".join(sorted(problems))),
                                fields=problems)
        try:
            result = await stock.search(filters, principal=request.user, staff=staff)
        except DomainError as exc:  # unknown branch code
            raise BadParameters(exc.message, fields=exc.fields) from exc
        return _search_body(result)  # type: ignore[return-value] - the same shape, encoded directly

    @get("/{vehicle_id:int}", summary="One car", security=[{}, {"apiKey": []}])
    async def read(self, request: Request, stock: StockService, vehicle_id: int) -> VehicleStaff | VehiclePublic:
        if request.user is None:
            vehicle, vehicle_photos, branch = await stock.public_vehicle(vehicle_id)
            return _public(vehicle, vehicle_photos, branch.code)
        return _staff(await stock.staff_details(request.user, vehicle_id))

    @post("/", summary="Add a car", status_code=HTTP_201_CREATED, guards=[roles_required(StaffRole.MANAGER)])
    async def create(self, request: Request, stock: StockService, data: VehicleCreate) -> VehicleStaff:
        vehicle = await stock.create_vehicle(request.user, data)
        return _staff(await stock.staff_details(request.user, vehicle.id))

    @patch("/{vehicle_id:int}", summary="Change a car's details", guards=[roles_required(StaffRole.MANAGER)])
    async def update(self, request: Request, stock: StockService, vehicle_id: int,
                     data: VehicleUpdate) -> VehicleStaff:
        await stock.update_vehicle(request.user, vehicle_id, data)
        return _staff(await stock.staff_details(request.user, vehicle_id))

    @post("/{vehicle_id:int}/status", summary="Change a car's status (reserve, release, sell, ...)",
          status_code=200, guards=[roles_required(StaffRole.SALES, StaffRole.MANAGER)])
    async def change_status(self, request: Request, stock: StockService, vehicle_id: int,
                            data: StatusChange) -> VehicleStaff:
        """``reserved`` needs a ``reason``; from ``reserved`` back to ``in_stock``/``in_transit`` is a release
        (with a reason). Salespeople may only reserve and release."""
        await stock.change_status(request.user, vehicle_id, data)
        return _staff(await stock.staff_details(request.user, vehicle_id))

