"""`stock-platform-dbt`, the dbt executable dagster-dbt runs: dbt itself, with a `--version` that
answers without importing dbt."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from stock_platform.platform.resources import dbt_executable


def _first_version(text: str) -> str:
    # What dagster-dbt reads from `<dbt_executable> --version`: the first x.y.z.
    match = re.search(r"(\d+\.\d+\.\d+)", text)
    assert match, text
    return match.group(1)


def test_version_names_the_installed_dbt_core_as_dbt_itself_does():
    ours = subprocess.run([dbt_executable(), "--version"], capture_output=True, text=True, check=True)
    dbt = subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), "--version"], capture_output=True, text=True,
        check=True, env={**os.environ, "DBT_VERSION_CHECK": "false"},
    )
    assert _first_version(ours.stdout) == _first_version(dbt.stdout)


def test_every_other_command_is_dbts_own_with_its_exit_code():
    usage = subprocess.run([dbt_executable(), "--help"], capture_output=True, text=True)
    assert usage.returncode == 0
    assert "build" in usage.stdout and "Usage:" in usage.stdout
    unknown = subprocess.run([dbt_executable(), "no-such-command"], capture_output=True, text=True)
    assert unknown.returncode == 2  # click's usage error, as `dbt no-such-command` exits
    assert "No such command" in unknown.stderr
