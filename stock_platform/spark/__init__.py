"""Spark: the cleaning transform (pure DataFrame functions) and its Dataproc entry script."""

# Session settings the cleaning transform relies on, wherever Spark runs (in-process, on
# Kubernetes, on Dataproc).
SESSION_CONFIG: dict[str, str] = {
    # Timestamps are written as UTC instants; dates never shift with the host's zone.
    "spark.sql.session.timeZone": "UTC",
    # Off: the cleaning's partitions are fixed by day, and with adaptive execution the cached
    # checked rows lose their (dt, ticker) order, so each write sorted them again.
    "spark.sql.adaptive.enabled": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.showConsoleProgress": "false",
}
