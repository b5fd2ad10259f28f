"""The platform benchmark (`make bench`): end-to-end runs on the embedded defaults, as `make run`
starts them, each in a fresh data dir.

    (a) a one-year single-run backfill            wall, rows/s, peak memory, time per step
    (b) one run per partition (Dagster's default)  5 runs, extrapolated to (a)'s partitions
    (c) a daily run on 1 month vs 10 years of history
    (d) API ingestion against the rate-limited fake server, against its bound
    (e) a ten-year single-run backfill              wall, peak memory, time per step
    (w) web_traffic: a 30-day single-run backfill   wall, peak memory, time per step, and its Spark
        cleaning step against DuckDB parsing the same raw files with a regular expression (web.py)
    (s) serving: p50/p99 of stock_latest lookups and one-year histories in PostgreSQL (serving.py)

Writes bench/results/benchmark.json, REPORT.md and wall_time.png; prints the table.

    .venv/bin/python bench/pipeline.py [--repeat 3] [--quick] [--only abcde,web,serving]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
# Partitions start in 2020 by default; (e) needs ten years before 2025.
os.environ["STOCK_PARTITIONS_START"] = "2015-01-02"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

YEAR = ("2024-01-02", "2024-12-30")
TEN_YEARS = ("2015-01-02", "2024-12-30")
MONTH = ("2024-12-02", "2024-12-30")
DAILY = "2025-01-02"  # the first session after both histories
PER_PARTITION = ["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05", "2024-01-08"]
WEB = ("2024-03-01", "2024-03-30")  # (w), at the default traffic (WEB_SYNTHETIC_REQUESTS_PER_DAY)
WEB_QUICK = ("2024-03-01", "2024-03-03")
TARGETS = {"a": "<= 90 s", "b_over_a": ">= 60x", "c": "<= 1.2", "d": "<= 1.2",
           "e": "<= 360 s, peak < 8 GiB", "w": "<= 4x", "s_latest": "p99 <= 5 ms",
           "s_history": "p99 <= 20 ms"}  # fmt: skip
STEPS = {
    "raw_stock_prices": "ingest",
    "clean_stock_prices": "spark",
    "stock_raw__daily_prices": "load",
    "stock_analytics_dbt": "dbt",
    "built_after_its_lookback_stock_raw__daily_prices": "lookback check",
}
WEB_STEPS = {
    "raw_web_access_logs": "ingest",
    "clean_web_access_logs": "spark",
    "web_raw__access_logs": "load",
    "web_analytics_dbt": "dbt",
}
# A domain's steps (event log step key -> phase) and the warehouse table whose rows a run reports.
DOMAINS = {
    "stock_prices": (STEPS, "stock_raw.daily_prices"),
    "web_traffic": (WEB_STEPS, "web_raw.access_logs"),
}


class PeakMemory(threading.Thread):
    """Peak of the summed PSS of a process and all its descendants (Spark's JVM, dbt, ...).

    PSS, not RSS: a page shared by several processes counts once in the sum. Summed RSS counted
    Spark's JVM twice whenever it forked a `chmod` (Hadoop's local file system does, per output
    folder): the child shares the JVM's 4.5 GiB for a moment."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.root, self.peak, self.done = psutil.Process(pid), 0, threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.1):
            try:
                processes = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            total = 0
            for process in processes:
                # gone, or (unlike RSS) its smaps not readable
                with contextlib.suppress(psutil.Error):
                    total += process.memory_full_info().pss
            self.peak = max(self.peak, total)


def settings_for(data_dir: Path):
    from stock_platform.platform.settings import PlatformSettings, parse

    return parse(PlatformSettings, {"STOCK_PLATFORM_DATA_DIR": str(data_dir)})


def instance_env(data_dir: Path) -> dict[str, str]:
    """What the CLI gives the Dagster processes it launches, for `data_dir`."""
    from stock_platform.platform.instance import prepare_instance
    from stock_platform.platform.settings import child_environment

    return child_environment(prepare_instance(settings_for(data_dir)))


def stop_server(data_dir: Path) -> None:
    """The embedded PostgreSQL of a data dir outlives its runs (a local service): stop it."""
    from stock_platform.platform.instance import stop_postgres

    if data_dir.exists():
        stop_postgres(settings_for(data_dir))


def run_platform(
    data_dir: Path, first: str, last: str, partition_only: bool = False, domain: str = "stock_prices"
) -> dict:
    """One `make run DOMAIN=<domain>` (or, for (b), one single-partition
    `dagster asset materialize` of the stock domain)."""
    steps, table = DOMAINS[domain]
    env = {**os.environ, "STOCK_PLATFORM_DATA_DIR": str(data_dir)}
    if partition_only:
        env = instance_env(data_dir)
        command = [
            sys.executable,
            "-m",
            "dagster",
            "asset",
            "materialize",
            "-m",
            "stock_platform.definitions",
            "--select",
            "group:stock_prices",
            "--partition",
            first,
        ]
    else:
        command = [
            sys.executable,
            "-m",
            "stock_platform.cli",
            "run",
            "--domain",
            domain,
            "--start",
            first,
            "--end",
            last,
        ]
    log = data_dir / f"run-{first}-{last}.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with open(log, "ab") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        memory = PeakMemory(process.pid)
        memory.start()
        code = process.wait()
    wall = time.time() - started
    memory.done.set()
    memory.join()
    if code != 0:
        raise SystemExit(f"{' '.join(command)} failed (exit {code}); see {log}")
    return {
        "range": [first, last],
        "wall_s": round(wall, 2),
        "peak_gib": round(memory.peak / 2**30, 2),
        "steps": step_breakdown(data_dir, started, started + wall, steps),
        "rows": warehouse_rows(data_dir, table),
    }


def latest_run_events(data_dir: Path) -> list:
    """The Dagster events (EventLogEntry) of the latest run of the data dir's instance."""
    import dagster as dg

    # The instance's storage URL comes from the environment its processes get.
    saved = dict(os.environ)
    os.environ.update(instance_env(data_dir))
    try:
        instance = dg.DagsterInstance.from_config(str(data_dir / "dagster_home"))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    with instance:
        run = instance.get_runs(limit=1)[0]
        return [record for record in instance.all_logs(run.run_id) if record.is_dagster_event]


def step_breakdown(data_dir: Path, launched: float, ended: float, steps: dict[str, str] = STEPS) -> dict[str, float]:
    """Seconds per phase of the latest run, from its Dagster event log."""
    events = {}
    for record in latest_run_events(data_dir):
        key = (record.dagster_event.event_type_value, record.step_key)
        events.setdefault(key, record.timestamp)
    phases = {"start-up": events[("RESOURCE_INIT_STARTED", None)] - launched}
    init = ("RESOURCE_INIT_SUCCESS", None)
    phases["spark jvm + resources"] = events[init] - events[("RESOURCE_INIT_STARTED", None)]
    last = events[init]
    for step, name in steps.items():
        if ("STEP_START", step) in events:
            phases[name] = events[("STEP_SUCCESS", step)] - events[("STEP_START", step)]
            last = events[("STEP_SUCCESS", step)]
    phases["finish"] = ended - last
    return {name: round(seconds, 2) for name, seconds in phases.items()}


def warehouse_rows(data_dir: Path, table: str = "stock_raw.daily_prices") -> int:
    import duckdb

    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]


def partitions_in(first: str, last: str) -> int:
    from stock_platform.defs.stock_prices.partitions import STOCK_PARTITIONS

    keys = STOCK_PARTITIONS.get_partition_keys()
    return keys.index(last) - keys.index(first) + 1


def median_run(runs: list[dict]) -> dict:
    ordered = sorted(runs, key=lambda run: run["wall_s"])
    return {**ordered[len(ordered) // 2], "walls_s": [run["wall_s"] for run in runs]}


def backfill(fresh, name: str, span: tuple[str, str], repeat: int) -> dict:
    """The median of `repeat` single-run backfills of `span`, each in a fresh data dir `name`."""
    run = median_run([run_platform(fresh(name), *span) for _ in range(repeat)])
    return {**run, "partitions": partitions_in(*span), "rows_per_s": round(run["rows"] / run["wall_s"])}


def bench_api(repeat: int) -> dict:
    from api_ingest import ingest

    from stock_platform.defs.stock_prices.sources.synthetic import SyntheticMarket
    from stock_platform.platform.calendars import trading_sessions

    args = argparse.Namespace(latency=[0.2, 0.5], max_rps=10.0, page_size=1000)
    days = trading_sessions(dt.date(2024, 1, 2), dt.date(2024, 3, 31))[:40]
    frames = SyntheticMarket(7).frames(days)
    walls = [ingest(frames, days, args, max_in_flight=32) for _ in range(repeat)]
    bound = walls[0]["requests"] / args.max_rps
    wall = statistics.median(w["wall"] for w in walls)
    return {
        "days": len(days),
        "requests": walls[0]["requests"],
        "max_rps": args.max_rps,
        "bound_s": bound,
        "wall_s": round(wall, 2),
        "walls_s": [round(w["wall"], 2) for w in walls],
        "ratio": round(wall / bound, 3),
    }


def spark_cleaning(data_dir: Path) -> dict:
    """clean_web_access_logs in the latest run: its step time, the Spark job's time and the lines
    it parsed (clean rows + rejected lines), from the step's events and materializations."""
    step = "clean_web_access_logs"
    started = ended = spark_s = None
    rows = rejected = 0
    for record in latest_run_events(data_dir):
        if record.step_key != step:
            continue
        event = record.dagster_event
        if event.event_type_value == "STEP_START":
            started = record.timestamp
        elif event.event_type_value == "STEP_SUCCESS":
            ended = record.timestamp
        elif event.event_type_value == "ASSET_MATERIALIZATION":  # one per partition
            metadata = {k: v.value for k, v in event.event_specific_data.materialization.metadata.items()}
            spark_s = metadata["spark_seconds"]
            rows += metadata["dagster/row_count"]
            rejected += metadata["rejected_lines"]
    assert started is not None and ended is not None and spark_s is not None, f"no {step} step in the run"
    step_s, lines = ended - started, rows + rejected
    return {"step_s": round(step_s, 2), "spark_job_s": spark_s, "lines": lines, "clean_rows": rows,
            "rejected_lines": rejected, "lines_per_s": round(lines / step_s),
            "job_lines_per_s": round(lines / spark_s)}  # fmt: skip


def bench_web(fresh, span: tuple[str, str], repeat: int) -> dict:
    """(w) A single-run web_traffic backfill of `span`, then DuckDB's regular expression on the
    raw files it ingested (the median of `repeat` parses, files in the page cache as for Spark)."""
    from web import duckdb_parse, raw_log_files

    from stock_platform.defs.web_traffic.settings import WebSettings, web_settings

    data_dir = fresh("web")
    run = run_platform(data_dir, *span, domain="web_traffic")
    first, last = (dt.date.fromisoformat(day) for day in span)
    days = [(first + dt.timedelta(n)).isoformat() for n in range((last - first).days + 1)]
    spark = spark_cleaning(data_dir)
    files, raw_lines = raw_log_files(data_dir, days)
    parses = [duckdb_parse(files, data_dir / "duckdb-floor.parquet", web_settings().timezone) for _ in range(repeat)]
    duck = {**sorted(parses, key=lambda p: p["seconds"])[len(parses) // 2], "walls_s": [p["seconds"] for p in parses]}
    default = WebSettings.model_fields["synthetic_requests_per_day"].default
    return {**run, "partitions": len(days), "raw_lines": raw_lines,
            "requests_per_day": int(os.environ.get("WEB_SYNTHETIC_REQUESTS_PER_DAY", default)),
            "spark": spark, "duckdb": duck, "ratio": round(spark["step_s"] / duck["seconds"], 1),
            "job_ratio": round(spark["spark_job_s"] / duck["seconds"], 1)}  # fmt: skip


def figures(only: str) -> set[str]:
    """--only: stock figures by letter (a-e), `web` (w), `serving` (s), e.g. 'ac', 'web', 'a,web'."""
    chosen, rest = set(), only.replace(",", "").replace(" ", "")
    for word, letters in (("web", "w"), ("serving", "s"), ("stock", "abcde")):
        if word in rest:
            chosen |= set(letters)
            rest = rest.replace(word, "")
    if set(rest) - set("abcdews"):
        raise SystemExit(f"--only {only!r}: figures are a, b, c, d, e (stock), w or web, s or serving, and stock")
    return chosen | set(rest)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="runs per short figure (median)")
    parser.add_argument(
        "--quick", action="store_true", help=f"one repeat, no ten-year run, web over {WEB_QUICK[0]}..{WEB_QUICK[1]}"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--only", default="abcde,web,serving", help="which figures, e.g. 'ac', 'web', 'a,web'")
    args = parser.parse_args()
    args.only = figures(args.only)
    repeat = 1 if args.quick else args.repeat
    scratch = Path(tempfile.mkdtemp(prefix="stock-bench-"))
    result: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(),
            "date": dt.date.today().isoformat(),
        },
        "targets": TARGETS,
    }

    def fresh(name: str) -> Path:
        path = scratch / name
        stop_server(path)
        shutil.rmtree(path, ignore_errors=True)
        return path

    try:
        if "a" in args.only:
            print("(a) one-year single-run backfill", flush=True)
            result["a"] = backfill(fresh, "year", YEAR, repeat)
        if "b" in args.only:
            print("(b) one run per partition", flush=True)
            data_dir = fresh("per-partition")
            walls = [run_platform(data_dir, day, day, partition_only=True)["wall_s"] for day in PER_PARTITION]
            per_run = statistics.median(walls)
            b = {
                "walls_s": walls,
                "per_run_s": per_run,
                "partitions": partitions_in(*YEAR),
                "extrapolated_s": round(per_run * partitions_in(*YEAR), 1),
            }
            if "a" in result:
                b["ratio_to_a"] = round(b["extrapolated_s"] / result["a"]["wall_s"], 1)
            result["b"] = b
        if "e" in args.only and not args.quick:
            print("(e) ten-year single-run backfill", flush=True)
            result["e"] = backfill(fresh, "ten-years", TEN_YEARS, 1)  # (c) reuses its data dir
        if "c" in args.only:
            print("(c) a daily run on one month vs ten years of history", flush=True)
            month = fresh("month")
            history = {"one month": run_platform(month, *MONTH)}
            daily = {"one month": median_run([run_platform(month, DAILY, DAILY) for _ in range(repeat)])}
            ten = scratch / "ten-years"
            if not (ten / "warehouse.duckdb").exists():
                history["ten years"] = run_platform(fresh("ten-years"), *TEN_YEARS)
            daily["ten years"] = median_run([run_platform(ten, DAILY, DAILY) for _ in range(repeat)])
            result["c"] = {
                "daily": daily,
                "history_build": history,
                "ratio": round(daily["ten years"]["wall_s"] / daily["one month"]["wall_s"], 3),
            }
        if "d" in args.only:
            print("(d) API ingestion against the fake server's rate bound", flush=True)
            result["d"] = bench_api(repeat)
        if "w" in args.only:
            span = WEB_QUICK if args.quick else WEB
            print(f"(w) web_traffic single-run backfill {span[0]}..{span[1]}, Spark cleaning vs DuckDB", flush=True)
            result["w"] = bench_web(fresh, span, repeat)
        if "s" in args.only:
            from serving import bench_serving

            print("(s) serving: stock_latest lookups and one-year histories in PostgreSQL", flush=True)
            result["s"] = bench_serving(fresh("serving"))
    finally:
        for data_dir in scratch.iterdir():
            stop_server(data_dir)
        shutil.rmtree(scratch, ignore_errors=True)

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "benchmark.json").write_text(json.dumps(result, indent=2) + "\n")
    if any(key in result for key in "abce"):  # the stock runs' wall times
        chart(result, args.out / "wall_time.png")
    report = render(result)
    (args.out / "REPORT.md").write_text(report)
    print("\n" + report)


def chart(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = []
    if "c" in result:
        points.append((1, result["c"]["daily"]["one month"]["wall_s"], "daily run"))
        points.append((partitions_in(*MONTH), result["c"]["history_build"]["one month"]["wall_s"], "one month"))
    if "a" in result:
        points.append((result["a"]["partitions"], result["a"]["wall_s"], "one year (a)"))
    if "e" in result:
        points.append((result["e"]["partitions"], result["e"]["wall_s"], "ten years (e)"))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if points:
        xs, ys, labels = zip(*sorted(points))
        ax.plot(xs, ys, "o-", label="one run for the range (single-run backfill)")
        for x, y, label in zip(xs, ys, labels):
            ax.annotate(f"{label}: {y:.0f} s", (x, y), textcoords="offset points", xytext=(5, -12))
    if "b" in result:
        per_run = result["b"]["per_run_s"]
        xs = [1, max(p[0] for p in points) if points else 260]
        ax.plot(xs, [per_run * x for x in xs], "--", label=f"one run per partition ({per_run:.0f} s each)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("partitions in the range (weekdays)")
    ax.set_ylabel("wall time, s")
    ax.set_title("stock_platform: wall time against range length")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def range_row(label: str, run: dict, target: str) -> str:
    """A single-run backfill's row: (a) is repeated (its runs listed), (e) runs once."""
    walls = f" (runs {run['walls_s']})" if "walls_s" in run else ""
    return (
        f"| {label} single run ({run['partitions']} partitions, {run['rows']:,} rows) | "
        f"**{run['wall_s']:.1f} s**{walls}, {run['rows_per_s']:,} rows/s, "
        f"peak **{run['peak_gib']} GiB** | {target} |"
    )


def render(result: dict) -> str:
    m = result["machine"]
    lines = [
        "# stock_platform benchmark",
        "",
        f"{m['date']}, {m['cpus']} cores, {m['memory_gib']} GiB, Python {m['python']}. Embedded defaults "
        "(synthetic market, local disk, local Spark, DuckDB); every run starts as `make run` does, "
        "in a fresh data dir. Peak memory is the summed PSS (shared pages counted once) of the run's process tree "
        "(the embedded PostgreSQL server of the Dagster instance runs apart from it and is not counted).",
        "",
    ]
    if any(key in result for key in "abcde"):
        lines += ["| figure | measured | target |", "|---|---|---|"]
    if "a" in result:
        lines.append(range_row("(a) one-year", result["a"], TARGETS["a"]))
    if "b" in result:
        b = result["b"]
        ratio = f", (b)/(a) = **{b['ratio_to_a']}x**" if "ratio_to_a" in b else ""
        lines.append(
            f"| (b) one run per partition | {b['per_run_s']:.1f} s per run (runs {b['walls_s']}) "
            f"x {b['partitions']} = {b['extrapolated_s']:,.0f} s{ratio} | {TARGETS['b_over_a']} |"
        )
    if "c" in result:
        c = result["c"]
        lines.append(
            f"| (c) daily run, one month vs ten years of history | "
            f"{c['daily']['one month']['wall_s']:.1f} s vs {c['daily']['ten years']['wall_s']:.1f} s: "
            f"**{c['ratio']}** | {TARGETS['c']} |"
        )
    if "d" in result:
        d = result["d"]
        lines.append(
            f"| (d) API ingestion, {d['days']} days, {d['requests']} requests at {d['max_rps']:g}/s | "
            f"{d['wall_s']:.2f} s vs bound {d['bound_s']:.2f} s: **{d['ratio']}** | {TARGETS['d']} |"
        )
    if "e" in result:
        lines.append(range_row("(e) ten-year", result["e"], TARGETS["e"]))
    if "w" in result:
        web = render_web(result["w"])
        lines += web[1:] if lines[-1] == "" else web  # one blank line before it
    if "s" in result:
        from serving import render_serving

        served = render_serving(result["s"], TARGETS)
        lines += served[1:] if lines[-1] == "" else served
    runs = [(name, result[key]) for name, key in (("(a) one year", "a"), ("(e) ten years", "e")) if key in result]
    if "c" in result:
        runs += [(f"(c) daily, {k} of history", v) for k, v in result["c"]["daily"].items()]
    if runs:
        phases = list(runs[0][1]["steps"])
        lines += [
            "",
            "## Where the time goes (seconds)",
            "",
            "| run | " + " | ".join(phases) + " | total |",
            "|---" * (len(phases) + 2) + "|",
        ]
        for name, run in runs:
            lines.append(
                f"| {name} | "
                + " | ".join(f"{run['steps'].get(p, 0):.1f}" for p in phases)
                + f" | {run['wall_s']:.1f} |"
            )
        lines += [
            "",
            "start-up: the CLI, Python imports, loading the definitions and recording the run "
            "(one planned event per asset, one planned row per check and partition); spark jvm + "
            "resources: the local Spark session; each step includes recording its per-partition "
            "materializations; finish: the run's end and the CLI's summary.",
        ]
    if any(key in result for key in "abce"):
        lines += ["", "![wall time against range length](wall_time.png)"]
    return "\n".join([*lines, ""])


def render_web(w: dict) -> list[str]:
    spark, duck = w["spark"], w["duckdb"]
    duck_walls = f" (runs {duck['walls_s']})" if len(duck["walls_s"]) > 1 else ""
    phases = list(w["steps"])
    return [
        "",
        f"## (w) web_traffic: {w['partitions']}-day single-run backfill, {w['range'][0]}..{w['range'][1]}",
        "",
        f"{w['requests_per_day']:,} synthetic requests per day (WEB_SYNTHETIC_REQUESTS_PER_DAY): "
        f"{w['raw_lines']:,} raw lines in {duck['files']} files (plain and .gz).",
        "",
        "| figure | measured | target |",
        "|---|---|---|",
        f"| (w) web run, {w['partitions']} partitions, {w['rows']:,} rows | **{w['wall_s']:.1f} s**, "
        f"peak **{w['peak_gib']} GiB** | |",
        f"| Spark cleaning step (clean_web_access_logs), {spark['lines']:,} lines "
        f"({spark['clean_rows']:,} clean + {spark['rejected_lines']:,} rejected) | **{spark['step_s']:.1f} s**, "
        f"**{spark['lines_per_s']:,} lines/s** (Spark job {spark['spark_job_s']:.1f} s, "
        f"{spark['job_lines_per_s']:,} lines/s) | |",
        f"| DuckDB regexp_extract floor, same files, {duck['threads']} threads, {duck['lines']:,} lines "
        f"({duck['unmatched']:,} unmatched, {duck['not_utf8_skipped']:,} not UTF-8) | **{duck['seconds']:.2f} s**"
        f"{duck_walls}, **{duck['lines_per_s']:,} lines/s** | |",
        f"| Spark cleaning step / DuckDB | **{w['ratio']}x** (Spark job / DuckDB {w['job_ratio']}x) | {TARGETS['w']} |",
        "",
        "| run | " + " | ".join(phases) + " | total |",
        "|---" * (len(phases) + 2) + "|",
        f"| (w) {w['partitions']} days | "
        + " | ".join(f"{w['steps'][p]:.1f}" for p in phases)
        + f" | {w['wall_s']:.1f} |",
        "",
        "The Spark step parses with sources/access_log.py in one task per core (client networks, keyed visitor ids, "
        "user agents parsed, every line accounted for, clean or rejected) and publishes to the lake; its time "
        "includes waiting for the Spark JVM if it is still starting. The DuckDB floor (bench/web.py) reads each "
        "line as one VARCHAR, one regexp_extract covers the three formats, types timestamp, status, size, "
        "request parts, referrer and user agent, and writes zstd Parquet: no user-agent parsing, HMAC or "
        "rejection bookkeeping.",
    ]


if __name__ == "__main__":
    main()
