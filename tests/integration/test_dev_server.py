"""`make dev` as a local service: it says where it serves and exits non-zero when the webserver or
the daemon dies (`dagster dev` alone exits 0 then). That Ctrl-C stops it with status 0 is checked
by every `make dev` the UI tests start (fixtures/dagster_dev.py)."""

import contextlib
import os
import signal
import subprocess
import sys

import psutil
from fixtures.dagster_dev import free_port, wait_until_ready
from fixtures.platform import cli_env, stop_platform

from stock_platform.platform.settings import REPO_ROOT


def start_dev(data_dir, log):
    port = free_port()
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "stock_platform.cli", "dev", "--port", str(port)],
            cwd=REPO_ROOT, env=cli_env(data_dir), stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    wait_until_ready(port, process, log)
    return process, port


def descendant(process: subprocess.Popen, name: str) -> psutil.Process:
    [found] = [p for p in psutil.Process(process.pid).children(recursive=True)
               if name in " ".join(p.cmdline())]
    return found


def test_make_dev_exits_non_zero_when_the_daemon_dies(tmp_path):
    data_dir, log = tmp_path / "data", tmp_path / "dev.log"
    process, port = start_dev(data_dir, log)
    try:
        assert f"Serving the Dagster UI on http://127.0.0.1:{port}" in log.read_text()
        descendant(process, "-m dagster._daemon run").kill()  # SIGKILL: the daemon dies
        assert process.wait(timeout=120) != 0
        assert "the webserver or the daemon died" in log.read_text()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        stop_platform(data_dir)
