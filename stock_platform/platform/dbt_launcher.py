"""`stock-platform-dbt`: the dbt executable dagster-dbt runs (DbtCliResource's `dbt_executable`).

It is dbt, through dbt's own entry point (what the `dbt` script runs), with one difference:
`stock-platform-dbt --version` answers from the installed dbt-core's metadata. dagster-dbt runs
`<dbt_executable> --version` before every invocation (to tell dbt Core from dbt Fusion), and dbt
spends 4-5 s of CPU importing itself to answer: measured on this machine, a one-year run's dbt
step paid it every time.
"""

from __future__ import annotations

import importlib.metadata
import sys


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        # The layout of dbt's own answer, whose first x.y.z dagster-dbt reads.
        print(f"Core:\n  - installed: {importlib.metadata.version('dbt-core')}")
        return
    from dbt.cli.main import cli

    sys.exit(cli())
