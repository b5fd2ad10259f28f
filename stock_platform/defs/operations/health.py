"""The platform watching itself: `platform_health` records every 15 minutes the disk use of the
data dir and of the instance's storage, and the daemon's last heartbeat; its check warns before
the disk fills (DISK_WARN_FRACTION) or when the daemon has gone quiet. Failed runs notify through
the run-failure sensor (platform/notifications.py)."""

import datetime as dt
import shutil
from pathlib import Path
from typing import cast

import dagster as dg

from stock_platform.platform.k8s import k8s_op_tags
from stock_platform.platform.settings import platform_settings

# The daemon writes a heartbeat every 30 s; Dagster's own liveness check allows 300 s.
HEARTBEAT_TOLERANCE = dt.timedelta(minutes=5)
EVERY_15_MINUTES = dg.AutomationCondition.cron_tick_passed("*/15 * * * *")


def folder_bytes(path: Path) -> int:
    """Bytes of the files under `path` (0 if it does not exist)."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def last_heartbeat(instance: dg.DagsterInstance) -> dt.datetime | None:
    beats = [beat.timestamp for beat in instance.get_daemon_heartbeats().values()]
    return dt.datetime.fromtimestamp(max(beats), dt.UTC) if beats else None


def health_figures(instance: dg.DagsterInstance, data_dir: Path, now: dt.datetime) -> dict[str, float | int | str]:
    disk = shutil.disk_usage(data_dir if data_dir.exists() else data_dir.parent)
    beat = last_heartbeat(instance)
    return {
        "data_dir_bytes": folder_bytes(data_dir),
        # Locally the instance is the embedded PostgreSQL of the data dir and DAGSTER_HOME.
        "instance_bytes": folder_bytes(data_dir / "postgres") + folder_bytes(data_dir / "dagster_home"),
        "disk_used_fraction": round((disk.total - disk.free) / disk.total, 4),
        "disk_free_bytes": disk.free,
        "daemon_heartbeat_age_s": round((now - beat).total_seconds()) if beat else -1,
    }


def problems(figures: dict[str, float | int | str], warn_fraction: float) -> list[str]:
    found = []
    if cast(float, figures["disk_used_fraction"]) >= warn_fraction:
        found.append(f"the data dir's disk is {figures['disk_used_fraction']:.0%} full "
                     f"(warning from {warn_fraction:.0%})")
    age = cast(int, figures["daemon_heartbeat_age_s"])
    if age < 0 or age > HEARTBEAT_TOLERANCE.total_seconds():
        found.append("the daemon has sent no heartbeat" if age < 0
                     else f"the daemon's last heartbeat is {age} s old")
    return found


@dg.asset(
    group_name="operations",
    kinds={"python"},
    automation_condition=EVERY_15_MINUTES,
    op_tags=k8s_op_tags(cpu="100m", cpu_limit="500m", memory="512Mi"),
    description="Disk use of the data dir and the instance, and the daemon's last heartbeat.",
    check_specs=[dg.AssetCheckSpec("disk_and_daemon_ok", asset="platform_health",
                                   description="Warns before the disk fills or when the daemon is stale.")],
)
def platform_health(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    settings = platform_settings()
    figures = health_figures(context.instance, settings.data_path, dt.datetime.now(dt.UTC))
    found = problems(figures, settings.disk_warn_fraction)
    return dg.MaterializeResult(
        metadata={**figures, "disk_free": dg.MetadataValue.text(f"{int(figures['disk_free_bytes']) / 2**30:.1f} GiB")},
        check_results=[dg.AssetCheckResult(
            check_name="disk_and_daemon_ok", passed=not found, severity=dg.AssetCheckSeverity.WARN,
            description="; ".join(found) or "Disk and daemon are fine",
        )],
    )


automation_sensor = dg.AutomationConditionSensorDefinition(
    "operations_automation",
    target=dg.AssetSelection.groups("operations"),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Materializes platform_health every 15 minutes.",
)
