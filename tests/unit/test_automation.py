"""The daily schedule, "not published yet" retries and deadline, and the run-failure sensor with its
notifiers (Slack through a real HTTP server on 127.0.0.1, or the Dagster log), through Dagster's
testing APIs (no Spark, no dbt run)."""

import datetime as dt
import http.server
import json
import logging
import threading
from typing import ClassVar

import dagster as dg
import pytest

from stock_platform.cli import definitions
from stock_platform.defs.stock_prices import ingestion
from stock_platform.defs.stock_prices.automation import daily_schedule
from stock_platform.defs.stock_prices.ingestion import NotPublishedYet, raw_stock_prices
from stock_platform.defs.stock_prices.resources import StockSourceResource
from stock_platform.defs.stock_prices.sources import FetchedPage
from stock_platform.platform.calendars import SEOUL, previous_session
from stock_platform.platform.notifications import (
    LogNotifier,
    SlackNotifier,
    notifier,
    notify_run_failure,
)
from stock_platform.platform.resources.interfaces import LakeResource


def tick(day: str) -> dg.ScheduleEvaluationContext:
    return dg.build_schedule_context(
        scheduled_execution_time=dt.datetime.combine(
            dt.date.fromisoformat(day), dt.time(14, 30), SEOUL
        )
    )


@pytest.mark.parametrize(
    "tick_day, partition",
    [
        ("2024-03-05", "2024-03-04"),  # a normal Tuesday: Monday
        ("2024-03-11", "2024-03-08"),  # a Monday: Friday
        ("2024-04-11", "2024-04-09"),  # the day after the 2024-04-10 election holiday: Tuesday
        ("2024-03-04", "2024-02-29"),  # Monday after Friday 2024-03-01 (holiday): Thursday
    ],
)
def test_schedule_targets_the_previous_session(tick_day, partition):
    request = daily_schedule(tick(tick_day))
    assert isinstance(request, dg.RunRequest), request
    assert (request.partition_key, request.run_key) == (partition, partition)


@pytest.mark.parametrize(
    "holiday, reason", [("2024-04-10", "KRX holiday"), ("2026-06-03", "9th local elections")]
)
def test_schedule_skips_holidays(holiday, reason):
    skip = daily_schedule(tick(holiday))
    assert isinstance(skip, dg.SkipReason), skip
    assert holiday in skip.skip_message and reason in skip.skip_message


def test_schedule_skips_a_session_before_the_first_partition():
    skip = daily_schedule(tick("2020-01-02"))  # the first partition: its previous session is not one
    assert isinstance(skip, dg.SkipReason), skip
    assert "before the first partition 2020-01-02" in skip.skip_message


def test_previous_session_skips_weekends_and_holidays():
    assert previous_session(dt.date(2024, 4, 11)) == dt.date(2024, 4, 9)
    assert previous_session(dt.date(2024, 3, 4)) == dt.date(2024, 2, 29)


def test_schedule_ticks_at_1430_kst_on_weekdays_for_the_whole_domain():
    defs = definitions()
    schedule = defs.resolve_schedule_def("daily_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("30 14 * * 1-5", "Asia/Seoul")
    job = defs.resolve_job_def(schedule.job_name)
    graph = defs.resolve_asset_graph()
    stock = {key for key in graph.materializable_asset_keys if graph.get(key).group_name == "stock_prices"}
    assert job.asset_layer.executable_asset_keys == stock
    assert len(stock) == 8


# --- not published yet --------------------------------------------------------------------------


class UnpublishedSource(StockSourceResource):
    """What the API answers before publication: one page with zero rows for every day."""

    def fetch_chunks(self, days, size):
        fetched_at = dt.datetime(2024, 3, 6, 5, 30, tzinfo=dt.UTC)
        yield {day: [FetchedPage(1, b"{}", fetched_at, 0, 0)] for day in days}


# 2024-03-05's data is due on the next session, Wednesday 2024-03-06; the deadline is 20:00 KST.
BEFORE_DEADLINE = dt.datetime(2024, 3, 6, 14, 30, tzinfo=SEOUL)
AFTER_DEADLINE = dt.datetime(2024, 3, 6, 20, 0, tzinfo=SEOUL)


def attempt(tmp_path, monkeypatch, now: dt.datetime) -> NotPublishedYet:
    """One attempt of raw_stock_prices 2024-03-05 at Seoul time `now`, the source unpublished."""
    monkeypatch.setattr(ingestion, "seoul_now", lambda: now)
    with (dg.build_asset_context(partition_key="2024-03-05") as context,
          pytest.raises(NotPublishedYet) as failure):
        raw_stock_prices(context, stock_source=UnpublishedSource(), lake=LakeResource(root=str(tmp_path)))
    return failure.value


def test_not_published_before_the_deadline_fails_the_attempt_for_a_retry(tmp_path, monkeypatch):
    failure = attempt(tmp_path, monkeypatch, BEFORE_DEADLINE)
    assert failure.allow_retries is True
    assert "not published yet" in failure.description
    assert "2024-03-05" in failure.description and "until 2024-03-06 20:00 KST" in failure.description


def test_not_published_after_the_deadline_fails_for_good(tmp_path, monkeypatch):
    failure = attempt(tmp_path, monkeypatch, AFTER_DEADLINE)
    assert failure.allow_retries is False
    assert "2024-03-05 after 2024-03-06 20:00 KST. Giving up" in failure.description


def test_the_retries_from_the_1430_tick_back_off_and_the_last_comes_after_the_deadline():
    policy = raw_stock_prices.op.retry_policy
    at, attempts = BEFORE_DEADLINE, []
    for retry in range(1, policy.max_retries + 1):
        at += dt.timedelta(seconds=policy.calculate_delay(retry))
        attempts.append(at)
    gaps = [later - earlier for earlier, later in zip([BEFORE_DEADLINE, *attempts[:-1]], attempts, strict=True)]
    assert gaps == sorted(gaps) and gaps[0] < gaps[-1]  # backing off
    deadline = ingestion.publication_deadline(dt.date(2024, 3, 5))
    # Every retry but the last looks again before the deadline; the last one gives up, so a
    # late day fails that night with the "giving up" message, not earlier without it.
    assert all(a < deadline for a in attempts[:-1]) and attempts[-1] >= deadline, attempts


def test_publication_deadline_skips_holidays():
    # Tuesday 2024-04-09's data is due on Thursday: Wednesday 2024-04-10 was a holiday.
    assert ingestion.publication_deadline(dt.date(2024, 4, 9)) == dt.datetime(
        2024, 4, 11, 20, 0, tzinfo=SEOUL)
    # Friday's data is due on Monday.
    assert ingestion.publication_deadline(dt.date(2024, 3, 8)) == dt.datetime(
        2024, 3, 11, 20, 0, tzinfo=SEOUL)


def events(result, event_type: str):
    return [e for e in result.all_events if e.event_type_value == event_type]


@pytest.fixture
def failed_run(tmp_path, monkeypatch):
    """A run of raw_stock_prices 2024-03-05 that failed after the deadline, as the failure
    sensor sees it."""
    monkeypatch.setattr(ingestion, "seoul_now", lambda: AFTER_DEADLINE)
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [raw_stock_prices],
            partition_key="2024-03-05",
            resources={"stock_source": UnpublishedSource(), "lake": LakeResource(root=str(tmp_path))},
            instance=instance,
            raise_on_error=False,
        )
        assert not result.success
        assert events(result, "STEP_UP_FOR_RETRY") == []
        (failure,) = events(result, "STEP_FAILURE")
        assert "not published by the deadline" in failure.event_specific_data.error.message
        yield dg.build_run_status_sensor_context(
            sensor_name="notify_run_failure",
            dagster_event=result.get_run_failure_event(),
            dagster_instance=instance,
            dagster_run=result.dagster_run,
        ).for_run_failure()


# --- notifications ------------------------------------------------------------------------------


class Webhook(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Webhook.received.append({"path": self.path, "type": self.headers["Content-Type"],
                                 "json": json.loads(body)})
        failing = self.path.endswith("/revoked")
        self.send_response(404 if failing else 200)
        self.end_headers()
        self.wfile.write(b"no_service" if failing else b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def slack():
    """A Slack incoming webhook on 127.0.0.1: yields its base URL; posts land in Webhook.received."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Webhook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Webhook.received = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_failed_run_is_posted_to_slack(failed_run, slack, setenv):
    setenv(SLACK_WEBHOOK_URL=f"{slack}/services/T/B/X")
    notify_run_failure(failed_run)
    (post,) = Webhook.received
    assert (post["path"], post["type"]) == ("/services/T/B/X", "application/json;charset=utf-8")
    text = post["json"]["text"]
    run = failed_run.dagster_run
    assert text.startswith(
        f"stock_platform run failed: job {run.job_name}, partitions 2024-03-05, run {run.run_id}\n"
    )
    assert "raw_stock_prices: " in text and "not published by the deadline" in text


def test_a_failed_run_is_logged_without_a_webhook(failed_run, setenv, caplog):
    setenv(SLACK_WEBHOOK_URL=None)
    assert isinstance(notifier(), LogNotifier)
    with caplog.at_level(logging.ERROR):
        notify_run_failure(failed_run)
    assert any("stock_platform run failed" in r.getMessage() and "not published by the deadline"
               in r.getMessage() for r in caplog.records), caplog.text


def test_slack_refusing_the_post_is_an_error_that_does_not_show_the_url(slack):
    url = f"{slack}/services/T/B/revoked"
    with pytest.raises(RuntimeError, match="Slack answered 404: no_service") as error:
        SlackNotifier(url).notify("hello")
    assert "revoked" not in str(error.value)
    assert [post["json"] for post in Webhook.received] == [{"text": "hello"}]
