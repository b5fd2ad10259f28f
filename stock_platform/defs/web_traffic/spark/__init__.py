"""The web cleaning job (pure Spark; also runs on a cluster)."""
