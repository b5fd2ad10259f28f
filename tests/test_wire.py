import json

import pytest

from stock_platform.sources.wire import WireFormatError, build_page, parse_page

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
