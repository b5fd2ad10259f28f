"""The cleaning transform as a standalone PySpark job, driven through Dagster Pipes.

    spark-submit dataproc_job.py --pages <pages.json URI> --staging-uri <URI> [Pipes arguments]

Runs stock_platform.spark.cleaning.run_cleaning unchanged (the same code as in-process Spark) and
reports the clean and rejected row counts back to Dagster as materialization metadata. Paths are
whatever Spark can read: gs:// on Dataproc, local paths in tests. On Dataproc the Pipes bootstrap
comes as command-line arguments and messages go to GCS; under PipesSubprocessClient both come
through environment variables and messages go to a local file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

from dagster_pipes import (
    PipesCliArgsParamsLoader,
    PipesDefaultMessageWriter,
    PipesEnvVarParamsLoader,
    PipesGCSMessageWriter,
    PipesMessageWriter,
    PipesParamsLoader,
    open_dagster_pipes,
)
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from stock_platform.spark.cleaning import PARTITION_COLUMN, RawPage, run_cleaning


def pages_to_json(pages: list[RawPage]) -> str:
    return json.dumps(
        [
            {"uri": p.uri, "partition": p.partition.isoformat(), "fetched_at": p.fetched_at.isoformat()}
            for p in pages
        ]
    )


def pages_from_json(text: str) -> list[RawPage]:
    return [
        RawPage(
            p["uri"], dt.date.fromisoformat(p["partition"]), dt.datetime.fromisoformat(p["fetched_at"])
        )
        for p in json.loads(text)
    ]


def rows_by_day(spark: SparkSession, uri: str) -> dict[str, int]:
    """Rows per dt=YYYY-MM-DD folder of a written output. Only the partition column is read
    (Parquet footers), and the given schema lets an output with no rows count as empty."""
    frame = spark.read.schema(f"{PARTITION_COLUMN} string").parquet(uri)
    return {row[PARTITION_COLUMN]: row["count"] for row in frame.groupBy(PARTITION_COLUMN).count().collect()}


def _pipes_io() -> tuple[PipesParamsLoader, PipesMessageWriter]:
    cli = PipesCliArgsParamsLoader()
    loader = cli if cli.is_dagster_pipes_process() else PipesEnvVarParamsLoader()
    # PipesGCSMessageReader on the Dagster side (outside Pipes, open_dagster_pipes runs without)
    if loader.is_dagster_pipes_process() and "bucket" in loader.load_messages_params():
        from google.cloud import storage

        return loader, PipesGCSMessageWriter(client=storage.Client())
    return loader, PipesDefaultMessageWriter()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", required=True, help="URI of a JSON list of raw pages")
    parser.add_argument("--staging-uri", required=True, help="where clean/ and rejected/ go")
    args, _ = parser.parse_known_args(argv)  # the rest are the Pipes bootstrap arguments

    loader, writer = _pipes_io()
    with open_dagster_pipes(params_loader=loader, message_writer=writer) as pipes:
        spark = SparkSession.builder.appName("stock_platform_cleaning").getOrCreate()
        # Spark reads the list itself, so gs:// needs nothing beyond the cluster's GCS connector.
        text = spark.read.text(args.pages, wholetext=True).select(F.col("value")).first()[0]
        pages = pages_from_json(text)
        pipes.log.info(f"Cleaning {len(pages)} raw pages into {args.staging_uri}")
        run_cleaning(spark, pages, args.staging_uri)
        clean = rows_by_day(spark, f"{args.staging_uri}/clean")
        rejected = rows_by_day(spark, f"{args.staging_uri}/rejected")
        days = sorted({page.partition.isoformat() for page in pages})
        pipes.report_asset_materialization(
            metadata={
                "spark_clean_rows": sum(clean.values()),
                "spark_rejected_rows": sum(rejected.values()),
                "spark_pages": len(pages),
                "spark_rows_by_day": {
                    "raw_value": {d: {"clean": clean.get(d, 0), "rejected": rejected.get(d, 0)} for d in days},
                    "type": "json",
                },
            }
        )


if __name__ == "__main__":
    main(sys.argv[1:])
