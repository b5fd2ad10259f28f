"""The stock prices domain: the data.go.kr stock price API (or the synthetic market) to the lake,
Spark cleaning, `stock_raw.daily_prices` in the warehouse, and the dbt marts in `stock_analytics`.

Partitions are KRX trading days (weekday keys, Asia/Seoul). Modules:

- settings.py      the domain's environment variables
- schema.py        the lake datasets and the `stock_raw.daily_prices` contract
- resources.py     where raw pages come from (STOCK_SOURCE)
- ingestion.py     raw_stock_prices        (API pages -> lake raw/)
- cleaning.py      clean_stock_prices      (Spark: raw/ -> clean/ + rejected/)
- warehouse.py     stock_raw/daily_prices  (clean/ -> warehouse, partitions replaced)
- marts.py         stock_analytics/*       (dbt models under dbt_project/models/stock_prices)
- automation.py    the daily job and schedule
- sources/         the API client, the wire format and the synthetic market (no Dagster)
- spark/           the cleaning transform (pure Spark, also runs on Dataproc)
"""
