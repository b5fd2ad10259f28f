"""Shared fixtures.

- Every test runs with STOCK_PLATFORM_DATA_DIR and STOCK_PLATFORM_CACHE_DIR in temporary folders of
  the session (the data dir holds the lake, the warehouse and the instance, the cache dir the
  calendar: never the user's), unless it sets its own; the settings read from the environment are
  re-read for every test.
- `setenv`: set (or, with None, unset) environment variables for one test and re-read settings.
- `spark`: one local Spark session for the whole run (its JVM takes seconds to start).
"""

from __future__ import annotations

import sys

import pytest

from stock_platform.platform import settings as platform_settings


@pytest.fixture(scope="session", autouse=True)
def session_data_dir(tmp_path_factory):
    """STOCK_PLATFORM_DATA_DIR and STOCK_PLATFORM_CACHE_DIR for the whole session; a test may set
    its own (monkeypatch)."""
    data_dir = tmp_path_factory.mktemp("data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STOCK_PLATFORM_DATA_DIR", str(data_dir))
        patch.setenv("STOCK_PLATFORM_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        platform_settings.load.cache_clear()
        yield data_dir
    platform_settings.load.cache_clear()


@pytest.fixture(autouse=True)
def fresh_settings():
    """Settings are cached per process: each test reads its own environment."""
    platform_settings.load.cache_clear()
    yield
    platform_settings.load.cache_clear()


@pytest.fixture
def setenv(monkeypatch):
    """`setenv(NAME=value, OTHER=None)`: set or unset variables for this test, then re-read the
    settings."""

    def set_variables(**values: str | None) -> None:
        for name, value in values.items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        platform_settings.load.cache_clear()

    return set_variables


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    from pyspark.sql import SparkSession

    from stock_platform.platform.spark import local_spark_config

    config = local_spark_config(tmp_path_factory.mktemp("spark"))
    # Spark starts its Python workers with PYSPARK_PYTHON: this interpreter (the venv's).
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYSPARK_PYTHON", sys.executable)
        session = SparkSession.builder.config(map=config).getOrCreate()
        try:
            yield session
        finally:
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
