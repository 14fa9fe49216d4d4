"""Report benchmarks at 10 million calls, each beside the plain SQL that reads the same rows (the floor).

First fill the database (once, ~20 minutes): `python -m bench.report_data --calls 10000000`, then
`python -m bench.reports [--record]`. Each measurement runs in its own process, so its peak RSS is
its own. Targets (issue 5): summary < 300 ms, first page < 100 ms, CSV >= 100,000 rows/s under
200 MiB, PDF of 10,000 rows < 15 s and < 500 MiB.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from bench.machine import machine_details, peak_rss_mib
from bench.report_data import DATABASE, with_database
from reports import api, data, render
from reports.filters import ReportRequest, parse_filters

RESULTS = Path(__file__).parent / "RESULTS.md"
SEASON = {"period": "season", "year": "1404", "season": "1", "by": "month"}   # Farvardin-Khordad 1404
YEAR_BY_DAY = {"period": "year", "year": "1404", "by": "day"}
MONTH = {"period": "month", "year": "1404", "month": "2", "by": "day"}       # Ordibehesht 1404
MILLION = {"from": "1404/01/01", "to": "1404/02/05", "by": "day"}            # 36 days, about a million calls
TEN_THOUSAND = {"from": "1404/03/01", "to": "1404/03/01", "type": "incoming"}  # one day's received calls
FLOOR_TOTALS = """
SELECT date_trunc('month', start_time AT TIME ZONE 'Asia/Tehran') AS month, count(*),
       count(*) FILTER (WHERE status = 'missed'), sum(talk_seconds), sum(wait_seconds), sum(transfer_count)
FROM calls WHERE start_time >= $1 AND start_time < $2 GROUP BY 1"""
FLOOR_PAGE = "SELECT * FROM calls WHERE start_time >= $1 AND start_time < $2 ORDER BY start_time, id LIMIT 100"
FLOOR_ROWS = """SELECT * FROM calls WHERE start_time >= $1 AND start_time < $2
AND (CASE WHEN status = 'missed' THEN 'missed' ELSE direction END) = ANY($3::text[]) ORDER BY start_time, id"""


async def best_of(runs: int, action: Callable[[], Awaitable[Any]]) -> float:
    """Fastest of `runs` timed runs after one warm-up, in milliseconds."""
    await action()
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        await action()
        timings.append(time.perf_counter() - started)
    return min(timings) * 1000


def request(values: dict[str, str], fmt: str = "csv") -> ReportRequest:
    return parse_filters({**values, "format": fmt})


async def summary(conn: asyncpg.Connection, values: dict[str, str]) -> dict[str, Any]:
    req = request(values)
    scope = await data.resolve(conn, req)
    start, end = req.utc_range()
    return {
        "rollup_ms": await best_of(5, lambda: data.totals(conn, req, scope, use_rollup=True)),
        "raw_ms": await best_of(2, lambda: data.totals(conn, req, scope, use_rollup=False)),
        "floor_ms": await best_of(2, lambda: conn.fetch(FLOOR_TOTALS, start, end)),
        "buckets": len(req.buckets),
    }


async def first_page(conn: asyncpg.Connection) -> dict[str, Any]:
    req = request(MONTH, "html")
    start, end = req.utc_range()

    async def page() -> None:
        document = await api.produce(conn, req, limit=100)
        assert len([row async for row in document.rows]) == 100

    return {"api_ms": await best_of(5, page), "floor_ms": await best_of(5, lambda: conn.fetch(FLOOR_PAGE, start, end))}


def backend_cpu(pid: int) -> float | None:
    """CPU seconds used so far by a process of this machine (a PostgreSQL backend), None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # utime and stime: fields 14 and 15 of stat(5), counted here after the ")" that ends field 2.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None


class ProcessTree:
    """Samples this process and its descendants (PDF workers, forked by a fork server): peak RSS and CPU."""

    def __init__(self) -> None:
        self.peak_total_mib = 0.0
        self.peak_worker_mib = 0.0
        self.cpu: dict[int, float] = {}
        self.task: asyncio.Task[None] | None = None

    def sample(self) -> None:
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
        found, todo = [], list(children.get(os.getpid(), []))
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo += children.get(pid, [])
        page = os.sysconf("SC_PAGE_SIZE") / 2**20
        total = peak_rss_now_mib()
        self.cpu = {}
        for pid in found:
            fields = _stat(pid)
            if fields is None:
                continue
            # rss (field 24) in pages; utime, stime and those of its waited-for children (14-17) in
            # clock ticks: a finished worker's time is in the fork server's, exactly.
            rss = int(fields[21]) * page
            total += rss
            self.peak_worker_mib = max(self.peak_worker_mib, rss)
            self.cpu[pid] = sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")
        self.peak_total_mib = max(self.peak_total_mib, total)

    async def run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(0.2)

    def __enter__(self) -> ProcessTree:
        self.task = asyncio.create_task(self.run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        self.sample()


def peak_rss_now_mib() -> float:
    """Resident set size of this process now, in MiB."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class Spares:
    """Opens the spare connections of a parallel CSV export and follows their backends' CPU time."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.cpu: dict[int, float] = {}
        self.watchers: list[asyncio.Task[None]] = []

    async def connect(self) -> asyncpg.Connection:
        conn = await asyncpg.connect(self.dsn)
        self.watchers.append(asyncio.create_task(self.watch(conn.get_server_pid())))
        return conn

    async def watch(self, pid: int) -> None:
        # The backend ends when its connection is closed: its last reading is kept (50 ms resolution).
        start = backend_cpu(pid) or 0.0
        while (cpu := backend_cpu(pid)) is not None:
            self.cpu[pid] = cpu - start
            await asyncio.sleep(0.05)

    async def close(self) -> float:
        """Stop following; the spares' CPU seconds."""
        for task in self.watchers:
            task.cancel()
        await asyncio.gather(*self.watchers, return_exceptions=True)
        return sum(self.cpu.values())


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


async def export(conn: asyncpg.Connection, dsn: str, fmt: str, values: dict[str, str], *, server: bool = True,
                 parts: bool = True) -> dict[str, Any]:
    """One export to a temporary file; `server=False` makes the CSV rows formatted in Python (the old way),
    `parts=False` keeps a CSV export on one connection."""
    req = request(values, fmt)
    spares = Spares(dsn)
    main_pid = conn.get_server_pid()
    main_cpu, own_cpu = backend_cpu(main_pid) or 0.0, cpu_seconds(resource.RUSAGE_SELF)
    with tempfile.TemporaryFile() as out, ProcessTree() as tree:
        started = time.perf_counter()
        async with api.open_report(conn, req, connect=spares.connect if parts else None) as document:
            if not server and isinstance(document.rows, data.StreamedRows):
                document.rows = document.rows.rows
            await render.write(document, out)
            rows = document.grand.calls
        seconds = time.perf_counter() - started
        size = out.tell()
        out.seek(0)
        digest = hashlib.file_digest(out, "sha256").hexdigest()[:16]   # both CSV paths must agree
    server_cpu = (backend_cpu(main_pid) or 0.0) - main_cpu + await spares.close()
    # PDF workers are processes of their own (sampled every 0.2 s: the largest one, and the sum of
    # this process and all of them at one moment, shared pages counted in each).
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds, "bytes": size, "rss_mib": peak_rss_mib(),
            "worker_rss_mib": tree.peak_worker_mib, "all_processes_rss_mib": tree.peak_total_mib, "sha256": digest,
            "connections": 1 + len(spares.watchers),
            "cpu_s": {"python": cpu_seconds(resource.RUSAGE_SELF) - own_cpu, "server": server_cpu,
                      "workers": sum(tree.cpu.values())}}


async def floor_scan(conn: asyncpg.Connection, values: dict[str, str]) -> dict[str, Any]:
    req = request(values)
    start, end = req.utc_range()
    started = time.perf_counter()
    rows = 0
    async with conn.transaction():
        async for _ in conn.cursor(FLOOR_ROWS, start, end, list(req.types), prefetch=2000):
            rows += 1
    seconds = time.perf_counter() - started
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds, "rss_mib": peak_rss_mib()}


async def copy_scan(conn: asyncpg.Connection, values: dict[str, str]) -> dict[str, Any]:
    """The export's own source alone: details_copy.sql through COPY, parsed, nothing formatted."""
    req = request(values)
    scope = await data.resolve(conn, req)
    started = time.perf_counter()
    rows = 0
    async with conn.transaction():
        async for _ in data.details_stream(conn, req, scope):
            rows += 1
    seconds = time.perf_counter() - started
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds, "rss_mib": peak_rss_mib()}


MEASURES: dict[str, Callable[[asyncpg.Connection, str], Awaitable[dict[str, Any]]]] = {
    "season_summary": lambda conn, dsn: summary(conn, SEASON),
    "year_by_day_summary": lambda conn, dsn: summary(conn, YEAR_BY_DAY),
    "first_page": lambda conn, dsn: first_page(conn),
    "csv_1m": lambda conn, dsn: export(conn, dsn, "csv", MILLION),
    "csv_1m_one_connection": lambda conn, dsn: export(conn, dsn, "csv", MILLION, parts=False),
    "csv_1m_python": lambda conn, dsn: export(conn, dsn, "csv", MILLION, server=False),
    "xlsx_1m": lambda conn, dsn: export(conn, dsn, "xlsx", MILLION),
    "scan_1m": lambda conn, dsn: floor_scan(conn, MILLION),
    "copy_1m": lambda conn, dsn: copy_scan(conn, MILLION),
    "pdf_10k": lambda conn, dsn: export(conn, dsn, "pdf", TEN_THOUSAND),
    "scan_10k": lambda conn, dsn: floor_scan(conn, TEN_THOUSAND),
}


async def measure(dsn: str, name: str) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn, command_timeout=None)
    try:
        return await MEASURES[name](conn, dsn)
    finally:
        await conn.close()


def table(results: dict[str, dict[str, Any]]) -> str:
    """The figures as the markdown section of bench/RESULTS.md."""
    s, y, p = results["season_summary"], results["year_by_day_summary"], results["first_page"]
    lines = [
        "| measurement | Calltrail | plain SQL floor | target |",
        "|---|---|---|---|",
        f"| season summary by month ({s['buckets']} buckets), rollup | {s['rollup_ms']:.1f} ms | "
        f"{s['floor_ms']:.0f} ms (GROUP BY over calls) | < 300 ms |",
        f"| same, from the raw calls (agent filter / other time zone) | {s['raw_ms']:.0f} ms | "
        f"{s['floor_ms']:.0f} ms | |",
        f"| year summary by day ({y['buckets']} buckets), rollup | {y['rollup_ms']:.1f} ms | "
        f"{y['floor_ms']:.0f} ms | |",
        f"| first page of details (100 rows of a month, with totals) | {p['api_ms']:.1f} ms | {p['floor_ms']:.1f} ms | "
        "< 100 ms |",
    ]
    scan, copy = results["scan_1m"], results["copy_1m"]
    for name, label in (("csv_1m", "CSV"), ("xlsx_1m", "XLSX")):
        r = results[name]
        lines.append(f"| {label} export of {r['rows']:,} rows | {r['rows_per_s']:,.0f} rows/s ({r['seconds']:.1f} s), "
                     f"peak RSS {r['rss_mib']:.0f} MiB, {r['bytes'] / 2**20:.0f} MiB file | "
                     f"{scan['rows_per_s']:,.0f} rows/s, {scan['rss_mib']:.0f} MiB (cursor over calls); "
                     f"{copy['rows_per_s']:,.0f} rows/s (the export's COPY source alone) | "
                     f"{'>= 100,000 rows/s, < 200 MiB' if label == 'CSV' else ''} |")
    pdf, scan10 = results["pdf_10k"], results["scan_10k"]
    lines.append(f"| PDF of {pdf['rows']:,} rows (Persian, Typst in chunks) | {pdf['seconds']:.1f} s, peak RSS "
                 f"{pdf['rss_mib']:.0f} MiB + workers of {pdf['worker_rss_mib']:.0f} MiB at most, "
                 f"{pdf['bytes'] / 2**20:.1f} MiB file | {scan10['seconds'] * 1000:.0f} ms | < 15 s, < 500 MiB |")
    return "\n".join(lines)


def main() -> None:
    """Run every measurement in its own process and print (or record) the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=with_database("postgresql://postgres@127.0.0.1:5432/test", DATABASE))
    parser.add_argument("--record", action="store_true", help="append the table to bench/RESULTS.md")
    parser.add_argument("--one", choices=sorted(MEASURES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(asyncio.run(measure(args.dsn, args.one))))
        return
    results: dict[str, dict[str, Any]] = {}
    for name in MEASURES:
        out = subprocess.run([sys.executable, "-m", "bench.reports", "--dsn", args.dsn, "--one", name],
                             check=True, capture_output=True, text=True).stdout
        results[name] = json.loads(out.strip().splitlines()[-1])
        print(name, results[name], flush=True)
    text = table(results)
    print(text)
    if args.record:
        calls = asyncio.run(_count(args.dsn))
        section = (f"\n## Reports\n\n{datetime.now(UTC):%Y-%m-%d}, {machine_details()}; PostgreSQL on the same "
                   f"machine, {calls:,} calls (`python -m bench.report_data`), `python -m bench.reports`.\n\n"
                   f"{text}\n")
        with RESULTS.open("a", encoding="utf-8") as handle:
            handle.write(section)


async def _count(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        count: int = await conn.fetchval("SELECT sum(calls) FROM report_daily_totals")
        return count
    finally:
        await conn.close()


if __name__ == "__main__":
    main()
