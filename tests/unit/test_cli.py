"""`make run`'s planning: the default span, one run per partitions definition, and the messages of
ranges that cannot run."""

import datetime as dt

import dagster as dg
import pytest

from stock_platform.cli import UsageError, default_span, definitions, main, plan_runs, select_specs
from stock_platform.platform.calendars import SEOUL, calendar_day_partitions, weekday_partitions

NOW = dt.datetime(2024, 5, 20, 15, 0, tzinfo=SEOUL)  # a Monday afternoon
WEEKDAYS = weekday_partitions("2020-01-02", "Asia/Seoul")
CALENDAR_DAYS = calendar_day_partitions("2024-01-01", "Asia/Seoul")
SPECS = [
    dg.AssetSpec("a", group_name="prices", partitions_def=WEEKDAYS),
    dg.AssetSpec("b", group_name="prices", partitions_def=WEEKDAYS, deps=["a"]),
    dg.AssetSpec("c", group_name="weather", partitions_def=CALENDAR_DAYS),
]


def test_the_default_span_is_the_last_20_sessions_that_have_ended():
    # 2024-05-15 was Buddha's Birthday; May 1 and 6 were closed too: 10 April + 10 May sessions.
    assert default_span(NOW) == (dt.date(2024, 4, 17), dt.date(2024, 5, 17))
    # Just after midnight in Seoul (still the day before in UTC), the Friday has ended.
    saturday = dt.datetime(2024, 5, 17, 15, 30, tzinfo=dt.UTC)
    assert default_span(saturday)[1] == dt.date(2024, 5, 17)


def test_one_run_per_partitions_definition_over_the_default_span():
    prices, weather = plan_runs(SPECS, None, None, NOW)
    assert (prices.asset_keys, prices.groups) == ([dg.AssetKey("a"), dg.AssetKey("b")], ["prices"])
    assert (prices.first_key, prices.last_key, prices.partitions) == ("2024-04-17", "2024-05-17", 23)
    assert (weather.asset_keys, weather.groups) == ([dg.AssetKey("c")], ["weather"])
    assert (weather.first_key, weather.last_key, weather.partitions) == ("2024-04-17", "2024-05-17", 31)
    assert prices.notes == weather.notes == []


def test_on_a_weekend_the_default_span_stops_at_the_latest_partition_and_says_so():
    # Friday's session has ended, but its weekday partition's window runs to Monday 00:00.
    saturday = dt.datetime(2024, 5, 18, 12, 0, tzinfo=SEOUL)
    (prices,) = plan_runs(SPECS[:2], None, None, saturday)
    assert prices.last_key == "2024-05-16"
    assert prices.notes == ["prices ends at its latest partition 2024-05-16: the partition of "
                            "2024-05-17 opens when its time window has ended"]


def test_an_explicit_range_takes_the_partitions_inside_it():
    (prices,) = plan_runs(SPECS[:2], "2024-03-02", "2024-03-10", NOW)
    assert (prices.first_key, prices.last_key, prices.partitions) == ("2024-03-04", "2024-03-08", 5)


def test_start_alone_runs_to_the_latest_session_and_end_alone_from_the_default_start():
    (prices,) = plan_runs(SPECS[:2], "2024-05-13", None, NOW)
    assert (prices.first_key, prices.last_key) == ("2024-05-13", "2024-05-17")
    (prices,) = plan_runs(SPECS[:2], None, "2024-05-03", NOW)
    assert (prices.first_key, prices.last_key) == ("2024-04-17", "2024-05-03")


def test_a_range_before_the_first_partition_starts_there_and_says_so():
    prices, weather = plan_runs(SPECS, "2019-12-02", "2024-01-03", NOW)
    assert (prices.first_key, prices.last_key, prices.notes) == (
        "2020-01-02", "2024-01-03", ["prices starts at its first partition 2020-01-02, not 2019-12-02"])
    assert (weather.first_key, weather.last_key, weather.partitions) == ("2024-01-01", "2024-01-03", 3)
    assert weather.notes == ["weather starts at its first partition 2024-01-01, not 2019-12-02"]


@pytest.mark.parametrize(
    "start, end, message",
    [
        ("2024-13-01", "2024-03-05", "START='2024-13-01' is not a date in YYYY-MM-DD form"),
        ("2024-03-05", "yesterday", "END='yesterday' is not a date in YYYY-MM-DD form"),
        ("2024-03-08", "2024-03-04", "START=2024-03-08 is after END=2024-03-04: the range is inverted"),
        ("2024-05-01", "2024-05-20",
         "END=2024-05-20 has no partition of prices yet: the latest is 2024-05-17"),
        ("2024-03-09", "2024-03-10", "no partition of prices between 2024-03-09 and 2024-03-10"),
    ],
)
def test_a_range_that_cannot_run_gets_a_clear_message(start, end, message):
    with pytest.raises(UsageError) as error:
        plan_runs(SPECS[:2], start, end, NOW)
    assert message in str(error.value)


def test_a_partitions_definition_without_an_ended_partition_is_an_error():
    not_yet = weekday_partitions("2030-01-01", "Asia/Seoul")
    future = [dg.AssetSpec("d", group_name="future", partitions_def=not_yet)]
    with pytest.raises(UsageError, match="future: no partition has ended yet"):
        plan_runs(future, None, None, NOW)


def test_the_stock_domain_is_one_run_of_all_its_assets():
    specs = select_specs(definitions(), "stock_prices")
    (run,) = plan_runs(specs, "2024-04-08", "2024-04-12", NOW)
    assert {key.to_user_string() for key in run.asset_keys} == {
        "raw_stock_prices", "clean_stock_prices", "stock_raw/daily_prices",
        "stock_analytics/stg_daily_prices", "stock_analytics/fct_daily_stock_metrics",
        "stock_analytics/market_daily_summary", "stock_analytics/top_movers_daily",
        "stock_analytics/fct_stock_features"}
    assert (run.groups, run.first_key, run.last_key, run.partitions) == (
        ["stock_prices"], "2024-04-08", "2024-04-12", 5)
    with pytest.raises(UsageError, match="DOMAIN='weather' is not a domain; domains: serving, stock_prices, "):
        select_specs(definitions(), "weather")


def test_every_domain_is_one_run_per_partitions_definition():
    """Two calendars: KRX weekdays and calendar days. The weekend is in the web run only."""
    runs = plan_runs(select_specs(definitions(), None), "2024-04-06", "2024-04-12", NOW)
    assert [(run.groups, run.first_key, run.last_key, run.partitions) for run in runs] == [
        (["serving", "stock_prices"], "2024-04-08", "2024-04-12", 5),
        (["serving", "web_traffic"], "2024-04-06", "2024-04-12", 7),
    ]
    # Each serving table is published in the run of the marts it copies.
    serving = select_specs(definitions(), "serving")
    assert [(run.groups, sorted(key.to_user_string() for key in run.asset_keys))
            for run in plan_runs(serving, "2024-04-06", "2024-04-12", NOW)] == [
        (["serving"], ["serving/market_daily_summary", "serving/stock_daily_metrics"]),
        (["serving"], ["serving/web_daily_traffic"]),
    ]
    web = select_specs(definitions(), "web_traffic")
    assert {spec.key.to_user_string() for spec in web} >= {
        "raw_web_access_logs", "clean_web_access_logs", "web_raw/access_logs",
        "web_analytics/fct_requests", "web_analytics/web_daily_traffic"}
    assert {spec.group_name for spec in web} == {"web_traffic"}


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--start", "2024-03-08", "--end", "2024-03-04"], "the range is inverted"),
        (["run", "--domain", "weather"], "DOMAIN='weather' is not a domain"),
    ],
)
def test_the_cli_exits_2_with_the_message(argv, message, setenv, capsys):
    # Set as in the process the CLI re-executes itself as (so it does not re-execute this one).
    setenv(STOCK_PLATFORM_INSTANCE_DB_URL="postgresql+psycopg2://unused")
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_a_bad_setting_exits_2_naming_it(setenv, capsys):
    setenv(STOCK_PLATFORM_ENV="prod")
    assert main(["stop"]) == 2
    assert "STOCK_PLATFORM_ENV='prod'" in capsys.readouterr().err
