# ruff: noqa: N999  (the file name is the one the issue asks for)
"""Benchmark: `import-cdr` of a synthetic Master.csv (default 2 million rows): rows/s and peak RSS.

    .venv/bin/python bench/import.py [--rows N] [--master PATH] [--dsn DSN] [--parse-only] [--import-only]
                                     [--bulk [--keep-keys]] [--parallel auto|yes|no]
                                     [--engine auto|compiled|python] [--writers N] [--record]

Without --dsn a throwaway embedded PostgreSQL is started. Reports the whole import (parse, build
calls, write them) and, separately, parsing and building alone (skipped with --import-only), so the
two costs can be told apart; each as wall time and CPU time (this process's, the grouping
process's, the PostgreSQL backend's and the whole server's), because the machine is shared and wall
time alone says more about the neighbours than about the code. Peak RSS is given per process and
summed. --bulk imports as `import-cdr --bulk`; --keep-keys keeps the detail tables' link checks on during it
(to measure what they cost). --master keeps the generated file (or reuses it) between runs.
--record writes the figures to bench/RESULTS.md, under "### Last recorded run" in "## CDR import".
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cdr_synth import write_master_file
from bench.machine import machine_details, peak_rss_mib
from ingest import cdr_bulk, cdr_import, pg, store
from ingest.config import SystemConfig

SYSTEM = SystemConfig(name="bench", timezone="Asia/Tehran")
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


_TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) of another process on this machine, 0 when it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def server_cpu(backend: int) -> float:
    """CPU seconds of the whole PostgreSQL server of `backend`: the postmaster, its live children (backends,
    background processes) and its finished ones (parallel index-build workers, autovacuum)."""
    try:
        postmaster = int(Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()[1])
        fields = Path(f"/proc/{postmaster}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return 0.0
    total = sum(int(f) for f in fields[11:15]) / _TICK
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            child = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if child[1] == str(postmaster):
            total += (int(child[11]) + int(child[12])) / _TICK
    return total


def plain_csv(path: Path) -> tuple[int, float]:
    """Rows and CPU seconds of csv.reader alone over the file: the floor of any Python reader."""
    cpu = time.process_time()
    with path.open(encoding="utf-8", newline="") as handle:
        rows = sum(1 for _ in csv.reader(handle))
    return rows, time.process_time() - cpu


def parse_only(path: Path) -> tuple[int, int, float, float]:
    """Rows read, calls built, wall seconds and CPU seconds, without the database."""
    stats = cdr_import.ImportStats()
    started, cpu = time.perf_counter(), time.process_time()
    calls = 0
    with path.open(encoding="utf-8", newline="") as handle:
        for batch in cdr_import.produce_calls(iter(handle), str(path), SYSTEM, stats):
            calls += len(batch)
    return stats.rows_read, calls, time.perf_counter() - started, time.process_time() - cpu


def parse_only_compiled(path: Path) -> tuple[int, int, float, float]:
    """parse_only for the compiled engine: rows read, calls built and encoded, wall and CPU seconds."""
    from ingest import cdr_fast

    stats = cdr_import.ImportStats()
    started, cpu = time.perf_counter(), time.process_time()
    produced = cdr_fast.Produced(path, SYSTEM, cdr_import.DEFAULT_WINDOW, cdr_import.FAST_BATCH_CALLS, stats)
    calls = 0
    while (batch := produced.next_batch()) is not None:
        batch.encode(range(calls, calls + batch.count), 1, "cdr")
        calls += batch.count
    return produced.groups.rows_read, calls, time.perf_counter() - started, time.process_time() - cpu


async def full_import(dsn: str, path: Path, *, bulk: bool, parallel: bool | None, engine: str, writers: int
                      ) -> tuple[cdr_import.ImportStats, float, float, float, float, float]:
    """The real import into a fresh schema: its stats, wall seconds, client CPU, grouping process CPU and
    server backend CPU seconds (all the import's connections), and the whole server's CPU seconds."""
    conn = await store.connect(dsn)
    more = []
    try:
        await store.init_schema(conn)
        more = [await store.connect(dsn) for _ in range(writers - 1)]
        backends = [c.get_server_pid() for c in (conn, *more)]
        started, cpu, backend_cpu, whole = (time.perf_counter(), time.process_time(),
                                            sum(process_cpu(b) for b in backends), server_cpu(backends[0]))
        stats = await cdr_import.import_cdr(conn, SYSTEM, path, bulk=bulk, parallel=parallel, engine=engine,
                                            more=more)
        seconds = time.perf_counter() - started
        return (stats, seconds, time.process_time() - cpu, stats.helper_cpu_seconds,
                sum(process_cpu(b) for b in backends) - backend_cpu, server_cpu(backends[0]) - whole)
    finally:
        for extra in more:
            await extra.close()
        await conn.close()


def calibration_seconds() -> float:
    """Seconds for 10 million iterations of a plain Python loop: how busy the CPU was (about 0.5 s when idle)."""
    started = time.perf_counter()
    total = 0
    for number in range(10_000_000):
        total += number
    return time.perf_counter() - started


def record(text: str) -> None:
    """Put `text` under "### Last recorded run" in the "## CDR import" section of RESULTS.md, keeping the rest."""
    current = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    block = "### Last recorded run\n\n" + text
    start = current.find("## CDR import")
    if start < 0:
        RESULTS.write_text(current.rstrip("\n") + "\n\n## CDR import\n\n" + block, encoding="utf-8")
        return
    following = current.find("\n## ", start + 1)
    end = following + 1 if following >= 0 else len(current)
    section = current[start:end]
    old = section.find("### Last recorded run")
    if old >= 0:
        after = section.find("\n### ", old + 1)
        section = section[:old] + block + (section[after + 1:] if after >= 0 else "\n")
    else:
        section = section.rstrip("\n") + "\n\n" + block + "\n"
    RESULTS.write_text(current[:start] + section + current[end:], encoding="utf-8")


def main() -> None:
    """Run the benchmark and print (and optionally record) the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--dsn", default=None, help="PostgreSQL to write to (default: a throwaway embedded one)")
    parser.add_argument("--master", type=Path, default=None,
                        help="the synthetic Master.csv to use (generated there when missing, and kept)")
    parser.add_argument("--parse-only", action="store_true", help="skip the database import")
    parser.add_argument("--import-only", action="store_true",
                        help="skip the floors (csv.reader alone, parse without the database)")
    parser.add_argument("--bulk", action="store_true", help="import with --bulk (upkeep once at the end)")
    parser.add_argument("--keep-keys", action="store_true",
                        help="with --bulk, keep the detail tables' link checks on (to measure what they cost)")
    parser.add_argument("--parallel", choices=("auto", "yes", "no"), default="auto",
                        help="group rows in a second process (auto: for files of 16 MiB or more)")
    parser.add_argument("--engine", choices=("auto", "compiled", "python"), default="auto",
                        help="the importer's engine, as import-cdr --engine (auto: compiled when built)")
    parser.add_argument("--writers", type=int, default=2,
                        help="connections the compiled engine writes over, as import-cdr --writers (default 2)")
    parser.add_argument("--record", action="store_true", help="write the figures into bench/RESULTS.md")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="calltrail-bench-import-"))
    calibration = calibration_seconds()
    load = os.getloadavg()[0]
    try:
        master = args.master or work / "Master.csv"
        if not master.exists():
            started = time.perf_counter()
            write_master_file(master, args.rows)
            print(f"generated {args.rows} rows in {time.perf_counter() - started:.1f} s")
        size_mib = master.stat().st_size / 2**20
        floor_line = parse_line = "not measured (--import-only)"
        if not args.import_only:
            csv_rows, csv_cpu = plain_csv(master)
            floor_line = f"{csv_rows / csv_cpu:,.0f} rows/s of CPU ({csv_cpu:.1f} s CPU)"
            print(f"csv.reader alone: {floor_line}")
            rows, calls, parse_seconds, parse_cpu = parse_only(master)
            parse_rss = peak_rss_mib()
            parse_line = (f"{rows / parse_seconds:,.0f} rows/s wall, {rows / parse_cpu:,.0f} rows/s of CPU "
                          f"({rows} rows, {calls} calls; {parse_seconds:.1f} s wall, {parse_cpu:.1f} s CPU), "
                          f"peak RSS {parse_rss:.0f} MiB")
            print(f"parse+build only: {parse_line}")
            rows, calls, parse_seconds, parse_cpu = parse_only_compiled(master)
            compiled_line = (f"{rows / parse_seconds:,.0f} rows/s wall, {rows / parse_cpu:,.0f} rows/s of CPU "
                             f"({rows} rows, {calls} calls; {parse_seconds:.1f} s wall, {parse_cpu:.1f} s CPU)")
            parse_line += f"; compiled engine (read, group, build, encode): {compiled_line}"
            print(f"compiled parse+build+encode only: {compiled_line}")
        print(f"{master} ({size_mib:.0f} MiB)")
        if args.parse_only:
            return
        cdr_bulk.DISABLE_DETAIL_CHECKS = not args.keep_keys
        dsn = args.dsn
        if dsn is None:
            target = pg.start_embedded(work / "pg")
            dsn = target.dsn
        try:
            parallel = None if args.parallel == "auto" else args.parallel == "yes"
            stats, seconds, client_cpu, group_cpu, backend_cpu, whole_cpu = asyncio.run(
                full_import(dsn, master, bulk=args.bulk, parallel=parallel, engine=args.engine,
                            writers=args.writers))
        finally:
            if args.dsn is None:
                pg.stop_embedded(work / "pg")
        rss = peak_rss_mib()
        child_rss = stats.helper_peak_rss_mib
        mode = ("bulk, link checks kept" if args.keep_keys else "bulk") if args.bulk else "normal"
        conditions = (f"load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end; a 10-million-step "
                      f"Python loop took {calibration:.2f} s before and {calibration_seconds():.2f} s after "
                      "(about 0.5 s on an idle core)")
        print(conditions)
        line = (f"full import: {stats.rows_read / seconds:,.0f} rows/s wall, "
                f"{stats.calls_stored / seconds:,.0f} calls/s "
                f"({stats.rows_read} rows, {stats.calls_stored} calls, {stats.rows_skipped} rows skipped) in "
                f"{seconds:.1f} s ({mode}, engine {args.engine}, {args.writers} writers, parallel {args.parallel}); "
                f"CPU: importer "
                f"{client_cpu:.1f} s ({stats.rows_read / client_cpu:,.0f} rows/s of CPU), grouping process "
                f"{group_cpu:.1f} s, PostgreSQL backend {backend_cpu:.1f} s ({stats.rows_read / backend_cpu:,.0f} "
                f"rows/s of CPU), whole PostgreSQL server {whole_cpu:.1f} s, all "
                f"{client_cpu + group_cpu + whole_cpu:.1f} s; peak RSS: importing process "
                f"{rss:.0f} MiB + grouping process {child_rss:.0f} MiB = {rss + child_rss:.0f} MiB")
        print(line)
        if args.record:
            record(
                f"`bench/import.py --rows {args.rows}`: synthetic Master.csv ({size_mib:.0f} MiB; inbound answered and "
                "missed, ring groups, blind transfers, outgoing and internal calls; about 1.35 rows per call), "
                "imported into a fresh schema on the embedded PostgreSQL of the same machine.\n\n"
                f"- csv.reader alone over the file: {floor_line}\n"
                f"- parse + group + build calls, no database: {parse_line}\n"
                f"- {line}\n"
                f"- conditions: {conditions}\n"
                f"- machine: {machine_details()}\n"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
