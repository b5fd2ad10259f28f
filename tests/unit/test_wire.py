import json

import pytest

from stock_platform.defs.stock_prices.sources.wire import (
    WIRE_FIELDS,
    WireFormatError,
    build_page,
    item_columns,
    items_json,
    parse_page,
)

ITEM = {"basDt": "20240102", "srtnCd": "005930", "fltRt": "-.19", "clpr": "79600"}


def envelope(items) -> str:
    body = {"numOfRows": 1000, "pageNo": 1, "totalCount": 1}
    if items is not ...:
        body["items"] = items
    return json.dumps({"response": {"header": {"resultCode": "00", "resultMsg": "OK"}, "body": body}})


@pytest.mark.parametrize(
    "items, expected",
    [
        ({"item": [ITEM, ITEM]}, [ITEM, ITEM]),
        ({"item": ITEM}, [ITEM]),  # one row comes as a single object
        ({"item": []}, []),
        ("", []),  # an empty result as "items": ""
        (..., []),  # items absent
        ({"item": ""}, []),
    ],
)
def test_items_in_every_shape(items, expected):
    assert parse_page(envelope(items)).items == expected


def test_values_stay_strings_as_sent():
    page = parse_page(envelope({"item": ITEM}))
    assert page.items[0]["fltRt"] == "-.19"
    assert page.items[0]["srtnCd"] == "005930"
    assert (page.page_no, page.num_of_rows, page.total_count) == (1, 1000, 1)


@pytest.mark.parametrize(
    "body, message",
    [
        ("<OpenAPI_ServiceResponse>", "not a data.go.kr JSON envelope"),
        ('{"response": {"header": {}, "body": {"items": 5}}}', "items is int"),
        ('{"response": {"header": {}, "body": {"items": {"item": [1]}}}}', "neither an object"),
        ('{"response": {"header": {}, "body": {"totalCount": "x"}}}', "totalCount='x'"),
    ],
)
def test_malformed_pages_name_the_problem_and_place(body, message):
    with pytest.raises(WireFormatError, match=message) as error:
        parse_page(body, where="raw/dt=2024-01-02/page-00001")
    assert "raw/dt=2024-01-02/page-00001" in str(error.value)


def test_built_pages_parse_back():
    items = json.dumps([ITEM], ensure_ascii=False)
    page = parse_page(build_page(items, page_no=2, num_of_rows=1, total_count=3))
    assert (page.result_code, page.page_no, page.total_count, page.items) == ("00", 2, 3, [ITEM])
    assert parse_page(build_page(None, 1, 1000, 0)).items == []


FULL_ITEM = {field: f"{field}-value" for field in WIRE_FIELDS}


@pytest.mark.parametrize(
    "body",
    [
        envelope({"item": [FULL_ITEM, ITEM, FULL_ITEM]}),  # the usual page; missing fields are None
        envelope({"item": [{**FULL_ITEM, "extra": "x"}, {**ITEM, "clpr": None}]}),
        envelope({"item": [{**ITEM, "clpr": 79600}]}),  # a number where a string belongs
        envelope({"item": [{**ITEM, "itmsNm": {"ko": "x"}}]}),
        envelope({"item": ITEM}),
        envelope({"item": []}),
        envelope(""),
        envelope(...),
        envelope({"item": ""}),
        '{"response": {"header": {}, "body": {"items": {"item": [{"srtnCd": "1", "srtnCd": "2"}]}}}}',
        '{"response": {"header": {}, "body": {"items": {"item": [{"itmsNm": "\\ud800"}]}}}}',
        '{"response": {"header": {}, "body": {"items": {"item": [{"clpr": NaN}]}}}}',
        '{"response": {"header": {}, "body": null}}',
        '{"response": {"header": {}, "body": {"pageNo": "2", "items": {"item": [{"basDt": "x"}]}}}}',
        '\ufeff{"response": {"header": {}, "body": {"items": {"item": [{"basDt": "x"}]}}}}',
    ],
)
def test_item_columns_are_parse_page_items_transposed(body):
    expected = [[item.get(field) for item in parse_page(body.encode()).items] for field in WIRE_FIELDS]
    assert item_columns(body.encode()) == expected


@pytest.mark.parametrize(
    "body",
    [
        "<OpenAPI_ServiceResponse>",
        '{"response": {"header": {}, "body": {"items": 5}}}',
        '{"response": {"header": {}, "body": {"items": {"item": [1]}}}}',
        '{"response": {"header": {}, "body": {"totalCount": "x", "items": {"item": []}}}}',
        '{"response": {"header": {}, "body": {"items": {"item": [{"basDt": "x"}]}}',  # truncated
    ],
)
def test_item_columns_fail_as_parse_page_does(body):
    with pytest.raises(WireFormatError) as expected:
        parse_page(body.encode(), where="raw/dt=2024-01-02/page-00001")
    with pytest.raises(WireFormatError) as error:
        item_columns(body.encode(), where="raw/dt=2024-01-02/page-00001")
    assert str(error.value) == str(expected.value)


def test_items_json_is_the_api_s_compact_json():
    rows = [FULL_ITEM, {**FULL_ITEM, "itmsNm": '삼성 "우" \\ /\n\t\u0001', "clpr": None}]
    columns = [[row[field] for row in rows] for field in WIRE_FIELDS]
    assert items_json(columns) == json.dumps(rows, ensure_ascii=False, separators=(",", ":"))
    assert parse_page(build_page(items_json(columns), 1, 1000, 2).encode()).items == rows
    assert items_json([[] for _ in WIRE_FIELDS]) == "[]"
