"""The web traffic domain: a web server's daily access logs (or the synthetic site) to the lake,
Spark parsing, `web_raw.access_logs` in the warehouse, and the dbt star schema in `web_analytics`.

Partitions are calendar days in WEB_LOGS_TIMEZONE. Modules:

- settings.py      the domain's environment variables
- schema.py        the lake datasets and the `web_raw.access_logs` contract
- sources/         the log formats and their parser, the synthetic site (no Dagster, no Spark)
- spark/           the cleaning job (runs in-process or on a cluster)
"""
