"""The Spark transform on a hand-made corpus: every row lands in clean or rejected, with reasons."""

import datetime as dt
import gzip
import json

import pandas as pd
import psutil
import pytest

from stock_platform.defs.stock_prices.schema import RAW
from stock_platform.defs.stock_prices.spark.transform import RawPage, run_cleaning
from stock_platform.platform.lake import Lake, new_version
from stock_platform.platform.spark import JIT_OPTIONS

DAY = dt.date(2024, 3, 4)
EARLY = dt.datetime(2024, 3, 4, 9, 0, tzinfo=dt.UTC)
LATE = dt.datetime(2024, 3, 4, 10, 0, tzinfo=dt.UTC)


def item(ticker: str, **overrides) -> dict:
    row = {
        "basDt": "20240304", "srtnCd": ticker, "isinCd": f"KR7{ticker}003", "itmsNm": "삼성전자",
        "mrktCtg": "KOSPI", "clpr": "79600", "vs": "-150", "fltRt": "-.19", "mkp": "79800",
        "hipr": "80000", "lopr": "79000", "trqu": "1000", "trPrc": "79600000",
        "lstgStCnt": "5969782550", "mrktTotAmt": str(79600 * 5969782550),
    }
    row.update(overrides)
    return {key: value for key, value in row.items() if value is not None}


def page(items, total=None) -> bytes:
    # The API's shapes: a single row as an object, several as a list, none as "".
    items_doc = "" if not items else {"item": items[0] if len(items) == 1 else items}
    body = {"items": items_doc, "numOfRows": 1000, "pageNo": 1, "totalCount": total or len(items)}
    doc = {"response": {"header": {"resultCode": "00", "resultMsg": "OK"}, "body": body}}
    return gzip.compress(json.dumps(doc, ensure_ascii=False).encode())


BAD = {
    "000010": ({"clpr": "79,600"}, "clpr is not an integer: '79,600'"),
    "000020": ({"trqu": ""}, "trqu is not an integer: ''"),
    "000030": ({"mkp": "0", "lopr": "0"}, "non-positive price"),
    "000040": ({"hipr": "78000"}, "OHLC order violated"),
    "000050": ({"basDt": "20240305"}, "basDt 20240305 is not the partition date 2024-03-04"),
    "000060": ({"mrktTotAmt": None}, "missing mrktTotAmt"),
    "000070": ({"mrktCtg": "NASDAQ"}, "mrktCtg is not one of KOSPI, KOSDAQ, KONEX: 'NASDAQ'"),
    "000080": ({"fltRt": "-"}, "fltRt is not a number: '-'"),
    "000090": ({"trqu": "-5"}, "negative volume"),
    "000100": ({"basDt": "2024-03-04"}, "basDt is not a YYYYMMDD date"),
}


@pytest.fixture(scope="module")
def cleaned(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("lake")
    lake = Lake(str(root))
    version = new_version()
    good = [
        item("005930"),
        item("A000660", isinCd="KR7000660001", itmsNm="SK하이닉스 🚀\u200b", extra_field="raw only"),
        item("035720", fltRt="12.5", vs="5000", clpr="45000", mkp="40000", hipr="45000", lopr="40000"),
        item("900110", mrktCtg="KONEX", clpr="1200", mkp="1200", hipr="1200", lopr="1200", vs="0", fltRt="0"),
        item("000120", clpr=79600, trqu=1000, fltRt=-0.19),  # JSON numbers where strings belong
    ]
    bad = [item(ticker, **overrides) for ticker, (overrides, _) in BAD.items()]
    duplicate_old = item("005380", clpr="200000", mkp="200000", hipr="200000", lopr="200000")
    duplicate_new = item("005380", clpr="201000", mkp="201000", hipr="201000", lopr="201000")
    pages = []
    for number, (items, fetched_at) in enumerate(
        [(good + bad + [duplicate_old], EARLY), ([duplicate_new], LATE), ([], LATE)], start=1
    ):
        name = f"{Lake.partition_dir(RAW, DAY)}/v={version}/page-{number:05d}.json.gz"
        lake.write_bytes(name, page(items))
        pages.append(RawPage(lake.uri(name), DAY, fetched_at))
    run_cleaning(spark, pages, str(root / "out"))
    clean = pd.read_parquet(root / "out" / "clean")
    rejected = pd.read_parquet(root / "out" / "rejected")
    return clean, rejected, root


def test_valid_rows_are_typed_and_complete(cleaned):
    clean, _, _ = cleaned
    assert sorted(clean["ticker"]) == ["000120", "000660", "005380", "005930", "035720", "900110"]
    samsung = clean.set_index("ticker").loc["005930"]
    assert samsung["trade_date"] == DAY
    assert samsung["change_pct"] == pytest.approx(-0.19)  # "-.19" on the wire
    assert samsung["listed_shares"] == 5969782550  # beyond int32
    assert samsung["market_cap"] == 79600 * 5969782550
    assert clean.set_index("ticker").loc["000660", "name"] == "SK하이닉스 🚀\u200b"
    numbers = clean.set_index("ticker").loc["000120"]
    assert (numbers["close"], numbers["volume"]) == (79600, 1000)
    assert numbers["change_pct"] == pytest.approx(-0.19)


def test_duplicates_keep_the_latest_ingested_row(cleaned):
    clean, rejected, _ = cleaned
    assert clean.set_index("ticker").loc["005380", "close"] == 201000
    superseded = rejected[rejected["srtnCd"] == "005380"]
    assert list(superseded["clpr"]) == ["200000"]
    assert superseded["reject_reason"].iloc[0].startswith("duplicate (trade_date, ticker)")


@pytest.mark.parametrize("ticker", sorted(BAD))
def test_each_bad_row_is_quarantined_with_its_reason(cleaned, ticker):
    _, rejected, _ = cleaned
    rows = rejected[rejected["srtnCd"] == ticker]
    assert len(rows) == 1, rejected[["srtnCd", "reject_reason"]]
    assert BAD[ticker][1] in rows["reject_reason"].iloc[0]
    assert rows["dt"].astype(str).iloc[0] == DAY.isoformat()


def test_nothing_is_lost(cleaned):
    clean, rejected, _ = cleaned
    assert len(clean) + len(rejected) == 5 + len(BAD) + 2


def test_output_is_zstd_parquet_with_the_contract_schema(cleaned):
    import pyarrow.parquet as pq

    _, _, root = cleaned
    files = list((root / "out" / "clean").glob(f"dt={DAY}/*.parquet"))
    assert len(files) == 1  # one file per day
    meta = pq.ParquetFile(files[0]).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"
    schema = pq.read_schema(files[0])
    assert str(schema.field("trade_date").type) == "date32[day]"
    assert str(schema.field("ingested_at").type) == "timestamp[us, tz=UTC]"
    assert str(schema.field("volume").type) == "int64"


def _command_line(process: psutil.Process) -> list[str]:
    # Other children of the test process (finished dbt or PostgreSQL helpers) may be exiting or
    # zombies waiting to be reaped: they have no command line to read and are not the JVM.
    try:
        return process.cmdline()
    except psutil.Error:
        return []


def test_the_local_jvm_jit_compiles_the_validation_s_huge_generated_method(spark):
    # Without the flag HotSpot interprets any method over 8,000 bytes of bytecode, such as the one
    # Spark generates for `validate` (stock_platform/platform/spark.py says why it matters).
    # The session's JVM: a child process of this one (local mode: the driver runs the tasks).
    jvms = [command for command in map(_command_line, psutil.Process().children(recursive=True))
            if "org.apache.spark.deploy.SparkSubmit" in command]
    assert spark.sparkContext.master.startswith("local") and len(jvms) == 1
    assert JIT_OPTIONS in jvms[0]
