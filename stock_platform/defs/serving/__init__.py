"""The serving domain: production data jobs that publish the marts applications and models read
at low latency to PostgreSQL (schema `serving`).

- tables.py       what each serving table holds and which marts it reads
- publishing.py   the serving/<table> assets, partitioned like their marts
The versioned DDL of schema `serving` (Alembic) is in stock_platform/migrations/serving/, applied
by every publishing step.
"""
