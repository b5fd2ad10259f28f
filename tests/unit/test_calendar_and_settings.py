"""Calendars, partition windows and dbt vars, and the settings contract (platform and stock)."""

import datetime as dt
import json

import dagster as dg
import pandas as pd
import pytest

from stock_platform.defs.stock_prices.settings import StockSettings
from stock_platform.platform import calendars
from stock_platform.platform.calendars import (
    calendar_day_partitions,
    closure_reason,
    trading_sessions,
    weekday_partitions,
)
from stock_platform.platform.dbt import build_args, window_vars
from stock_platform.platform.settings import PlatformSettings, SettingsError, parse, require_value


def test_weekday_partition_keys_are_seoul_weekdays_and_friday_runs_to_monday():
    partitions = weekday_partitions("2024-03-01", "Asia/Seoul")
    keys = partitions.get_partition_keys(current_time=dt.datetime(2024, 3, 9, tzinfo=dt.UTC))
    assert keys == ["2024-03-01", "2024-03-04", "2024-03-05", "2024-03-06", "2024-03-07"]
    window = partitions.time_window_for_partition_key("2024-03-01")
    assert window.start.isoformat() == "2024-03-01T00:00:00+09:00"
    assert window.end.isoformat() == "2024-03-04T00:00:00+09:00"


def test_calendar_day_partitions_have_every_day():
    partitions = calendar_day_partitions("2024-03-01", "Asia/Seoul")
    keys = partitions.get_partition_keys(current_time=dt.datetime(2024, 3, 4, tzinfo=dt.UTC))
    assert keys == ["2024-03-01", "2024-03-02", "2024-03-03"]  # 03-04 KST has not ended yet


@pytest.mark.parametrize(
    "day, reason",
    [
        (dt.date(2024, 4, 10), "KRX holiday"),  # 22nd National Assembly election (XKRX)
        (dt.date(2024, 12, 31), "KRX holiday"),  # year-end closure
        (dt.date(2026, 6, 3), "9th local elections"),  # missing from XKRX: project override
        (dt.date(2024, 3, 9), "weekend"),
        (dt.date(2024, 4, 11), None),
    ],
)
def test_closures(day, reason):
    assert closure_reason(day) == reason


def test_a_day_beyond_the_calendar_is_an_error_not_a_guess():
    with pytest.raises(ValueError, match="outside the XKRX calendar"):
        closure_reason(dt.date(2099, 1, 5))


def test_trading_sessions_in_2024():
    sessions = trading_sessions(dt.date(2024, 1, 1), dt.date(2024, 12, 31))
    assert len(sessions) == 244
    assert sessions[0] == dt.date(2024, 1, 2) and sessions[-1] == dt.date(2024, 12, 30)


def test_window_vars_for_a_range_window():
    partitions = weekday_partitions("2024-01-01", "Asia/Seoul")
    window = dg.TimeWindow(
        partitions.time_window_for_partition_key("2024-03-04").start,
        partitions.time_window_for_partition_key("2024-03-08").end,  # Friday: Monday 00:00
    )
    assert window_vars(window) == {"min_date": "2024-03-04", "max_date": "2024-03-10"}


def test_window_vars_for_one_day_and_the_dbt_command():
    window = weekday_partitions("2024-01-01", "Asia/Seoul").time_window_for_partition_key("2024-03-05")
    assert window_vars(window) == {"min_date": "2024-03-05", "max_date": "2024-03-05"}
    command, option, value = build_args(window)
    assert (command, option, json.loads(value)) == ("build", "--vars", window_vars(window))


# --- the session cache ------------------------------------------------------------------------


class FakeCalendar:
    def __init__(self, days):
        self.sessions = pd.DatetimeIndex([pd.Timestamp(day) for day in days])


def test_sessions_are_cached_in_the_cache_dir_per_day_and_rebuilt_when_unreadable(
    setenv, tmp_path, monkeypatch
):
    import exchange_calendars

    cache = tmp_path / "cache"
    setenv(STOCK_PLATFORM_CACHE_DIR=str(cache))
    stale = cache / "xkrx-sessions-0.0-from-2000-01-01-on-2000-01-01.json"
    stale.parent.mkdir(parents=True)
    stale.write_text("[]")
    built = []

    def get_calendar(name, start):
        built.append((name, start))
        return FakeCalendar(["2000-01-04", "2000-01-05", "2000-01-07"])

    monkeypatch.setattr(exchange_calendars, "get_calendar", get_calendar)
    try:
        calendars._xkrx_sessions.cache_clear()
        assert closure_reason(dt.date(2000, 1, 6)) == "KRX holiday"
        assert built == [("XKRX", "2000-01-01")]
        [entry] = cache.glob("xkrx-sessions-*.json")  # the stale one is gone
        assert str(dt.date.today()) in entry.name

        calendars._xkrx_sessions.cache_clear()  # the next process reads the entry
        assert closure_reason(dt.date(2000, 1, 5)) is None
        assert len(built) == 1

        entry.write_text('["2000-01-0')  # cut short: rebuilt, not trusted
        calendars._xkrx_sessions.cache_clear()
        assert closure_reason(dt.date(2000, 1, 7)) is None
        assert len(built) == 2
        assert json.loads(entry.read_text()) == ["2000-01-04", "2000-01-05", "2000-01-07"]
    finally:
        calendars._xkrx_sessions.cache_clear()  # the real calendar for the other tests


# --- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model, environ, message",
    [
        (PlatformSettings, {"STOCK_PLATFORM_ENV": "prod"},
         "STOCK_PLATFORM_ENV='prod': Input should be 'local' or 'gcp'"),
        (PlatformSettings, {"SPARK_RUNNER": "yarn"},
         "SPARK_RUNNER='yarn': Input should be 'local', 'dataproc' or 'kubernetes'"),
        (PlatformSettings, {"SPARK_EXECUTOR_INSTANCES": "0"},
         "SPARK_EXECUTOR_INSTANCES='0': Input should be greater than or equal to 1"),
        (StockSettings, {"STOCK_SOURCE": "krx"}, "STOCK_SOURCE='krx'"),
        (StockSettings, {"STOCK_PARTITIONS_START": "2020/01/02"},
         "STOCK_PARTITIONS_START='2020/01/02': Input should be a valid date"),
        (StockSettings, {"DATA_GO_KR_MAX_RPS": "fast"},
         "DATA_GO_KR_MAX_RPS='fast': Input should be a valid number"),
        (StockSettings, {"DATA_GO_KR_PAGE_SIZE": "0"},
         "DATA_GO_KR_PAGE_SIZE='0': Input should be greater than or equal to 1"),
    ],
)
def test_a_bad_setting_names_the_variable_and_what_it_accepts(model, environ, message):
    with pytest.raises(SettingsError) as error:
        parse(model, environ)
    assert message in str(error.value)


def test_the_process_environment_is_read_by_variable_name(setenv):
    setenv(STOCK_PLATFORM_ENV="gcp", SPARK_EXECUTOR_INSTANCES="6", STOCK_SOURCE="data_go_kr")
    settings = parse(PlatformSettings)
    assert (settings.env, settings.spark_executor_instances) == ("gcp", 6)
    assert parse(StockSettings).source == "data_go_kr"
    setenv(STOCK_PLATFORM_ENV="nope")
    with pytest.raises(SettingsError, match="STOCK_PLATFORM_ENV='nope'"):
        parse(PlatformSettings)


def test_empty_values_count_as_unset_and_field_names_are_not_variables(tmp_path):
    settings = parse(PlatformSettings, {"STOCK_PLATFORM_ENV": " ", "env": "gcp", "GCP_PROJECT": "",
                                        "STOCK_PLATFORM_DATA_DIR": str(tmp_path)})
    assert (settings.env, settings.gcp_project) == ("local", "")
    assert parse(StockSettings, {"STOCK_SOURCE": "", "DATA_GO_KR_PAGE_SIZE": ""}).source == "synthetic"


def test_the_data_dir_holds_the_lake_warehouse_and_instance(tmp_path):
    settings = parse(PlatformSettings, {"STOCK_PLATFORM_DATA_DIR": str(tmp_path / "a" / ".." / "d")})
    assert settings.data_path == tmp_path / "d"
    assert settings.lake_root == str(tmp_path / "d" / "lake")
    assert settings.warehouse_path == tmp_path / "d" / "warehouse.duckdb"
    assert settings.dagster_home == tmp_path / "d" / "dagster_home"


def test_the_tests_never_use_the_default_data_dir(session_data_dir):
    assert parse(PlatformSettings).data_path == session_data_dir.resolve()


def test_a_missing_required_value_names_the_variable():
    with pytest.raises(SettingsError, match=r"^GCP_PROJECT is not set; it is required for gcp$"):
        require_value("GCP_PROJECT", "  ", "for gcp")
    assert require_value("GCP_PROJECT", " p ", "for gcp") == "p"


def test_secrets_are_not_shown_in_the_settings():
    settings = parse(StockSettings, {"DATA_GO_KR_SERVICE_KEY": "LeakCanary-key"})
    assert "LeakCanary" not in repr(settings) and "LeakCanary" not in str(settings.model_dump())
    assert settings.service_key.get_secret_value() == "LeakCanary-key"
