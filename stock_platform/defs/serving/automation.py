"""The serving tables follow their marts by declarative automation: each asset is eager (a new or
changed mart partition requests its serving partition), evaluated by this sensor. A range of
partitions requested at once becomes one backfill, run as one run (single-run backfill policy)."""

import dagster as dg

automation_sensor = dg.AutomationConditionSensorDefinition(
    "serving_automation",
    target=dg.AssetSelection.groups("serving"),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Publishes a serving table's partitions after their marts are materialized.",
)
