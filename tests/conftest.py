"""Shared fixtures: one Spark session for the whole test run (its JVM takes seconds to start)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    from pyspark.sql import SparkSession

    from stock_platform.resources import local_spark_config, use_this_python_for_spark_workers
    from stock_platform.platform.settings import load_settings

    use_this_python_for_spark_workers()

    settings = load_settings({"STOCK_PLATFORM_DATA_DIR": str(tmp_path_factory.mktemp("spark"))})
    builder = SparkSession.builder
    for key, value in local_spark_config(settings).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    yield session
    session.stop()


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory):
    """An uninterrupted `make run` of fixtures.platform.REFERENCE_RANGE in its own data dir, started
    in the background when first requested; `.get()` waits for it. The fault-injection tests
    (crash recovery, concurrency) must end with exactly its tables."""
    from fixtures.platform import ReferenceRun

    run = ReferenceRun(tmp_path_factory.mktemp("reference"))
    yield run
    run.close()


def pytest_terminal_summary(terminalreporter):
    """The reliability figures (issue #7), when the fault-injection tests ran."""
    from pathlib import Path

    from fixtures.reliability import OUTCOMES, table, write

    if OUTCOMES:
        terminalreporter.write_sep("=", "reliability: faults injected and what survived")
        terminalreporter.write_line(table(OUTCOMES))
        write(OUTCOMES, Path(__file__).resolve().parents[1] / "test-artifacts")
