"""The daily schedule, "not published yet" retries and deadline, the run-failure notifier and
the marts' freshness policy, through Dagster's testing APIs (no Spark, no dbt run)."""

import datetime as dt
import http.server
import json
import logging
import threading

import dagster as dg
import pytest
from dagster._core.execution.plan import active as step_scheduler

from stock_platform import automation
from stock_platform.assets import ingestion
from stock_platform.defs.stock_prices.ingestion import raw_stock_prices
from stock_platform.defs.stock_prices.automation import (
    LogNotifier,
    SlackNotifier,
    daily_schedule,
    notifier_from_env,
    notify_run_failure,
)
from stock_platform.definitions import build_definitions
from stock_platform.platform.calendars import SEOUL
from stock_platform.resources import LakeResource, SourceResource
from stock_platform.platform.settings import load_settings
from stock_platform.defs.stock_prices.sources import FetchedPage


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


def test_schedule_ticks_at_1430_kst_on_weekdays_for_the_whole_graph(tmp_path):
    defs = build_definitions(load_settings({"STOCK_PLATFORM_DATA_DIR": str(tmp_path)}))
    schedule = defs.resolve_schedule_def("daily_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("30 14 * * 1-5", "Asia/Seoul")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    job = defs.resolve_job_def(schedule.job_name)
    graph = defs.resolve_asset_graph()
    assert job.asset_layer.executable_asset_keys == set(graph.materializable_asset_keys)
    assert len(graph.materializable_asset_keys) == 7


class UnpublishedSource(SourceResource):
    """What the API answers before publication: one page with zero rows for every day."""

    def fetch_days(self, days):
        fetched_at = dt.datetime(2024, 3, 6, 5, 30, tzinfo=dt.timezone.utc)
        return {day: [FetchedPage(1, b"{}", fetched_at, 0, 0)] for day in days}


class FakeClock:
    """Stands in for the `time` module of Dagster's step scheduler, so a retry's backoff delay
    passes instantly and is recorded instead of slept."""

    def __init__(self):
        import time

        self._time = time
        self.slept = 0.0

    def time(self) -> float:
        return self._time.time() + self.slept

    def sleep(self, seconds: float) -> None:
        self.slept += seconds


def run_unpublished(
    tmp_path, monkeypatch, *now: dt.datetime, instance: dg.DagsterInstance | None = None
) -> dg.ExecuteInProcessResult:
    """Materialize raw_stock_prices 2024-03-05 (Tue) while the source has not published it;
    successive attempts see the Seoul wall clock times `now`."""
    clock = iter(now)
    monkeypatch.setattr(ingestion, "seoul_now", lambda: next(clock))
    monkeypatch.setattr(step_scheduler, "time", FakeClock())
    return dg.materialize(
        [raw_stock_prices],
        partition_key="2024-03-05",
        resources={"source": UnpublishedSource(), "lake": LakeResource(root=str(tmp_path))},
        instance=instance or dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def events(result, event_type: str):
    return [e for e in result.all_events if e.event_type_value == event_type]


# 2024-03-05's data is due on the next session, Wednesday 2024-03-06; the deadline is 20:00 KST.
BEFORE_DEADLINE = dt.datetime(2024, 3, 6, 14, 30, tzinfo=SEOUL)
AFTER_DEADLINE = dt.datetime(2024, 3, 6, 20, 0, tzinfo=SEOUL)


def test_not_published_before_the_deadline_is_retried_with_backoff(tmp_path, monkeypatch):
    result = run_unpublished(tmp_path, monkeypatch, BEFORE_DEADLINE, AFTER_DEADLINE)
    (retry,) = events(result, "STEP_UP_FOR_RETRY")
    error = retry.event_specific_data.error.to_string()
    assert "not published yet" in error
    assert "2024-03-05" in error and "until 2024-03-06 20:00 KST" in error
    assert retry.event_specific_data.seconds_to_wait == 10 * 60  # first exponential step
    # The second attempt runs after the deadline: a final failure, no further retry.
    (failure,) = events(result, "STEP_FAILURE")
    assert "not published by the deadline" in failure.event_specific_data.error.message
    assert not result.success


def test_not_published_after_the_deadline_fails_for_good(tmp_path, monkeypatch):
    result = run_unpublished(tmp_path, monkeypatch, AFTER_DEADLINE)
    assert events(result, "STEP_UP_FOR_RETRY") == []
    (failure,) = events(result, "STEP_FAILURE")
    message = failure.event_specific_data.error.message
    assert "not published by the deadline" in message
    assert "2024-03-05 after 2024-03-06 20:00 KST. Giving up" in message
    assert not result.success


def test_publication_deadline_skips_holidays():
    # Tuesday 2024-04-09's data is due on Thursday: Wednesday 2024-04-10 was a holiday.
    assert ingestion.publication_deadline(dt.date(2024, 4, 9)) == dt.datetime(
        2024, 4, 11, 20, 0, tzinfo=SEOUL)
    # Friday's data is due on Monday.
    assert ingestion.publication_deadline(dt.date(2024, 3, 8)) == dt.datetime(
        2024, 3, 11, 20, 0, tzinfo=SEOUL)


@pytest.fixture
def failed_run(tmp_path, monkeypatch):
    instance = dg.DagsterInstance.ephemeral()
    result = run_unpublished(tmp_path, monkeypatch, AFTER_DEADLINE, instance=instance)
    return dg.build_run_status_sensor_context(
        sensor_name="notify_run_failure",
        dagster_event=result.get_run_failure_event(),
        dagster_instance=instance,
        dagster_run=result.dagster_run,
    ).for_run_failure()


class Webhook(http.server.BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Webhook.received.append({"path": self.path, "type": self.headers["Content-Type"],
                                 "json": json.loads(body)})
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def slack(monkeypatch):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Webhook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Webhook.received = []
    monkeypatch.setenv(
        "SLACK_WEBHOOK_URL", f"http://127.0.0.1:{server.server_address[1]}/services/T/B/X"
    )
    yield Webhook.received
    server.shutdown()
    server.server_close()


def test_failed_run_is_posted_to_slack(failed_run, slack):
    notify_run_failure(failed_run)
    (post,) = slack
    assert (post["path"], post["type"]) == ("/services/T/B/X", "application/json")
    text = post["json"]["text"]
    run = failed_run.dagster_run
    assert text.startswith(
        f"stock_platform run failed: job {run.job_name}, partitions 2024-03-05, run {run.run_id}\n"
    )
    assert "raw_stock_prices: " in text and "not published by the deadline" in text


def test_failed_run_is_logged_without_a_webhook(failed_run, monkeypatch, caplog):
    monkeypatch.delenv("SLACK_WEBHOOK_URL", raising=False)
    with caplog.at_level(logging.ERROR):
        notify_run_failure(failed_run)
    assert any("stock_platform run failed" in r.getMessage() and "not published by the deadline"
               in r.getMessage() for r in caplog.records), caplog.text


def test_notifier_is_chosen_by_slack_webhook_url():
    assert isinstance(notifier_from_env({}), LogNotifier)
    slack = notifier_from_env({"SLACK_WEBHOOK_URL": "http://127.0.0.1:9/hook"})
    assert isinstance(slack, SlackNotifier) and slack.webhook_url == "http://127.0.0.1:9/hook"


def test_marts_have_a_cron_freshness_policy(tmp_path):
    defs = build_definitions(load_settings({"STOCK_PLATFORM_DATA_DIR": str(tmp_path)}))
    graph = defs.resolve_asset_graph()
    policies = {key.to_user_string(): graph.get(key).freshness_policy
                for key in graph.materializable_asset_keys}
    marts = {f"stock_analytics/{m}" for m in
             ["fct_daily_stock_metrics", "market_daily_summary", "top_movers_daily"]}
    assert {k for k, p in policies.items() if p is not None} == marts
    policy = policies["stock_analytics/market_daily_summary"]
    assert policy == automation.MARTS_FRESHNESS
    assert (policy.deadline_cron, policy.timezone) == ("0 16 * * 1-5", "Asia/Seoul")
    sensor = defs.resolve_sensor_def("notify_run_failure")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
