"""The stock prices domain's environment variables (the configuration contract)."""

from __future__ import annotations

import datetime as dt

from pydantic import Field, SecretStr

from stock_platform.platform.settings import DomainSettings, load

DATA_GO_KR_V2_URL = (
    "https://apis.data.go.kr/1160100/GetStockSecuritiesInfoService_V2/getStockPriceInfo_V2"
)


class StockSettings(DomainSettings):
    source: str = Field("synthetic", alias="STOCK_SOURCE", pattern="^(synthetic|data_go_kr)$")
    partitions_start: dt.date = Field(dt.date(2020, 1, 2), alias="STOCK_PARTITIONS_START")
    # Read when a data.go.kr run starts (dg.EnvVar): never stored in run config or metadata.
    service_key: SecretStr | None = Field(None, alias="DATA_GO_KR_SERVICE_KEY")
    base_url: str = Field(DATA_GO_KR_V2_URL, alias="DATA_GO_KR_BASE_URL")
    max_rps: float = Field(30.0, ge=0.1, alias="DATA_GO_KR_MAX_RPS")
    page_size: int = Field(1000, ge=1, alias="DATA_GO_KR_PAGE_SIZE")
    raw_dataset: str = Field("stock_raw", alias="BQ_RAW_DATASET")
    analytics_dataset: str = Field("stock_analytics", alias="BQ_ANALYTICS_DATASET")
    synthetic_seed: int = Field(7, ge=0, alias="STOCK_SYNTHETIC_SEED")


def stock_settings() -> StockSettings:
    return load(StockSettings)
