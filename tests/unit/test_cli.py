import datetime as dt

import pytest

from stock_platform.cli import UsageError, main, resolve_range
from stock_platform.platform.calendars import SEOUL

NOW = dt.datetime(2024, 5, 20, 15, 0, tzinfo=SEOUL)  # a Monday afternoon


def test_default_is_the_last_20_sessions_with_a_partition():
    first, last = resolve_range(None, None, NOW)
    # Friday 2024-05-17's partition closed at Monday 00:00; 2024-05-15 was Buddha's Birthday.
    assert last == dt.date(2024, 5, 17)
    assert first == dt.date(2024, 4, 17)  # 10 April + 10 May sessions (May 1, 6, 15 closed)


def test_explicit_range_snaps_to_weekdays():
    assert resolve_range("2024-03-02", "2024-03-10", NOW) == (dt.date(2024, 3, 4), dt.date(2024, 3, 8))


@pytest.mark.parametrize(
    "start, end, message",
    [
        ("2024-13-01", "2024-03-05", "START='2024-13-01' is not a date in YYYY-MM-DD form"),
        ("2024-03-05", "yesterday", "END='yesterday' is not a date"),
        ("2024-03-08", "2024-03-04", "START=2024-03-08 is after END=2024-03-04: the range is inverted"),
        ("2019-12-02", "2020-01-10", "before the first partition 2020-01-02"),
        ("2024-05-01", "2024-05-20", "END=2024-05-20 has no partition yet: the latest is 2024-05-17"),
        ("2024-03-09", "2024-03-10", "no weekday partition between 2024-03-09 and 2024-03-10"),
    ],
)
def test_bad_ranges_get_a_clear_message(start, end, message):
    with pytest.raises(UsageError) as error:
        resolve_range(start, end, NOW)
    assert message in str(error.value)


def test_cli_exits_2_with_the_message(capsys):
    assert main(["run", "--start", "2024-03-08", "--end", "2024-03-04"]) == 2
    assert "the range is inverted" in capsys.readouterr().err
