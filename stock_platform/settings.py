"""Reads and validates the environment variables of DESIGN.md ("Configuration contract").

Invalid values fail at load time with a message naming the variable and what it accepts. Settings
only one environment needs (GCP_PROJECT, the API key, ...) are read through `require`, so a missing
one fails the run that needs it, not the loading of the code location.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

ENVIRONMENTS = ("local", "gcp")
SOURCES = ("synthetic", "data_go_kr")
# Where the Spark cleaning runs in gcp: in the step's process, on Dataproc, or with executors as pods.
SPARK_RUNNERS = ("local", "dataproc", "kubernetes")
DATA_GO_KR_V2_URL = (
    "https://apis.data.go.kr/1160100/GetStockSecuritiesInfoService_V2/getStockPriceInfo_V2"
)


class SettingsError(ValueError):
    """A missing or invalid environment variable."""


@dataclass(frozen=True)
class Settings:
    env: str
    data_dir: Path
    source: str
    partitions_start: str
    page_size: int
    max_rps: float
    base_url: str
    raw_dataset: str
    analytics_dataset: str
    synthetic_seed: int
    spark_runner: str
    environ: Mapping[str, str] = field(repr=False, compare=False, default_factory=dict)

    @property
    def lake_root(self) -> str:
        return str(self.data_dir / "lake")

    @property
    def warehouse_path(self) -> Path:
        return self.data_dir / "warehouse.duckdb"

    @property
    def dagster_home(self) -> Path:
        return self.data_dir / "dagster_home"

    def require(self, name: str, why: str) -> str:
        """The value of a variable a run needs; a clear error if it is not set."""
        return require_value(name, self.environ.get(name, ""), why)


def require_value(name: str, value: str | None, why: str) -> str:
    """`value` of variable `name`, or a SettingsError naming it. Resources call this when a run
    starts, so a missing variable fails that run, not the loading of the code location."""
    value = (value or "").strip()
    if not value:
        raise SettingsError(f"{name} is not set; it is required {why}")
    return value


def _choice(environ: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = environ.get(name, default).strip() or default
    if value not in allowed:
        raise SettingsError(
            f"{name}={value!r} is not valid; allowed values: {', '.join(allowed)}"
        )
    return value


def _number(environ: Mapping[str, str], name: str, default: str, kind: type, minimum: float):
    raw = environ.get(name, default).strip() or default
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a {kind.__name__}") from None
    if value < minimum:
        raise SettingsError(f"{name}={raw!r} must be at least {minimum}")
    return value


def _date(environ: Mapping[str, str], name: str, default: str) -> str:
    raw = environ.get(name, default).strip() or default
    try:
        dt.date.fromisoformat(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a date in YYYY-MM-DD form") from None
    return raw


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    environ = dict(os.environ if environ is None else environ)
    data_dir = Path(environ.get("STOCK_PLATFORM_DATA_DIR", "").strip() or REPO_ROOT / ".data")
    return Settings(
        env=_choice(environ, "STOCK_PLATFORM_ENV", ENVIRONMENTS, "local"),
        data_dir=data_dir.expanduser().resolve(),
        source=_choice(environ, "STOCK_SOURCE", SOURCES, "synthetic"),
        partitions_start=_date(environ, "STOCK_PARTITIONS_START", "2020-01-02"),
        page_size=_number(environ, "DATA_GO_KR_PAGE_SIZE", "1000", int, 1),
        max_rps=_number(environ, "DATA_GO_KR_MAX_RPS", "30", float, 0.1),
        base_url=environ.get("DATA_GO_KR_BASE_URL", "").strip() or DATA_GO_KR_V2_URL,
        raw_dataset=environ.get("BQ_RAW_DATASET", "").strip() or "stock_raw",
        analytics_dataset=environ.get("BQ_ANALYTICS_DATASET", "").strip() or "stock_analytics",
        synthetic_seed=_number(environ, "STOCK_SYNTHETIC_SEED", "7", int, 0),
        spark_runner=_choice(environ, "SPARK_RUNNER", SPARK_RUNNERS, "local"),
        environ=environ,
    )
