"""Settings: the environment variables of the configuration contract, typed and validated.

This is the only module that reads the environment. `PlatformSettings` holds what the platform
needs; each domain declares its own model on `DomainSettings` in its folder. Models are read once
per process (`load`), and an invalid value fails with a message naming the variable and what it
accepts. Settings only one environment needs (GCP_PROJECT, the API key, ...) are optional here and
checked by `require_value` when a run needs them, so a missing one fails that run, not the loading
of the code location.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Literal, TypeVar

import platformdirs
from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]


class SettingsError(ValueError):
    """A missing or invalid environment variable."""


class DomainSettings(BaseSettings):
    """Base of every settings model: variables by their exact names, an empty value counts as
    unset, unknown variables are ignored."""

    model_config = SettingsConfigDict(
        env_ignore_empty=True, populate_by_name=False, extra="ignore", frozen=True
    )


class PlatformSettings(DomainSettings):
    env: Literal["local", "gcp"] = Field("local", alias="STOCK_PLATFORM_ENV")
    data_dir: Path = Field(REPO_ROOT / ".data", alias="STOCK_PLATFORM_DATA_DIR")
    # What is derived from installed packages alone (the XKRX sessions) and holds for every data
    # dir: computed once per machine and day, not once per data dir.
    cache_dir: Path = Field(
        default_factory=lambda: Path(platformdirs.user_cache_dir("stock_platform")),
        alias="STOCK_PLATFORM_CACHE_DIR",
    )
    # gcp: where the Spark steps run (in the step's process, executors as pods, or Dataproc).
    spark_runner: Literal["local", "dataproc", "kubernetes"] = Field("local", alias="SPARK_RUNNER")
    gcp_project: str = Field("", alias="GCP_PROJECT")
    bq_location: str = Field("", alias="BQ_LOCATION")
    gcs_lake_uri: str = Field("", alias="GCS_LAKE_URI")
    dataproc_region: str = Field("", alias="DATAPROC_REGION")
    dataproc_code_uri: str = Field("", alias="DATAPROC_CODE_URI")
    dataproc_service_account: str = Field("", alias="DATAPROC_SERVICE_ACCOUNT")
    dataproc_subnetwork: str = Field("", alias="DATAPROC_SUBNETWORK")
    spark_k8s_image: str = Field("", alias="SPARK_K8S_IMAGE")
    spark_k8s_service_account: str = Field("stock-platform-runs", alias="SPARK_K8S_SERVICE_ACCOUNT")
    spark_executor_instances: int = Field(4, ge=1, alias="SPARK_EXECUTOR_INSTANCES")
    spark_executor_cores: int = Field(2, ge=1, alias="SPARK_EXECUTOR_CORES")
    spark_executor_memory: str = Field("4g", alias="SPARK_EXECUTOR_MEMORY")
    spark_executor_memory_overhead: str = Field("2g", alias="SPARK_EXECUTOR_MEMORY_OVERHEAD")
    spark_driver_memory: str = Field("6g", alias="SPARK_DRIVER_MEMORY")
    # Set on the Spark step's pod through the downward API (platform/k8s.py).
    pod_ip: str = Field("", alias="POD_IP")
    pod_name: str = Field("", alias="POD_NAME")
    pod_namespace: str = Field("", alias="POD_NAMESPACE")
    slack_webhook_url: SecretStr | None = Field(None, alias="SLACK_WEBHOOK_URL")
    # Retention (the weekly maintenance job): finished runs with their event and step logs, and
    # the lake's rejected/ partitions (a domain may keep its own datasets shorter).
    run_retention_days: int = Field(90, ge=1, alias="RUN_RETENTION_DAYS")
    rejected_retention_days: int = Field(365, ge=1, alias="LAKE_REJECTED_RETENTION_DAYS")
    # Platform health: warn when the data dir's disk is fuller than this fraction.
    disk_warn_fraction: float = Field(0.9, gt=0, le=1, alias="DISK_WARN_FRACTION")
    # The serving database: any PostgreSQL URL (it may hold a password); unset locally, the
    # embedded server of the data dir.
    serving_database_url: SecretStr | None = Field(None, alias="SERVING_DATABASE_URL")
    # gcp: project:region:instance of Cloud SQL for PostgreSQL, with IAM database authentication.
    serving_cloudsql_instance: str = Field("", alias="SERVING_CLOUDSQL_INSTANCE")
    java_home: str = Field("", alias="JAVA_HOME")
    # The local instance's database, set by the CLI for the Dagster processes it launches.
    instance_db_url: str = Field("", alias="STOCK_PLATFORM_INSTANCE_DB_URL")
    # Test hooks (platform/failpoints.py): unset in production.
    failpoint: str = Field("", alias="STOCK_PLATFORM_FAILPOINT")
    failpoint_marker: str = Field("", alias="STOCK_PLATFORM_FAILPOINT_MARKER")

    @property
    def data_path(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def lake_root(self) -> str:
        return str(self.data_path / "lake")

    @property
    def warehouse_path(self) -> Path:
        return self.data_path / "warehouse.duckdb"

    @property
    def dagster_home(self) -> Path:
        return self.data_path / "dagster_home"


S = TypeVar("S", bound=DomainSettings)


def parse(model: type[S], environ: dict[str, str] | None = None) -> S:
    """`model` from `environ` (default: the process environment), or a SettingsError naming the
    variable and what it accepts."""
    try:
        if environ is None:
            return model()
        return model.model_validate(
            {key: value for key, value in environ.items() if value.strip()}
        )
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"])
            value = error.get("input")
            problems.append(f"{name}={value!r}: {error['msg']}")
        raise SettingsError("invalid setting: " + "; ".join(problems)) from None


@functools.cache
def load(model: type[S]) -> S:
    """`model` read from the process environment, once per process."""
    return parse(model)


def platform_settings() -> PlatformSettings:
    return load(PlatformSettings)


def require_value(name: str, value: str | None, why: str) -> str:
    """`value` of variable `name`, or a SettingsError naming it. Resources call this when a run
    starts, so a missing variable fails that run, not the loading of the code location."""
    value = (value or "").strip()
    if not value:
        raise SettingsError(f"{name} is not set; it is required {why}")
    return value


def child_environment(extra: dict[str, str]) -> dict[str, str]:
    """The environment for a process the CLI launches: this one's, plus `extra`, with this
    interpreter's bin folder (the venv's dagster, dbt and python) first on PATH."""
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, **extra, "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")])}
