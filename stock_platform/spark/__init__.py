"""Spark: the cleaning transform (pure DataFrame functions) and its Dataproc entry script."""

# Session settings the cleaning transform relies on, wherever Spark runs (in-process, on
# Kubernetes, on Dataproc).
SESSION_CONFIG: dict[str, str] = {
    # Timestamps are written as UTC instants; dates never shift with the host's zone.
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.showConsoleProgress": "false",
}
