"""Reading stock files: CSV or XLSX, columns found by their header in English or Chinese, one row at a time.

Pure functions over bytes (no database): the worker feeds the records they produce to the bulk upsert.
Every rejected row gets a reason in the importer's language.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from backend.lib.i18n import gettext as _

from . import rules
from .repository import BULK_COLUMNS
from .rules import Body, Condition, Powertrain, VehicleStatus

MAX_FILE_BYTES = 40 * 1024 * 1024
MAX_ROWS = 200_000
MAX_CELL_CHARS = 500

# field -> header names people use (compared without case, spaces, underscores or brackets)
HEADERS: dict[str, tuple[str, ...]] = {
    "vin": ("vin", "vin code", "车架号", "车辆识别代号", "车辆识别码", "vin码"),
    "make": ("make", "brand", "品牌", "厂商"),
    "model": ("model", "车型", "车系"),
    "trim": ("trim", "version", "配置", "版本", "款型"),
    "model_year": ("model year", "year", "年款", "车型年份", "年份"),
    "body": ("body", "body type", "车身类型", "车身", "车身形式"),
    "powertrain": ("powertrain", "fuel", "fuel type", "动力类型", "能源类型", "动力"),
    "battery_kwh": ("battery kwh", "battery", "battery capacity", "电池容量", "电池容量kwh"),
    "range_km": ("range km", "range", "electric range", "续航里程", "纯电续航", "续航里程km"),
    "colour": ("colour", "color", "颜色", "车身颜色", "外观颜色"),
    "mileage_km": ("mileage km", "mileage", "odometer", "里程", "行驶里程", "表显里程"),
    "condition": ("condition", "车况", "新旧", "车辆类型"),
    "list_price": ("list price", "price", "售价", "指导价", "标价", "零售价"),
    "cost": ("cost", "成本", "进价", "采购价"),
    "status": ("status", "状态", "库存状态"),
    "eta": ("eta", "预计到店", "预计到达", "预计到店日期"),
    "arrival_date": ("arrival date", "arrived", "到店日期", "入库日期"),
    "branch": ("branch", "branch code", "门店", "门店代码"),
    "lot_location": ("lot", "lot location", "库位", "车位"),
    "features": ("features", "配置亮点", "装备", "亮点配置"),
    "internal_notes": ("notes", "internal notes", "备注", "内部备注"),
}
REQUIRED = ("vin", "make", "model", "model_year", "body", "powertrain", "condition", "list_price")

# Values people write, in both languages, mapped to codes.
VALUE_WORDS: dict[str, dict[str, str]] = {
    "body": {b.value: b.value for b in Body} | {
        "轿车": "sedan", "三厢": "sedan", "两厢": "hatchback", "掀背": "hatchback", "越野车": "suv",
        "多用途车": "mpv", "商务车": "mpv", "旅行车": "wagon", "estate": "wagon", "跑车": "coupe", "轿跑": "coupe",
        "敞篷": "convertible", "敞篷车": "convertible", "皮卡": "pickup", "pick-up": "pickup", "厢式车": "van",
        "面包车": "van", "suv": "suv", "mpv": "mpv"},
    "powertrain": {p.value: p.value for p in Powertrain} | {
        "gasoline": "petrol", "gas": "petrol", "汽油": "petrol", "柴油": "diesel", "hybrid": "hev", "油电混合": "hev",
        "油电混动": "hev", "混动": "hev", "插电混动": "phev", "插电式混合动力": "phev", "plug-in hybrid": "phev",
        "增程": "phev", "增程式": "phev", "erev": "phev", "ev": "bev", "electric": "bev", "纯电": "bev",
        "纯电动": "bev", "电动": "bev", "fuel cell": "fcev", "氢燃料": "fcev", "氢燃料电池": "fcev"},
    "condition": {c.value: c.value for c in Condition} | {
        "新车": "new", "新": "new", "二手车": "used", "二手": "used", "pre-owned": "used", "试驾车": "demo",
        "展车": "demo", "ex-demo": "demo", "ex-demonstrator": "demo"},
    "status": {s.value: s.value for s in rules.IMPORTABLE_STATUSES} | {
        "in stock": "in_stock", "stock": "in_stock", "在库": "in_stock", "现车": "in_stock", "in transit": "in_transit",
        "在途": "in_transit", "demonstrator": "demo", "试驾车": "demo"},
}
_HEADER_NOISE = re.compile(r"[\s_\-()（）\[\]【】:：/.]+")
_SPLIT_FEATURES = re.compile(r"[;；|、,，\n]+")


def _key(text: str) -> str:
    return _HEADER_NOISE.sub("", text.strip().lower())


_ALIASES = {_key(alias): name for name, aliases in HEADERS.items() for alias in aliases}


class ImportFileError(ValueError):
    """The file as a whole cannot be read; the message says why, in the person's language."""


@dataclass(slots=True)
class ImportContext:
    """What a row is checked against: the importer's branch scope and the known branches."""

    branch_ids_by_code: dict[str, int]
    scope_branch_id: int | None
    default_branch_id: int | None
    today: date


@dataclass(slots=True)
class ParsedFile:
    columns: dict[str, int]  # field -> column index
    header: list[str]
    ignored_headers: list[str]
    total_rows: int
    rows: Iterator[tuple[int, list]] = field(repr=False)  # (row number as a spreadsheet shows it, cells)


# -- the file --------------------------------------------------------------------------------------


def sniff_format(data: bytes) -> str | None:
    if data[:4] == b"PK\x03\x04":
        return "xlsx"
    if b"\x00" in data[:65536]:
        return None  # binary, and not a workbook
    return "csv"


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "gb18030"):  # Excel in China saves CSV as GBK
        try:
            return codecs.decode(data, encoding)
        except UnicodeDecodeError:
            continue
    raise ImportFileError(_("The file is not readable text. Save it as CSV (UTF-8) or as an Excel workbook (.xlsx)."))


def _map_header(header: list) -> tuple[dict[str, int], list[str]]:
    columns: dict[str, int] = {}
    ignored: list[str] = []
    for index, cell in enumerate(header):
        text = "" if cell is None else str(cell)
        name = _ALIASES.get(_key(text))
        if name and name not in columns:
            columns[name] = index
        elif text.strip():
            ignored.append(text.strip()[:40])
    missing = [name for name in REQUIRED if name not in columns]
    if "vin" not in columns and len(columns) < 3:
        raise ImportFileError(_("No header row was recognised. The first row must name the columns, e.g. "
                                "VIN, Make, Model, Model year, Body, Powertrain, Condition, List price "
                                "(or 车架号, 品牌, 车型, 年款, 车身类型, 动力类型, 车况, 售价)."))
    if missing:
        raise ImportFileError(_("Columns are missing: %(names)s.", names=", ".join(
            f"{HEADERS[name][0]} / {HEADERS[name][2]}" for name in missing)))
    return columns, ignored


def open_file(data: bytes, file_format: str) -> ParsedFile:
    """Check the file and its header; stream its rows. Raises :class:`ImportFileError`."""
    if not data:
        raise ImportFileError(_("The file is empty."))
    if len(data) > MAX_FILE_BYTES:
        raise ImportFileError(_("The file is larger than %(mb)s MB. Split it into smaller files.",
                                mb=MAX_FILE_BYTES // (1024 * 1024)))
    if file_format == "xlsx":
        return _open_xlsx(data)
    if file_format == "csv":
        return _open_csv(data)
    raise ImportFileError(_("Upload a CSV file or an Excel workbook (.xlsx)."))


def _open_csv(data: bytes) -> ParsedFile:
    text = _decode(data)
    sample = text[:8192]
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    try:
        header = next(reader)
    except StopIteration:
        raise ImportFileError(_("The file is empty.")) from None
    except csv.Error as exc:
        raise ImportFileError(_("The CSV file is malformed: %(problem)s", problem=str(exc))) from exc
    columns, ignored = _map_header(header)
    total = max(0, text.count("\n") - 1 + (0 if text.endswith("\n") else 1))
    if total > MAX_ROWS:
        raise ImportFileError(_("The file has more than %(n)s rows. Split it into smaller files.", n=MAX_ROWS))

    def rows() -> Iterator[tuple[int, list]]:
        number = 1
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                number += 1
                yield number, exc  # reported as a rejected row
                continue
            number += 1
            if any(c.strip() for c in cells):
                yield number, cells

    return ParsedFile(columns=columns, header=["" if h is None else str(h)[:60] for h in header],
                      ignored_headers=ignored, total_rows=total, rows=rows())


def _open_xlsx(data: bytes) -> ParsedFile:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise ImportFileError(_("The workbook cannot be opened; save it again as .xlsx and retry.")) from exc
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many kinds on damaged files
        raise ImportFileError(_("The workbook cannot be opened; save it again as .xlsx and retry.")) from exc
    sheet = workbook.worksheets[0] if workbook.worksheets else None
    if sheet is None:
        raise ImportFileError(_("The workbook has no sheets."))
    iterator = sheet.iter_rows(values_only=True)
    try:
        header = list(next(iterator))
    except StopIteration:
        raise ImportFileError(_("The file is empty.")) from None
    columns, ignored = _map_header(header)
    # The sheet's recorded size; some programs leave it out (then it says one row) and we count as we go.
    total = max(0, (sheet.max_row or 1) - 1)
    if total > MAX_ROWS:
        raise ImportFileError(_("The file has more than %(n)s rows. Split it into smaller files.", n=MAX_ROWS))
    numbered = enumerate(iterator, start=2)
    first = next(((n, list(c)) for n, c in numbered if any(v is not None and str(v).strip() for v in c)), None)
    if first is not None:
        total = max(total, 1)

    def rows() -> Iterator[tuple[int, list]]:
        try:
            if first is not None:
                yield first
            for number, cells in numbered:
                if number > MAX_ROWS + 1:
                    raise ImportFileError(_("The file has more than %(n)s rows. Split it into smaller files.",
                                            n=MAX_ROWS))
                if any(c is not None and str(c).strip() for c in cells):
                    yield number, list(cells)
        finally:
            workbook.close()

    return ParsedFile(columns=columns, header=["" if h is None else str(h)[:60] for h in header],
                      ignored_headers=ignored, total_rows=total, rows=rows())


# -- one row ----------------------------------------------------------------------------------------


class RowError(ValueError):
    pass


def _text(value, limit: int) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    if len(text) > limit:
        raise RowError(_("“%(value)s…” is longer than %(n)s characters.", value=text[:20], n=limit))
    return text


def _number(value, label: str, *, decimals: bool = False):
    """``189800``, ``"189,800"``, ``"¥189,800"``, ``"18.98万"``, Excel numbers."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        number = Decimal(str(value))
    else:
        text = str(value).strip().replace(",", "").replace("，", "").replace("¥", "").replace("￥", "")
        text = text.replace("元", "").replace(" ", "").lower().removesuffix("km").removesuffix("公里")
        text = text.removesuffix("kwh")
        factor = Decimal(1)
        if text.endswith("万"):
            text, factor = text[:-1], Decimal(10_000)
        try:
            number = Decimal(text) * factor
        except InvalidOperation:
            raise RowError(_("%(field)s: “%(value)s” is not a number.", field=label, value=str(value)[:20])) from None
    if not number.is_finite():
        raise RowError(_("%(field)s: “%(value)s” is not a number.", field=label, value=str(value)[:20]))
    if decimals:
        return number
    if number != number.to_integral_value():
        raise RowError(_("%(field)s: use a whole number.", field=label))
    return int(number)


def _date(value, label: str) -> date | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip().replace("/", "-").replace(".", "-")
    text = text.replace("年", "-").replace("月", "-").replace("日", "")
    try:
        return date.fromisoformat("-".join(part.zfill(2) for part in text.split("-")))
    except ValueError:
        raise RowError(_("%(field)s: “%(value)s” is not a date (use 2026-03-31).",
                         field=label, value=str(value)[:20])) from None


def _choice(value, kind: str, label: str) -> str | None:
    text = _text(value, 40)
    if not text:
        return None
    code = VALUE_WORDS[kind].get(text.lower()) or VALUE_WORDS[kind].get(_key(text))
    if code is None:
        raise RowError(_("%(field)s: “%(value)s” is not one of %(choices)s.", field=label, value=text,
                         choices=", ".join(sorted({v for v in VALUE_WORDS[kind].values()}))))
    return code


def check_row(cells: list, columns: dict[str, int], context: ImportContext) -> tuple[tuple, str]:
    """A record in :data:`BULK_COLUMNS` order and the VIN; raises :class:`RowError` with the reason."""

    def cell(name: str):
        index = columns.get(name)
        if index is None or index >= len(cells):
            return None
        value = cells[index]
        if isinstance(value, str) and len(value) > MAX_CELL_CHARS:
            raise RowError(_("A cell is longer than %(n)s characters.", n=MAX_CELL_CHARS))
        return value

    vin = rules.normalize_vin(_text(cell("vin"), 40))
    if not vin:
        raise RowError(_("The VIN is missing."))
    problem = rules.vin_problem(vin)
    if problem:
        raise RowError(problem[1])
    values: dict = {"vin": vin}
    for name in ("make", "model"):
        values[name] = _text(cell(name), 40 if name == "make" else 60)
        if not values[name]:
            raise RowError(_("%(field)s is missing.", field=HEADERS[name][0]))
    values["trim"] = _text(cell("trim"), 80)
    year = _number(cell("model_year"), "model year")
    if year is None or not rules.MIN_MODEL_YEAR <= year <= rules.MAX_MODEL_YEAR:
        raise RowError(_("The model year must be between %(low)s and %(high)s.",
                         low=rules.MIN_MODEL_YEAR, high=rules.MAX_MODEL_YEAR))
    values["model_year"] = year
    for name in ("body", "powertrain", "condition"):
        values[name] = _choice(cell(name), name, HEADERS[name][0])
        if values[name] is None:
            raise RowError(_("%(field)s is missing.", field=HEADERS[name][0]))
    battery = _number(cell("battery_kwh"), "battery kWh", decimals=True)
    if battery is not None and not (0 < battery <= 500):
        raise RowError(_("battery kWh: enter a value above 0 and at most 500."))
    values["battery_kwh"] = battery.quantize(Decimal("0.1")) if battery is not None else None
    range_km = _number(cell("range_km"), "range km")
    if range_km is not None and not (0 < range_km <= 3000):
        raise RowError(_("range km: enter a value above 0 and at most 3000."))
    values["range_km"] = range_km
    if problem := rules.electrics_problem(values["powertrain"], battery, range_km):
        raise RowError(problem)
    values["colour"] = _text(cell("colour"), 40)
    mileage = _number(cell("mileage_km"), "mileage km") or 0
    if not 0 <= mileage <= rules.MAX_MILEAGE_KM:
        raise RowError(_("mileage km: enter a value from 0 to %(n)s.", n=rules.MAX_MILEAGE_KM))
    values["mileage_km"] = mileage
    price = _number(cell("list_price"), "list price")
    if price is None or not 0 < price <= rules.MAX_PRICE:
        raise RowError(_("The list price must be above 0 and at most %(n)s.", n=rules.MAX_PRICE))
    values["list_price"] = price
    cost = _number(cell("cost"), "cost", decimals=True)
    if cost is not None and not (0 <= cost <= rules.MAX_PRICE):
        raise RowError(_("cost: enter a value from 0 to %(n)s.", n=rules.MAX_PRICE))
    values["cost"] = cost.quantize(Decimal("0.01")) if cost is not None else None
    values["eta"] = _date(cell("eta"), "ETA")
    values["arrival_date"] = _date(cell("arrival_date"), "arrival date")
    status = _choice(cell("status"), "status", "status") if "status" in columns else None
    if status is None:
        status = (VehicleStatus.IN_TRANSIT.value if values["eta"] and not values["arrival_date"]
                  else VehicleStatus.IN_STOCK.value)
    if status == VehicleStatus.IN_TRANSIT and values["eta"] is None:
        raise RowError(_("Give the expected arrival date (ETA) of a car in transit."))
    values["status"] = status
    if values["arrival_date"] is None and status == VehicleStatus.IN_STOCK and "arrival_date" not in columns:
        values["arrival_date"] = context.today  # only for new cars: the column is not written to existing ones
    code = _text(cell("branch"), 16).upper()
    if code:
        branch_id = context.branch_ids_by_code.get(code)
        if branch_id is None:
            raise RowError(_("Unknown branch “%(code)s”.", code=code))
        if context.scope_branch_id is not None and branch_id != context.scope_branch_id:
            raise RowError(_("You can only import cars for your own branch."))
    else:
        branch_id = context.scope_branch_id or context.default_branch_id
        if branch_id is None:
            raise RowError(_("The branch is missing (give the branch code, e.g. SH01)."))
    values["branch_id"] = branch_id
    values["lot_location"] = _text(cell("lot_location"), 40)
    raw_features = cell("features")
    features = [f.strip()[:80] for f in _SPLIT_FEATURES.split(str(raw_features))] if raw_features else []
    values["features"] = [f for f in features if f][:40]
    values["internal_notes"] = _text(cell("internal_notes"), 2000)
    return tuple(values[c] for c in BULK_COLUMNS), vin


def columns_written(columns: dict[str, int]) -> list[str]:
    """The vehicle columns a file sets on existing cars: those it has (status only if it has one)."""
    written = [c for c in BULK_COLUMNS if c in columns]
    if "branch" in columns:
        written.append("branch_id")
    return written


def raw_row(cells: list, header_names: list[str]) -> dict[str, str]:
    """The row as it was, for the rejected-rows report."""
    return {name: "" if value is None else str(value)[:200] for name, value in zip(header_names, cells, strict=False)}
