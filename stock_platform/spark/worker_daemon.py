"""Spark's Python worker daemon, importing the pip-installed pyspark rather than Spark's archives.

Spark puts pyspark.zip, py4j's zip and its core jar first on the Python workers' path, so Python
imports pyspark from the zip, and every task's `importlib.invalidate_caches()` re-reads the
directory of each archive it has imported from: about 0.1 s per task on Python 3.11, 40 CPU-s of
a ten-year cleaning. Where pyspark is installed as a package (the local default), the archives
are copies of it: drop them from the path, then run Spark's own daemon. Selected by
`spark.python.daemon.module` (stock_platform.resources.local_spark_config).
"""

import importlib.machinery
import os
import sys


def drop_spark_archives() -> list[str]:
    """Remove the archives inside the installed pyspark package from sys.path and from the
    importer cache; return them. Nothing changes where pyspark exists only in an archive."""
    directories = [entry for entry in sys.path if os.path.isdir(entry or ".")]
    spec = importlib.machinery.PathFinder.find_spec("pyspark", directories)
    if spec is None or not spec.submodule_search_locations:
        return []
    package = os.path.join(list(spec.submodule_search_locations)[0], "")
    archives = [entry for entry in sys.path if entry.startswith(package) and os.path.isfile(entry)]
    sys.path[:] = [entry for entry in sys.path if entry not in archives]
    for key in [key for key in sys.path_importer_cache if key.startswith(tuple(archives))]:
        del sys.path_importer_cache[key]
    return archives


if __name__ == "__main__":
    drop_spark_archives()
    from pyspark import daemon  # reads the worker module from sys.argv, as under `-m pyspark.daemon`

    daemon.manager()
