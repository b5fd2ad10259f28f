"""Daily automation: the schedule, run-failure notifications and the marts' freshness policy.

Data for session D is published after 13:00 KST on the next session, so the schedule ticks at
14:30 KST on weekdays and materializes the previous XKRX session through the dbt marts. Late
publication is handled by raw_stock_prices (retry with backoff until the 20:00 KST deadline).
"""

import datetime as dt
import json
import os
import urllib.request
from collections.abc import Mapping
from typing import Protocol

import dagster as dg

from stock_platform.assets.dbt import dbt_project
from stock_platform.partitions import (
    DAILY_PARTITIONS,
    PARTITION_FORMAT,
    SEOUL,
    closure_reason,
    is_trading_day,
    parse_partition_key,
)

daily_job = dg.define_asset_job(
    "daily_stock_prices",
    selection=dg.AssetSelection.all(),
    description="The whole graph, API to dbt marts, for one session (launched by daily_schedule).",
)


def previous_session(day: dt.date) -> dt.date:
    """The last XKRX session strictly before `day` (KRX never closes for more than two weeks)."""
    for back in range(1, 15):
        candidate = day - dt.timedelta(days=back)
        if is_trading_day(candidate):
            return candidate
    raise ValueError(f"no XKRX session in the two weeks before {day}")


@dg.schedule(
    job=daily_job,
    cron_schedule="30 14 * * 1-5",
    execution_timezone="Asia/Seoul",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="14:30 KST on KRX sessions: the previous session (published after 13:00 KST).",
)
def daily_schedule(context: dg.ScheduleEvaluationContext):
    today = context.scheduled_execution_time.astimezone(SEOUL).date()
    reason = closure_reason(today)
    if reason:
        # Nothing is published on a closed day; the session before it is picked up on the next
        # session, when its data appears.
        return dg.SkipReason(f"{today} is not a KRX session ({reason}): nothing is published today")
    # The previous *session*, not the previous weekday: after a holiday the data published today
    # is that of the session before the holiday, which no earlier tick could have fetched.
    target = previous_session(today)
    first = parse_partition_key(DAILY_PARTITIONS.get_first_partition_key())
    if target < first:
        return dg.SkipReason(f"{target} is before the first partition {first}")
    key = target.strftime(PARTITION_FORMAT)
    return dg.RunRequest(run_key=key, partition_key=key)


class Notifier(Protocol):
    def notify(self, text: str) -> None: ...


class LogNotifier:
    def notify(self, text: str) -> None:
        dg.get_dagster_logger().error(text)


class SlackNotifier:
    """Posts to a Slack incoming webhook (the URL is a secret: never logged)."""

    def __init__(self, webhook_url: str, timeout: float = 10.0):
        self.webhook_url = webhook_url
        self.timeout = timeout

    def notify(self, text: str) -> None:
        request = urllib.request.Request(
            self.webhook_url,
            data=json.dumps({"text": text}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            response.read()


def notifier_from_env(env: Mapping[str, str] = os.environ) -> Notifier:
    """Slack when SLACK_WEBHOOK_URL is set, else the Dagster log. Read per use, not at import."""
    url = env.get("SLACK_WEBHOOK_URL")
    return SlackNotifier(url) if url else LogNotifier()


def failure_message(run: dg.DagsterRun, error: str) -> str:
    tags = run.tags
    if "dagster/partition" in tags:
        partitions = tags["dagster/partition"]
    elif "dagster/asset_partition_range_start" in tags:
        partitions = (
            f"{tags['dagster/asset_partition_range_start']}..."
            f"{tags['dagster/asset_partition_range_end']}"
        )
    else:
        partitions = "-"
    return (
        f"stock_platform run failed: job {run.job_name}, partitions {partitions}, "
        f"run {run.run_id}\n{error}"
    )


@dg.run_failure_sensor(
    name="notify_run_failure",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Reports every failed run (Slack if SLACK_WEBHOOK_URL is set, else the log).",
)
def notify_run_failure(context: dg.RunFailureSensorContext):
    # The run's failure event only names the failed steps; the steps' own errors say why.
    errors = [f"{e.step_key}: {step_error(e)}" for e in context.get_step_failure_events()]
    notifier_from_env().notify(
        failure_message(context.dagster_run, "\n".join(errors) or context.failure_event.message)
    )


def step_error(event: dg.DagsterEvent) -> str:
    data = event.step_failure_data
    if data.user_failure_data and data.user_failure_data.description:
        return data.user_failure_data.description  # a dg.Failure: the asset's own words
    error = data.error
    while error and error.cause:  # Dagster wraps user code errors; the innermost says why
        error = error.cause
    return error.message.strip() if error else "(no error)"


# The previous session's marts are expected by 16:00 KST on business days, built after the
# 13:00 publication (the schedule runs at 14:30).
MARTS_FRESHNESS = dg.FreshnessPolicy.cron(
    deadline_cron="0 16 * * 1-5", lower_bound_delta=dt.timedelta(hours=3), timezone="Asia/Seoul"
)


def _mart_unique_ids() -> set[str]:
    manifest = json.loads(dbt_project.manifest_path.read_text())
    return {
        unique_id
        for unique_id, node in manifest["nodes"].items()
        if node["resource_type"] == "model"
        and node["original_file_path"].startswith("models/marts/")
    }


def with_marts_freshness(dbt_assets: dg.AssetsDefinition) -> dg.AssetsDefinition:
    """The dbt assets with MARTS_FRESHNESS on the models under models/marts/."""
    marts = _mart_unique_ids()
    return dbt_assets.map_asset_specs(
        lambda spec: dg.apply_freshness_policy(spec, MARTS_FRESHNESS)
        if spec.metadata.get("dagster_dbt/unique_id") in marts
        else spec
    )
