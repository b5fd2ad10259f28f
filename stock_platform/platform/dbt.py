"""dbt for every domain: the one dbt project, its translator and the partition-window vars.

One dbt project holds every domain's models (`dbt_project/models/<domain>/{staging,marts}`).
Each domain selects its folder with its own `@dbt_assets` (its partitions, its backfill policy);
the translator below gives every model and source its asset key, and every model its group and
freshness policy.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtProject

from stock_platform.platform.settings import REPO_ROOT

DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR)
# Under `dagster dev` (and `make dev`) the manifest is re-parsed on every definitions reload.
dbt_project.prepare_if_dev()


class PlatformDbtTranslator(DagsterDbtTranslator):
    """Asset specs for one domain's dbt nodes.

    - a model is `<key_prefix>/<model>` in the domain's group;
    - a source is `<source name>/<table>`: the key of the warehouse asset that loads it, so
      lineage runs unbroken from the raw data to the marts;
    - a model in a layer folder named in `freshness` (e.g. "marts") gets that freshness policy;
    - a model in a layer folder named in `lookback` depends on its parents through that partition
      mapping (its partitions read the days before them).
    """

    def __init__(
        self,
        key_prefix: str,
        group: str,
        freshness: Mapping[str, dg.FreshnessPolicy] | None = None,
        lookback: Mapping[str, dg.PartitionMapping] | None = None,
    ):
        super().__init__()
        self.key_prefix = key_prefix
        self.group = group
        self.freshness = dict(freshness or {})
        self.lookback = dict(lookback or {})

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        props = self.get_resource_props(manifest, unique_id)
        if props["resource_type"] == "source":
            return spec.replace_attributes(key=dg.AssetKey([props["source_name"], props["name"]]))
        spec = spec.replace_attributes(key=dg.AssetKey([self.key_prefix, props["name"]]), group_name=self.group)
        # fqn: [project, domain folder, layer folder, ..., model]
        layer = props["fqn"][2] if len(props["fqn"]) > 3 else None
        if layer in self.freshness:
            spec = dg.apply_freshness_policy(spec, self.freshness[layer])
        if layer in self.lookback:
            # A model of the same layer (a mart reading another mart) already holds its lookback:
            # its rows of the same day are read, so counting the lookback again would double it.
            same_layer = {
                dg.AssetKey([self.key_prefix, manifest["nodes"][parent]["name"]])
                for parent in props["depends_on"]["nodes"]
                if parent in manifest["nodes"] and manifest["nodes"][parent]["fqn"][2:3] == [layer]
            }
            mapping = self.lookback[layer]
            spec = spec.replace_attributes(deps=[
                dg.AssetDep(dep.asset_key, partition_mapping=None if dep.asset_key in same_layer else mapping)
                for dep in spec.deps
            ])
        return spec


def window_vars(window: dg.TimeWindow) -> dict[str, str]:
    """The dbt vars for a partition window: its inclusive first and last calendar day.

    The window end is exclusive (a Friday's window of weekday partitions ends Monday 00:00), so
    the last day is the day before it."""
    last = (window.end - dt.timedelta(days=1)).date()
    return {"min_date": window.start.date().isoformat(), "max_date": last.isoformat()}


def build_args(window: dg.TimeWindow) -> list[str]:
    """`dbt build` for the models and tests of a partition window."""
    return ["build", "--vars", json.dumps(window_vars(window))]

