"""The cleaning transform: raw API pages -> typed, deduplicated, validated rows (pure Spark).

`clean_pages` is the Spark job: the platform's Spark resource runs it in-process or on a cluster
(platform/spark_job.py), with the same arguments.
Every input row ends up in exactly one of two outputs: `clean` (the warehouse contract) or
`rejected` (the row as received, plus the reasons it failed). Nothing is dropped silently.
"""

from __future__ import annotations

import datetime as dt
import gzip
import posixpath
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pyarrow as pa
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.pandas.types import to_arrow_schema

from stock_platform.defs.stock_prices.sources.wire import FIELD_TO_COLUMN, MARKETS, WIRE_FIELDS, item_columns

PARTITION_COLUMN = "dt"  # the lake's partition folder name: dt=YYYY-MM-DD

RAW_ROW_SCHEMA = T.StructType(
    [T.StructField(field, T.StringType()) for field in WIRE_FIELDS]
    + [
        T.StructField(PARTITION_COLUMN, T.StringType(), False),  # the day of the page
        T.StructField("_ingested_at", T.TimestampType(), False),
        T.StructField("_source", T.StringType(), False),
        T.StructField("_row", T.IntegerType(), False),
        T.StructField("_bad_text", T.StringType(), False),
    ]
)

_INTEGER_FIELDS = ["mkp", "hipr", "lopr", "clpr", "vs", "trqu", "trPrc", "lstgStCnt", "mrktTotAmt"]
_INTEGER = r"^-?[0-9]{1,18}$"  # fits in INT64 without overflow
_DECIMAL = r"^-?([0-9]+(\.[0-9]*)?|\.[0-9]+)$"  # the API drops the leading zero: "-.19"


def page_key(uri: str) -> str:
    """dt=.../v=.../page-N.json.gz: unique within a dataset and the same in every URI form
    (a local path, file:/..., gs://...)."""
    return "/".join(uri.rstrip("/").split("/")[-3:])


@dataclass(frozen=True)
class RawPage:
    """One stored raw page and what the manifest knows about it."""

    uri: str
    partition: dt.date
    fetched_at: dt.datetime



def read_raw_pages(spark: SparkSession, pages: list[RawPage]) -> DataFrame:
    """Parse raw pages (gzip JSON) into one row per item, all values as received (strings)."""
    by_key = {page_key(page.uri): (page.partition.isoformat(), page.fetched_at) for page in pages}

    def parse(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for path, content in zip(batch.column("path").to_pylist(), batch.column("content").to_pylist()):
                partition, fetched_at = by_key[page_key(path)]
                columns = item_columns(gzip.decompress(content), where=path)
                yield _items_batch(columns, partition, fetched_at, posixpath.basename(path))

    files = spark.read.format("binaryFile").load([page.uri for page in pages])
    # Arrow in and out: no pandas frame per page (a third of the parse's CPU went to pandas).
    return files.select("path", "content").mapInArrow(parse, RAW_ROW_SCHEMA)


_RAW_ARROW_SCHEMA = to_arrow_schema(RAW_ROW_SCHEMA)  # what the parser's batches must match


def _items_batch(
    values: list[list], partition: str, fetched_at: dt.datetime, source: str
) -> pa.RecordBatch:
    """One page's rows: `values` holds a column per WIRE_FIELDS entry (wire.item_columns)."""
    rows = len(values[0])
    columns, bad_text = [], [""] * rows
    for field, column_values in zip(WIRE_FIELDS, values):
        column, broken = _text_column(column_values)
        columns.append(column)
        for row in broken:
            bad_text[row] = f"{bad_text[row]}, {field}" if bad_text[row] else field
    columns += [
        pa.array([partition] * rows, pa.string()),
        pa.array([fetched_at.astimezone(dt.UTC)] * rows, pa.timestamp("us", tz="UTC")),
        pa.array([source] * rows, pa.string()),
        pa.array(range(rows), pa.int32()),
        pa.array(bad_text, pa.string()),
    ]
    return pa.RecordBatch.from_arrays(columns, schema=_RAW_ARROW_SCHEMA)


def _text_column(values: list) -> tuple[pa.Array, list[int]]:
    """Values as text (None where missing) and the rows whose text cannot be UTF-8.

    A number where a string belongs becomes its text. Text that cannot be UTF-8 (a lone surrogate
    such as "\\ud800" is legal JSON) would fail the whole job in the Arrow conversion: it is
    escaped in place and its rows are named, so that validation quarantines them."""
    try:
        return pa.array(values, pa.string()), []  # the usual case: all strings or None
    except (pa.ArrowException, UnicodeEncodeError):
        pass
    texts = [_as_text(value) for value in values]
    broken = [row for row, text in enumerate(texts) if text is not None and not _encodes(text)]
    for row in broken:
        texts[row] = str(texts[row]).encode("utf-8", "backslashreplace").decode("utf-8")
    return pa.array(texts, pa.string()), broken


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _as_text(value) -> str | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    return value if isinstance(value, str) else str(value)


def _reason(condition: Column, message: Column | str) -> Column:
    return F.when(condition, message if isinstance(message, Column) else F.lit(message))


def _quoted(column: Column) -> Column:
    return F.concat(F.lit("'"), column, F.lit("'"))


def validate(raw: DataFrame) -> DataFrame:
    """Typed contract columns plus `reject_reason` ("" for a valid row)."""
    typed = {
        "trade_date": F.try_to_timestamp(F.col("basDt"), F.lit("yyyyMMdd")).cast("date"),
        "ticker": F.regexp_replace(F.trim(F.col("srtnCd")), "^A", ""),
        "isin": F.trim(F.col("isinCd")),
        "name": F.col("itmsNm"),
        "market": F.trim(F.col("mrktCtg")),
        "change_pct": F.when(F.trim("fltRt").rlike(_DECIMAL), F.trim("fltRt").cast("double")),
    }
    for field in _INTEGER_FIELDS:
        value = F.trim(F.col(field))
        typed[FIELD_TO_COLUMN[field]] = F.when(value.rlike(_INTEGER), value.cast("bigint"))

    df = raw.select("*", *[expr.alias(name) for name, expr in typed.items()])
    c = F.col
    reasons = [_reason(c(field).isNull(), f"missing {field}") for field in WIRE_FIELDS]
    reasons.append(_reason(
        c("_bad_text") != "",
        F.concat(F.lit("not valid Unicode text (a lone surrogate, shown escaped) in "), c("_bad_text")),
    ))
    reasons += [
        _reason(
            c(field).isNotNull() & c(FIELD_TO_COLUMN[field]).isNull(),
            F.concat(F.lit(f"{field} is not an integer: "), _quoted(c(field))),
        )
        for field in _INTEGER_FIELDS
    ]
    reasons += [
        _reason(
            c("basDt").isNotNull() & c("trade_date").isNull(),
            F.concat(F.lit("basDt is not a YYYYMMDD date: "), _quoted(c("basDt"))),
        ),
        _reason(
            c("trade_date") != F.to_date(c(PARTITION_COLUMN)),
            F.concat(F.lit("basDt "), c("basDt"), F.lit(" is not the partition date "), c(PARTITION_COLUMN)),
        ),
        _reason(
            c("srtnCd").isNotNull() & ~c("ticker").rlike("^[0-9A-Z]{6}$"),
            F.concat(F.lit("srtnCd is not a 6-character code: "), _quoted(c("srtnCd"))),
        ),
        _reason(
            c("isinCd").isNotNull() & ~c("isin").rlike("^[A-Z]{2}[0-9A-Z]{9}[0-9]$"),
            F.concat(F.lit("isinCd is not a 12-character ISIN: "), _quoted(c("isinCd"))),
        ),
        _reason(c("itmsNm").isNotNull() & (F.trim(c("name")) == ""), "itmsNm is empty"),
        _reason(
            c("mrktCtg").isNotNull() & ~c("market").isin(*MARKETS),
            F.concat(F.lit("mrktCtg is not one of KOSPI, KOSDAQ, KONEX: "), _quoted(c("mrktCtg"))),
        ),
        _reason(
            c("fltRt").isNotNull() & c("change_pct").isNull(),
            F.concat(F.lit("fltRt is not a number: "), _quoted(c("fltRt"))),
        ),
        _reason(
            F.least(c("open"), c("high"), c("low"), c("close")) <= 0, "non-positive price"
        ),
        _reason(
            (c("low") > F.least(c("open"), c("close")))
            | (c("high") < F.greatest(c("open"), c("close"))),
            "OHLC order violated: expected low <= open, close <= high",
        ),
        _reason(c("volume") < 0, "negative volume"),
        _reason(c("traded_value") < 0, "negative traded value"),
        _reason(c("listed_shares") <= 0, "non-positive listed shares"),
    ]
    return df.withColumn("reject_reason", F.concat_ws("; ", *reasons))


def check(raw: DataFrame, num_partitions: int) -> DataFrame:
    """Validated, deduplicated rows with `reject_reason` and the partition column `dt`.

    Duplicates of (trade_date, ticker) keep the latest-ingested valid row; the others are rejected
    as duplicates. Rows are hash-partitioned by day once, and sorted once by (dt, ticker, ...):
    that serves the deduplication window and the per-day write (one file per day, rows by
    ticker) with no second shuffle or sort.
    """
    checked = validate(raw.repartition(num_partitions, PARTITION_COLUMN))
    latest_first = Window.partitionBy(PARTITION_COLUMN, "ticker").orderBy(
        (F.col("reject_reason") != "").asc(),
        F.col("_ingested_at").desc(),
        F.col("_source").desc(),
        F.col("_row").desc(),
    )
    duplicate = (F.col("reject_reason") == "") & (F.row_number().over(latest_first) > 1)
    return checked.withColumn(
        "reject_reason",
        F.when(duplicate, F.lit("duplicate (trade_date, ticker): a later-ingested row was kept"))
        .otherwise(F.col("reject_reason")),
    )


def split(checked: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(clean rows in the warehouse contract, rejected rows as received with their reasons)."""
    clean_rows = checked.where(F.col("reject_reason") == "").select(
        *[F.col(column) for column in FIELD_TO_COLUMN.values()],
        F.col("_ingested_at").alias("ingested_at"),
        PARTITION_COLUMN,
    )
    rejected_rows = checked.where(F.col("reject_reason") != "").select(
        *WIRE_FIELDS,
        "reject_reason",
        F.col("_ingested_at").alias("ingested_at"),
        F.col("_source").alias("source_page"),
        F.col("_row").alias("source_row"),
        PARTITION_COLUMN,
    )
    return clean_rows, rejected_rows


def write_partitioned(df: DataFrame, uri: str, sort_by: list[str]) -> None:
    """Parquet (zstd) under uri/dt=YYYY-MM-DD/, one file per day, rows sorted within the day.

    No dictionary encoding: in a day's file ticker, ISIN and name are unique per row and prices
    rarely repeat, so building dictionaries cost CPU and zstd alone made the files smaller."""
    (
        df.sortWithinPartitions(PARTITION_COLUMN, *sort_by)
        .write.mode("overwrite")
        .option("compression", "zstd")
        .option("parquet.enable.dictionary", "false")
        .partitionBy(PARTITION_COLUMN)
        .parquet(uri)
    )


def clean_pages(spark: SparkSession, pages: list[dict[str, str]], staging_uri: str) -> dict[str, int]:
    """The Spark job: clean the raw pages (`uri`, `partition`, `fetched_at` each) into clean/ and
    rejected/ Parquet under `staging_uri`; returns metadata for the step."""
    run_cleaning(
        spark,
        [
            RawPage(p["uri"], dt.date.fromisoformat(p["partition"]), dt.datetime.fromisoformat(p["fetched_at"]))
            for p in pages
        ],
        staging_uri,
    )
    return {"spark_pages": len(pages)}


def run_cleaning(spark: SparkSession, pages: list[RawPage], staging_uri: str) -> None:
    """Read the pages, clean them and write clean/ and rejected/ Parquet under `staging_uri`."""
    # The cache below is read twice and then dropped: compressing it cost a fifth of the JVM's CPU
    # (dictionary statistics per column batch) and saved nothing (it spills to disk if need be).
    spark.conf.set("spark.sql.inMemoryColumnarStorage.compressed", "false")
    days = {page.partition for page in pages}
    partitions = max(1, min(len(days), spark.sparkContext.defaultParallelism * 4))
    # Both outputs come from the same checked rows: parse and shuffle the pages once.
    checked = check(read_raw_pages(spark, pages), partitions).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        clean_rows, rejected_rows = split(checked)
        write_partitioned(clean_rows, f"{staging_uri}/clean", ["ticker"])
        write_partitioned(rejected_rows, f"{staging_uri}/rejected", ["source_page", "source_row"])
    finally:
        checked.unpersist()
