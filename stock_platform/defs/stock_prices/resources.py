"""Where raw stock pages come from (STOCK_SOURCE): the synthetic market or data.go.kr.

The domain's own resource, `stock_source`; the platform's resources (lake, Spark, warehouse, dbt)
come from stock_platform.platform.resources.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import dagster as dg

from stock_platform.defs.stock_prices.settings import stock_settings
from stock_platform.defs.stock_prices.sources import FetchedPage


class StockSourceResource(dg.ConfigurableResource):
    """Where raw pages come from."""

    def fetch_chunks(self, days: list[dt.date], size: int) -> Iterator[dict[dt.date, list[FetchedPage]]]:
        """All pages of each day, `size` days at a time: a long backfill never holds all its
        pages at once. A day not published yet has pages with zero rows."""
        raise NotImplementedError


class SyntheticSourceResource(StockSourceResource):
    """The embedded synthetic market (deterministic for a seed), served as API pages."""

    seed: int
    page_size: int

    def fetch_chunks(self, days: list[dt.date], size: int) -> Iterator[dict[dt.date, list[FetchedPage]]]:
        from stock_platform.defs.stock_prices.sources.synthetic_source import SyntheticSource

        return SyntheticSource(self.seed, self.page_size).fetch_chunks(days, size)


class DataGoKrSourceResource(StockSourceResource):
    """The FSC stock price API on data.go.kr (sources/data_go_kr.py)."""

    service_key: str  # set from dg.EnvVar, so the UI and run config show the variable, not the key
    base_url: str
    max_rps: float
    page_size: int
    # The client's tuning (tests shorten it); unset fields keep DataGoKrConfig's defaults, the one
    # place they are defined.
    max_in_flight: int | None = None
    max_attempts: int | None = None
    backoff_s: float | None = None
    max_backoff_s: float | None = None
    timeout_s: float | None = None

    def fetch_chunks(self, days: list[dt.date], size: int) -> Iterator[dict[dt.date, list[FetchedPage]]]:
        for first in range(0, len(days), size):
            yield self.fetch_days(days[first : first + size])

    def fetch_days(self, days: list[dt.date]) -> dict[dt.date, list[FetchedPage]]:
        from stock_platform.defs.stock_prices.sources.data_go_kr import (
            DataGoKrConfig,
            DataGoKrSource,
            PermanentError,
            QuotaExhaustedError,
        )

        try:
            tuning = {
                name: getattr(self, name)
                for name in ("max_in_flight", "max_attempts", "backoff_s", "max_backoff_s", "timeout_s")
                if getattr(self, name) is not None
            }
            config = DataGoKrConfig(
                service_key=self.service_key,
                base_url=self.base_url,
                max_rps=self.max_rps,
                page_size=self.page_size,
                **tuning,
            )
            return DataGoKrSource(config, log=dg.get_dagster_logger()).fetch_days(days)
        except (PermanentError, QuotaExhaustedError) as exc:
            # Retrying the step cannot help today; transient errors keep the asset's retry policy.
            raise dg.Failure(description=str(exc), allow_retries=False) from None


def build_stock_source() -> StockSourceResource:
    """STOCK_SOURCE: the synthetic market or data.go.kr (the key is read when a run starts)."""
    settings = stock_settings()
    if settings.source == "data_go_kr":
        return DataGoKrSourceResource(
            service_key=dg.EnvVar("DATA_GO_KR_SERVICE_KEY"),
            base_url=settings.base_url,
            max_rps=settings.max_rps,
            page_size=settings.page_size,
        )
    return SyntheticSourceResource(seed=settings.synthetic_seed, page_size=settings.page_size)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(resources={"stock_source": build_stock_source()})
