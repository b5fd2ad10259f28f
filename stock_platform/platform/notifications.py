"""Failed runs are reported: to Slack when SLACK_WEBHOOK_URL is set, else to the Dagster log.

One sensor for every domain's runs. Slack through slack_sdk's incoming-webhook client (the same
library dagster-slack uses; dagster-slack itself posts with a bot token and a channel, not a
webhook URL).
"""

from __future__ import annotations

from typing import Protocol

import dagster as dg
from slack_sdk.webhook import WebhookClient

from stock_platform.platform.settings import platform_settings


class Notifier(Protocol):
    def notify(self, text: str) -> None: ...


class LogNotifier:
    def notify(self, text: str) -> None:
        dg.get_dagster_logger().error(text)


class SlackNotifier:
    """Posts to a Slack incoming webhook (the URL is a secret: never logged)."""

    def __init__(self, webhook_url: str, timeout: int = 10):
        self.client = WebhookClient(webhook_url, timeout=timeout)

    def notify(self, text: str) -> None:
        response = self.client.send(text=text)
        if response.status_code != 200:
            raise RuntimeError(f"Slack answered {response.status_code}: {response.body[:200]}")


def notifier() -> Notifier:
    """Slack when SLACK_WEBHOOK_URL is set, else the Dagster log."""
    url = platform_settings().slack_webhook_url
    return SlackNotifier(url.get_secret_value()) if url else LogNotifier()


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


def step_error(event: dg.DagsterEvent) -> str:
    data = event.step_failure_data
    if data.user_failure_data and data.user_failure_data.description:
        return data.user_failure_data.description  # a dg.Failure: the asset's own words
    error = data.error
    while error and error.cause:  # Dagster wraps user code errors; the innermost says why
        error = error.cause
    return error.message.strip() if error else "(no error)"


@dg.run_failure_sensor(
    name="notify_run_failure",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Reports every failed run (Slack if SLACK_WEBHOOK_URL is set, else the log).",
)
def notify_run_failure(context: dg.RunFailureSensorContext):
    # The run's failure event only names the failed steps; the steps' own errors say why.
    errors = [f"{e.step_key}: {step_error(e)}" for e in context.get_step_failure_events()]
    notifier().notify(failure_message(
            context.dagster_run,
            "\n".join(errors) or context.failure_event.message or "(no error message)",
        )
    )
