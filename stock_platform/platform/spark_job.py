"""A domain's Spark job as a standalone PySpark script, driven through Dagster Pipes.

    spark-submit spark_job.py --job package.module:function --arguments <JSON URI> [Pipes arguments]

Runs the same function as in-process Spark (`function(spark, **arguments)`) and reports the
metadata it returns to Dagster. Imports neither Dagster nor anything beyond PySpark and
dagster-pipes, so it runs on a cluster with only the project's code shipped. Paths are whatever
Spark reads: gs:// on Dataproc, local paths in tests. On Dataproc the Pipes bootstrap comes as
command-line arguments and messages go to GCS; under PipesSubprocessClient both come through
environment variables and messages go to a local file.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable
from typing import Any


def load_job(job: str) -> Callable[..., dict[str, Any]]:
    """The function a "package.module:function" job name names."""
    module, _, function = job.partition(":")
    return getattr(importlib.import_module(module), function)


def _pipes_io():
    from dagster_pipes import (
        PipesCliArgsParamsLoader,
        PipesDefaultMessageWriter,
        PipesEnvVarParamsLoader,
        PipesGCSMessageWriter,
    )

    cli = PipesCliArgsParamsLoader()
    loader = cli if cli.is_dagster_pipes_process() else PipesEnvVarParamsLoader()
    # PipesGCSMessageReader on the Dagster side (outside Pipes, open_dagster_pipes runs without).
    if loader.is_dagster_pipes_process() and "bucket" in loader.load_messages_params():
        from google.cloud import storage

        return loader, PipesGCSMessageWriter(client=storage.Client())
    return loader, PipesDefaultMessageWriter()


def main(argv: list[str]) -> None:
    from dagster_pipes import open_dagster_pipes
    from pyspark.sql import SparkSession

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--job", required=True, help="package.module:function")
    parser.add_argument("--arguments", required=True, help="URI of the job's arguments (JSON)")
    args, _ = parser.parse_known_args(argv)  # the rest are the Pipes bootstrap arguments

    loader, writer = _pipes_io()
    with open_dagster_pipes(params_loader=loader, message_writer=writer) as pipes:
        spark = SparkSession.builder.appName(args.job.rpartition(":")[2]).getOrCreate()
        # Spark reads the file itself, so gs:// needs nothing beyond the cluster's GCS connector.
        row = spark.read.text(args.arguments, wholetext=True).first()
        if row is None:
            raise ValueError(f"{args.arguments} is empty: expected the job's arguments as JSON")
        text = row[0]
        pipes.log.info(f"Running {args.job}")
        metadata = load_job(args.job)(spark, **json.loads(text))
        pipes.report_asset_materialization(metadata=metadata)


if __name__ == "__main__":
    main(sys.argv[1:])
