"""The dbt project as assets: stock_analytics/<model>, built incrementally per partition window."""


import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from stock_platform.assets.common import PARTITIONED

dbt_project = DbtProject(project_dir=Path(__file__).resolve().parents[2] / "dbt_project")
dbt_project.prepare_if_dev()


class StockDbtTranslator(DagsterDbtTranslator):
    """Models are stock_analytics/<model>; the source stock_raw.daily_prices is the warehouse
    asset, so lineage runs unbroken from the API to the marts."""

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        props = self.get_resource_props(manifest, unique_id)
        if props["resource_type"] == "source":
            return spec.replace_attributes(key=dg.AssetKey([props["source_name"], props["name"]]))
        return spec.replace_attributes(
            key=dg.AssetKey(["stock_analytics", props["name"]]), group_name="analytics"
        )


def dbt_vars(window: dg.TimeWindow) -> dict[str, str]:
    """The dbt vars for a partition window: inclusive first and last calendar day.

    The window end is exclusive (a Friday's window ends Monday 00:00), so the last day is the day
    before it.
    """
    last = (window.end - dt.timedelta(days=1)).date()
    return {"min_date": window.start.date().isoformat(), "max_date": last.isoformat()}


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=StockDbtTranslator(),
    name="stock_analytics_dbt",
    pool="warehouse",
    **PARTITIONED,
)
def stock_analytics_dbt(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    args = ["build", "--vars", json.dumps(dbt_vars(context.partition_time_window))]
    yield from dbt.cli(args, context=context).stream().fetch_row_counts().fetch_column_metadata()
