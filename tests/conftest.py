"""Shared fixtures: one Spark session for the whole test run (its JVM takes seconds to start)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    from pyspark.sql import SparkSession

    from stock_platform.resources import local_spark_config, use_this_python_for_spark_workers
    from stock_platform.settings import load_settings

    use_this_python_for_spark_workers()

    settings = load_settings({"STOCK_PLATFORM_DATA_DIR": str(tmp_path_factory.mktemp("spark"))})
    builder = SparkSession.builder
    for key, value in local_spark_config(settings).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    yield session
    session.stop()


def pytest_terminal_summary(terminalreporter):
    """The reliability figures (issue #7), when the fault-injection tests ran."""
    from pathlib import Path

    from fixtures.reliability import OUTCOMES, table, write

    if OUTCOMES:
        terminalreporter.write_sep("=", "reliability: faults injected and what survived")
        terminalreporter.write_line(table(OUTCOMES))
        write(OUTCOMES, Path(__file__).resolve().parents[1] / "test-artifacts")
