"""The data.go.kr wire format: one parser shared by every source.

A page is the JSON envelope of getStockPriceInfo_V2. Item values are all strings; numbers may lack
a leading zero ("-.19") and missing values come as "" or "-". `items` may be a list, a single
object, an empty string, or absent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import msgspec

# API field -> warehouse column, in warehouse order (see ARCHITECTURE.md, "Domain: stock prices").
FIELD_TO_COLUMN: dict[str, str] = {
    "basDt": "trade_date",
    "srtnCd": "ticker",
    "isinCd": "isin",
    "itmsNm": "name",
    "mrktCtg": "market",
    "mkp": "open",
    "hipr": "high",
    "lopr": "low",
    "clpr": "close",
    "vs": "change",
    "fltRt": "change_pct",
    "trqu": "volume",
    "trPrc": "traded_value",
    "lstgStCnt": "listed_shares",
    "mrktTotAmt": "market_cap",
}
WIRE_FIELDS: list[str] = list(FIELD_TO_COLUMN)
MARKETS = ("KOSPI", "KOSDAQ", "KONEX")


class WireFormatError(ValueError):
    """A response that is not a well-formed data.go.kr page."""


@dataclass(frozen=True)
class Page:
    result_code: str
    result_msg: str
    page_no: int
    num_of_rows: int
    total_count: int
    items: list[dict[str, Any]]


def parse_page(body: bytes | str, where: str = "page") -> Page:
    """Parse one JSON page into its header fields and item list (values left as sent)."""
    try:
        doc = json.loads(body)
        response = doc["response"]
        header = response["header"]
    except (ValueError, KeyError, TypeError) as exc:
        raise WireFormatError(f"{where}: not a data.go.kr JSON envelope ({exc!r})") from exc
    body_doc = response.get("body") or {}
    if not isinstance(body_doc, dict):
        raise WireFormatError(f"{where}: response.body is {type(body_doc).__name__}, not an object")
    return Page(
        result_code=str(header.get("resultCode", "")),
        result_msg=str(header.get("resultMsg", "")),
        page_no=_int(body_doc.get("pageNo", 0), where, "pageNo"),
        num_of_rows=_int(body_doc.get("numOfRows", 0), where, "numOfRows"),
        total_count=_int(body_doc.get("totalCount", 0), where, "totalCount"),
        items=normalize_items(body_doc.get("items"), where),
    )


def item_columns(body: bytes, where: str = "page") -> list[list[Any]]:
    """The page's items as columns, one per WIRE_FIELDS entry, values as sent (None where
    missing): parse_page(body, where).items transposed, without a dict per item.

    The usual page (items.item a list of objects whose values are strings or null, integer header
    numbers) is decoded by msgspec straight into tuples, twice as fast as json.loads into dicts.
    Any other page, odd or malformed, goes through parse_page: same values, same errors."""
    try:
        items = _USUAL_PAGE.decode(body).response.body.items.item  # type: ignore[attr-defined]
    except (msgspec.DecodeError, msgspec.ValidationError):
        items = [tuple(item.get(field) for field in WIRE_FIELDS) for item in parse_page(body, where).items]
    else:
        items = [msgspec.structs.astuple(item) for item in items]
    return [list(column) for column in zip(*items)] if items else [[] for _ in WIRE_FIELDS]


# The usual page, as msgspec types: anything else fails to decode and takes parse_page's path.
_Item = msgspec.defstruct("_Item", [(field, str | None, None) for field in WIRE_FIELDS])
_Items = msgspec.defstruct("_Items", [("item", list[_Item])])  # type: ignore[valid-type]
_Body = msgspec.defstruct(
    "_Body", [("items", _Items)] + [(name, int, 0) for name in ("pageNo", "numOfRows", "totalCount")]
)
_Response = msgspec.defstruct("_Response", [("header", dict), ("body", _Body)])
_USUAL_PAGE = msgspec.json.Decoder(msgspec.defstruct("_Page", [("response", _Response)]))
_ENCODE = msgspec.json.Encoder().encode


def normalize_items(items: Any, where: str = "page") -> list[dict[str, Any]]:
    """`items` in any shape the API uses -> a list of item objects."""
    if items is None or items == "":
        return []
    if not isinstance(items, dict):
        raise WireFormatError(f"{where}: items is {type(items).__name__}, expected an object")
    item = items.get("item")
    if item is None or item == "":
        return []
    if isinstance(item, dict):
        return [item]
    if isinstance(item, list) and all(isinstance(row, dict) for row in item):
        return item
    raise WireFormatError(f"{where}: items.item is neither an object nor a list of objects")


def _int(value: Any, where: str, field: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise WireFormatError(f"{where}: {field}={value!r} is not an integer") from exc


def items_json(columns: list[list[str | None]]) -> str:
    """The JSON array of item objects for value columns in WIRE_FIELDS order, as the API writes
    it (compact, UTF-8 as is): msgspec encodes it from the values without a dict per item."""
    return _ENCODE(list(map(_Item, *columns))).decode()


def build_page(items_json: str | None, page_no: int, num_of_rows: int, total_count: int) -> str:
    """A page exactly as the API sends it; `items_json` is the JSON array of item objects, or
    None for an empty result (which the API sends as `"items": ""`)."""
    items = '""' if items_json is None else f'{{"item":{items_json}}}'
    return (
        '{"response":{"header":{"resultCode":"00","resultMsg":"NORMAL SERVICE."},'
        f'"body":{{"items":{items},"numOfRows":{num_of_rows},'
        f'"pageNo":{page_no},"totalCount":{total_count}}}}}}}'
    )
