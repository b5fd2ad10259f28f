"""The code location: every domain's definitions (autoloaded from defs/), plus what the platform
adds to all of them: the environment's resources and executor, and the run-failure sensor."""

from pathlib import Path

import dagster as dg

from stock_platform.platform.notifications import notify_run_failure
from stock_platform.platform.resources import build_executor, build_resources
from stock_platform.platform.settings import platform_settings


@dg.definitions
def defs() -> dg.Definitions:
    settings = platform_settings()
    platform = dg.Definitions(
        sensors=[notify_run_failure],
        resources=build_resources(settings),
        executor=build_executor(settings),
    )
    return dg.Definitions.merge(dg.load_from_defs_folder(path_within_project=Path(__file__).parent), platform)
