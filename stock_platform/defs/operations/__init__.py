"""The platform operating itself, across domains: the weekly maintenance job (retention of runs,
logs and lake data) and the platform-health asset (disk use, daemon heartbeat)."""
