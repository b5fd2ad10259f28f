"""Failpoints: named places where a test can freeze a run, so it can SIGKILL it exactly there.

Why: the crash-recovery tests (tests/integration/test_crash_recovery.py) kill runs at the moments a crash does
the most damage (page files written but the day not yet published, the warehouse transaction
open, ...). A timer cannot hit such a moment on a busy machine; a failpoint hits it every time.

`failpoint(name)` does nothing unless the environment variable STOCK_PLATFORM_FAILPOINT equals
`name` (unset in production: one dict lookup). Then it writes the file named by
STOCK_PLATFORM_FAILPOINT_MARKER (so the test knows the run is there) and sleeps until the test
kills the run. Names carry what makes them unique, e.g. the day:
`raw_stock_prices.before_publish:2024-04-09`.
"""

import os
import time

from stock_platform.platform.settings import platform_settings

ENV = "STOCK_PLATFORM_FAILPOINT"
# A forgotten variable must not hang a run forever: give up after this long.
MAX_WAIT_S = 15 * 60


def failpoint(name: str) -> None:
    settings = platform_settings()
    if settings.failpoint != name:
        return
    marker = settings.failpoint_marker
    if marker:
        tmp = f"{marker}.tmp"
        with open(tmp, "w") as handle:
            handle.write(f"{name} pid={os.getpid()}\n")
        os.replace(tmp, marker)  # the test sees the whole marker or none
    time.sleep(MAX_WAIT_S)
    raise RuntimeError(f"failpoint {name!r} was not killed within {MAX_WAIT_S}s ({ENV} is set)")
