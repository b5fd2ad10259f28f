"""The domain-neutral platform under every domain: settings, lake, Spark, warehouse loads, dbt,
calendars, serving database and the resources per environment."""
