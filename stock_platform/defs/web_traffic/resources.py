"""Where a day's access log files come from (WEB_LOGS_SOURCE): the synthetic site, or the files
delivered to WEB_LOGS_URI/<YYYY-MM-DD>/*.log[.gz] (a local folder or gs://)."""

from __future__ import annotations

import datetime as dt
import posixpath

import dagster as dg
import fsspec

from stock_platform.defs.web_traffic.settings import web_settings
from stock_platform.platform.settings import require_value

LOG_SUFFIXES = (".log", ".log.gz")


class WebLogSourceResource(dg.ConfigurableResource):
    """A day's log files by name; {} when the day has not been delivered (yet)."""

    def day_files(self, day: dt.date) -> dict[str, bytes]:
        raise NotImplementedError

    def describe(self, day: dt.date) -> str:
        """Where the day's files are expected, for messages."""
        raise NotImplementedError


class SyntheticSiteResource(WebLogSourceResource):
    """The embedded synthetic site (deterministic for a seed and day)."""

    seed: int
    requests_per_day: int
    timezone: str
    hosts: list[str]

    def day_files(self, day: dt.date) -> dict[str, bytes]:
        from stock_platform.defs.web_traffic.sources.synthetic_site import SyntheticSite

        return SyntheticSite(self.seed, self.requests_per_day, self.timezone, self.hosts).day_files(day)

    def describe(self, day: dt.date) -> str:
        return f"the synthetic site ({day})"


class LogFilesResource(WebLogSourceResource):
    """Files delivered by the web servers: `<uri>/<YYYY-MM-DD>/*.log` or `*.log.gz`."""

    uri: str

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        require_value("WEB_LOGS_URI", self.uri, "when WEB_LOGS_SOURCE=files")

    def folder(self, day: dt.date) -> str:
        return f"{self.uri.rstrip('/')}/{day.isoformat()}"

    def day_files(self, day: dt.date) -> dict[str, bytes]:
        fs, root = fsspec.core.url_to_fs(self.folder(day))
        try:
            entries = fs.ls(root, detail=True)
        except FileNotFoundError:
            return {}
        names = sorted(
            posixpath.basename(entry["name"]) for entry in entries
            if entry["type"] == "file" and entry["name"].endswith(LOG_SUFFIXES)
        )
        return {name: fs.cat_file(f"{root}/{name}") for name in names}

    def describe(self, day: dt.date) -> str:
        return f"{self.folder(day)}/*.log[.gz]"


def build_web_log_source() -> WebLogSourceResource:
    settings = web_settings()
    if settings.source == "files":
        return LogFilesResource(uri=settings.logs_uri)
    return SyntheticSiteResource(
        seed=settings.synthetic_seed,
        requests_per_day=settings.synthetic_requests_per_day,
        timezone=settings.timezone,
        hosts=settings.hosts,
    )


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(resources={"web_log_source": build_web_log_source()})
