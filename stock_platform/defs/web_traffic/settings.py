"""The web traffic domain's environment variables (the configuration contract)."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from pydantic import Field, SecretStr, field_validator

from stock_platform.platform.settings import DomainSettings, SettingsError, load, platform_settings

# The synthetic site's own hosts: its internal referrers.
SYNTHETIC_SITE_HOSTS = "www.example-shop.kr,example-shop.kr,m.example-shop.kr"

# Locally, visitor ids are keyed with this published development salt (pseudonyms of synthetic
# or test traffic); in gcp WEB_IP_SALT is required and comes from a secret.
DEVELOPMENT_SALT = "stock-platform-development-salt"


class WebSettings(DomainSettings):
    source: str = Field("synthetic", alias="WEB_LOGS_SOURCE", pattern="^(synthetic|files)$")
    # For `files`: a local folder or gs://bucket/prefix holding <YYYY-MM-DD>/*.log[.gz].
    logs_uri: str = Field("", alias="WEB_LOGS_URI")
    timezone: str = Field("Asia/Seoul", alias="WEB_LOGS_TIMEZONE")
    partitions_start: dt.date = Field(dt.date(2024, 1, 1), alias="WEB_PARTITIONS_START")
    synthetic_requests_per_day: int = Field(100_000, ge=1, alias="WEB_SYNTHETIC_REQUESTS_PER_DAY")
    synthetic_seed: int = Field(11, ge=0, alias="WEB_SYNTHETIC_SEED")
    # Read where the cleaning runs (a Kubernetes Secret or Secret Manager in gcp): never in
    # run config, job arguments, Spark configuration or metadata.
    ip_salt: SecretStr | None = Field(None, alias="WEB_IP_SALT")
    # gcp alternative for Spark on Dataproc: a Secret Manager secret version
    # (projects/P/secrets/S/versions/latest) the Spark driver reads the salt from.
    ip_salt_secret: str = Field("", alias="WEB_IP_SALT_SECRET")
    site_hosts: str = Field(SYNTHETIC_SITE_HOSTS, alias="WEB_SITE_HOSTS")
    raw_retention_days: int = Field(90, ge=1, alias="WEB_RAW_RETENTION_DAYS")
    raw_dataset: str = Field("web_raw", alias="BQ_WEB_RAW_DATASET")
    analytics_dataset: str = Field("web_analytics", alias="BQ_WEB_ANALYTICS_DATASET")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"not an IANA time zone such as Asia/Seoul: {value!r}") from None
        return value

    @property
    def hosts(self) -> list[str]:
        return [host.strip().lower() for host in self.site_hosts.split(",") if host.strip()]


def web_settings() -> WebSettings:
    return load(WebSettings)


def lake_retention() -> dict[str, int]:
    """Days the lake keeps each of this domain's datasets that hold full client IPs (the raw log
    files, the rejected lines); the weekly maintenance job (defs/operations) deletes older days."""
    from stock_platform.defs.web_traffic.schema import RAW, REJECTED  # schema imports this module

    days = web_settings().raw_retention_days
    return {RAW: days, REJECTED: days}


def ip_salt() -> bytes:
    """The key of visitor ids: WEB_IP_SALT; locally the development salt when it is unset."""
    settings = web_settings()
    if settings.ip_salt is not None:
        return settings.ip_salt.get_secret_value().encode()
    if platform_settings().env == "local":
        return DEVELOPMENT_SALT.encode()
    raise SettingsError(
        "WEB_IP_SALT is not set; it is required in gcp (from a Kubernetes Secret, or "
        "WEB_IP_SALT_SECRET naming a Secret Manager secret for Spark on Dataproc)"
    )
