import datetime as dt

import dagster as dg
import pytest

from stock_platform.defs.stock_prices.marts import dbt_vars
from stock_platform.platform.calendars import (
    DAILY_PARTITIONS,
    closure_reason,
    daily_partitions,
    trading_sessions,
)
from stock_platform.platform.settings import SettingsError, load_settings


def test_partition_keys_are_seoul_weekdays():
    partitions = daily_partitions("2024-03-01")
    keys = partitions.get_partition_keys(current_time=dt.datetime(2024, 3, 9, tzinfo=dt.timezone.utc))
    assert keys == ["2024-03-01", "2024-03-04", "2024-03-05", "2024-03-06", "2024-03-07"]
    window = partitions.time_window_for_partition_key("2024-03-01")
    assert window.start.isoformat() == "2024-03-01T00:00:00+09:00"
    assert window.end.isoformat() == "2024-03-04T00:00:00+09:00"  # Friday runs to Monday


def test_default_partitions_start():
    assert DAILY_PARTITIONS.get_first_partition_key() == "2020-01-02"


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


def test_trading_sessions_in_2024():
    sessions = trading_sessions(dt.date(2024, 1, 1), dt.date(2024, 12, 31))
    assert len(sessions) == 244
    assert sessions[0] == dt.date(2024, 1, 2) and sessions[-1] == dt.date(2024, 12, 30)


def test_dbt_vars_for_a_range_window():
    partitions = daily_partitions("2024-01-01")
    window = dg.TimeWindow(
        partitions.time_window_for_partition_key("2024-03-04").start,
        partitions.time_window_for_partition_key("2024-03-08").end,  # Friday: Monday 00:00
    )
    assert dbt_vars(window) == {"min_date": "2024-03-04", "max_date": "2024-03-10"}


def test_dbt_vars_for_one_day():
    window = daily_partitions("2024-01-01").time_window_for_partition_key("2024-03-05")
    assert dbt_vars(window) == {"min_date": "2024-03-05", "max_date": "2024-03-05"}


@pytest.mark.parametrize(
    "environ, message",
    [
        ({"STOCK_PLATFORM_ENV": "prod"}, "STOCK_PLATFORM_ENV='prod' is not valid; allowed values: local, gcp"),
        ({"STOCK_SOURCE": "krx"}, "STOCK_SOURCE='krx' is not valid; allowed values: synthetic, data_go_kr"),
        ({"STOCK_PARTITIONS_START": "2020/01/02"}, "STOCK_PARTITIONS_START='2020/01/02' is not a date"),
        ({"DATA_GO_KR_MAX_RPS": "fast"}, "DATA_GO_KR_MAX_RPS='fast' is not a float"),
        ({"DATA_GO_KR_PAGE_SIZE": "0"}, "DATA_GO_KR_PAGE_SIZE='0' must be at least 1"),
    ],
)
def test_bad_settings_name_the_variable(environ, message):
    with pytest.raises(SettingsError) as error:
        load_settings(environ)
    assert message in str(error.value)


def test_missing_setting_names_the_variable():
    settings = load_settings({})
    with pytest.raises(SettingsError, match="GCP_PROJECT is not set; it is required for gcp"):
        settings.require("GCP_PROJECT", "for gcp")


def test_defaults(tmp_path):
    settings = load_settings({"STOCK_PLATFORM_DATA_DIR": str(tmp_path)})
    assert (settings.env, settings.source, settings.page_size, settings.max_rps) == (
        "local", "synthetic", 1000, 30.0)
    assert settings.warehouse_path == tmp_path / "warehouse.duckdb"
    assert settings.base_url.endswith("/GetStockSecuritiesInfoService_V2/getStockPriceInfo_V2")


def test_the_session_list_is_cached_per_day_and_rebuilt_when_unreadable(tmp_path, monkeypatch):
    import exchange_calendars

    from stock_platform import partitions

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    stale = tmp_path / "stock_platform" / "xkrx-sessions-0.0-from-2000-01-01-on-2000-01-01.json"
    stale.parent.mkdir(parents=True)
    stale.write_text("[]")
    partitions._xkrx_sessions.cache_clear()
    built = partitions._xkrx_sessions()
    [entry] = (tmp_path / "stock_platform").glob("xkrx-sessions-*.json")  # the stale one is gone
    assert str(dt.date.today()) in entry.name
    calendar = exchange_calendars.get_calendar("XKRX", start="2000-01-01")
    assert built[2] == frozenset(s.date() for s in calendar.sessions)

    # The next process reads the entry instead of building the calendar.
    monkeypatch.setattr(exchange_calendars, "get_calendar", None)
    partitions._xkrx_sessions.cache_clear()
    assert partitions._xkrx_sessions() == built

    entry.write_text('["2024-01-0')  # cut short: rebuilt, not trusted
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    partitions._xkrx_sessions.cache_clear()
    assert partitions._xkrx_sessions() == built
    partitions._xkrx_sessions.cache_clear()
