"""The serving domain without a database: its calendars match the marts', and what the gcp
resource sends to the Cloud SQL Python Connector (IAM database authentication, no password)."""

from typing import ClassVar

import dagster as dg
import pytest

from stock_platform.definitions import defs as definitions
from stock_platform.defs.serving.tables import STOCK_LOOKAHEAD
from stock_platform.platform.instance import postgres_dir
from stock_platform.platform.resources import build_resources, gcp
from stock_platform.platform.serving import ServingDatabaseError, connect_url, database_url
from stock_platform.platform.settings import PlatformSettings, parse, platform_settings


def test_each_serving_table_follows_the_partitions_of_its_marts():
    graph = definitions().resolve_asset_graph()
    serving = [key for key in graph.get_all_asset_keys() if key.path[0] == "serving"]
    assert len(serving) == 3
    for key in serving:
        parents = graph.get(key).parent_keys
        assert parents, key
        for parent in parents:
            assert graph.get(parent).partitions_def == graph.get(key).partitions_def, (key, parent)


def test_the_stock_lookahead_is_the_marts_lookback():
    from stock_platform.defs.stock_prices.marts import LOOKBACK

    assert STOCK_LOOKAHEAD == LOOKBACK


class FakeConnector:
    """Records how the Cloud SQL Python Connector is built, asked and closed."""

    made: ClassVar[list["FakeConnector"]] = []

    def __init__(self, **options):
        self.options, self.calls, self.closed = options, [], False
        FakeConnector.made.append(self)

    def connect(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        return "connection"

    def close(self):
        self.closed = True


def test_cloud_sql_is_reached_with_iam_database_authentication_and_no_password(monkeypatch):
    from google.cloud.sql import connector

    monkeypatch.setattr(connector, "Connector", FakeConnector)
    monkeypatch.setattr(gcp, "iam_database_user", lambda: "stock-pipeline@proj.iam.gserviceaccount.com")
    resource = gcp.CloudSqlServingDatabaseResource(instance="proj:asia-northeast3:serving")
    with dg.build_resources({"serving_db": resource}) as resources:
        assert resources.serving_db.connect() == "connection"
    (made,) = FakeConnector.made
    assert made.options == {"ip_type": connector.IPTypes.PRIVATE, "enable_iam_auth": True, "refresh_strategy": "lazy"}
    assert made.calls == [(("proj:asia-northeast3:serving", "psycopg"),
                           {"user": "stock-pipeline@proj.iam.gserviceaccount.com", "db": "serving"})]
    assert made.closed


def test_gcp_picks_cloud_sql_when_its_instance_is_set():
    base = {"STOCK_PLATFORM_ENV": "gcp", "GCS_LAKE_URI": "gs://lake/x"}
    with_instance = parse(PlatformSettings, {**base, "SERVING_CLOUDSQL_INSTANCE": "p:r:i"})
    resource = build_resources(with_instance)["serving_db"]
    assert isinstance(resource, gcp.CloudSqlServingDatabaseResource) and resource.instance == "p:r:i"
    assert not isinstance(build_resources(parse(PlatformSettings, base))["serving_db"],
                          gcp.CloudSqlServingDatabaseResource)


def test_a_serving_database_url_is_used_as_it_is_and_starts_no_server(setenv, tmp_path):
    url = "postgresql://writer:topsecret@db.internal:6432/serving_prod"
    setenv(STOCK_PLATFORM_DATA_DIR=str(tmp_path), SERVING_DATABASE_URL=url)
    assert database_url() == url
    assert not postgres_dir(platform_settings()).exists()


@pytest.mark.parametrize("url", ["postgresql://u:topsecret@host:notaport/db", "host=h password=topsecret port="])
def test_a_malformed_url_is_reported_without_its_text(url):
    with pytest.raises(ServingDatabaseError) as error:
        connect_url(url)
    assert "topsecret" not in str(error.value) and error.value.__cause__ is None


def test_a_changed_mart_partition_requests_its_serving_partition_once():
    """Any partition, not only the latest (a backfill of the marts republishes its range); not
    before every mart of the table has the partition."""
    defs = definitions()
    serving = dg.AssetSelection.groups("serving")
    web_mart = dg.AssetKey(["web_analytics", "web_daily_traffic"])
    web_table = dg.AssetKey(["serving", "web_daily_traffic"])
    metrics = dg.AssetKey(["stock_analytics", "fct_daily_stock_metrics"])
    features = dg.AssetKey(["stock_analytics", "fct_stock_features"])
    stock_table = dg.AssetKey(["serving", "stock_daily_metrics"])
    with dg.instance_for_test() as instance:

        def materialized(key: dg.AssetKey, partition: str) -> None:
            instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key, partition=partition))

        tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=serving)
        assert tick.total_requested == 0
        materialized(web_mart, "2024-04-10")
        materialized(metrics, "2024-04-10")  # fct_stock_features not built yet
        tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=serving,
                                                 cursor=tick.cursor)
        assert tick.get_requested_partitions(web_table) == {"2024-04-10"}
        assert tick.get_requested_partitions(stock_table) == set()
        materialized(features, "2024-04-10")
        tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=serving,
                                                 cursor=tick.cursor)
        assert tick.get_requested_partitions(stock_table) == {"2024-04-10"}
        assert tick.get_requested_partitions(web_table) == set()  # handled on the tick before
