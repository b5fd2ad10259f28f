"""The serving domain: production data jobs that publish the marts applications and models read
at low latency to PostgreSQL (schema `serving`).

- tables.py       what each serving table holds and which marts it reads
- publishing.py   the serving/<table> assets, partitioned like their marts
- automation.py   the sensor that publishes a partition after its marts change
- summary.py      what `make run` prints: what each serving table holds for the range

The versioned DDL of schema `serving` (Alembic) is in stock_platform/migrations/serving/, applied
by every publishing step; where the database is and how a window is published atomically is the
platform's (stock_platform/platform/serving.py).
"""
