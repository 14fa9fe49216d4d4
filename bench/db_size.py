"""Database size per million calls, and the store's write rate, for deploy/SCALING.md.

The 14 calls of the shared traces are assembled once (the real assembler, the real records), then
cloned with fresh ids and spread over a year in Tehran working hours, and stored with the daemon's
own `store.store_calls` in batches of 200 (the writer's batching). Afterwards: VACUUM ANALYZE, and
the size of every table with its indexes and TOAST. Usage:

    python bench/db_size.py [--calls 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import machine_details
from ingest import pg, store
from ingest.assembler import CallAssembler
from ingest.config import SystemConfig
from ingest.events import AmiParser
from ingest.records import CallRecord
from reports import demo_stream

TABLES = ("calls", "call_segments", "call_ring_attempts", "report_daily_totals", "unmapped_extensions")
BATCH = 200


def trace_records(system: SystemConfig) -> list[CallRecord]:
    """The traces' calls, as the assembler makes them."""
    records: list[CallRecord] = []
    start = datetime(2025, 3, 22, 5, tzinfo=UTC)
    for trace in demo_stream.load_traces():
        assembler, parser = CallAssembler(system), AmiParser()
        for message in demo_stream.messages(demo_stream.DemoCall(0, trace, start)):
            event = parser.parse_message(message)
            if event is not None:
                records.extend(assembler.feed(event))
    return records


def _moved(value: datetime | None, shift: timedelta) -> datetime | None:
    return None if value is None else value + shift


def clone(record: CallRecord, number: int, shift: timedelta) -> CallRecord:
    """`record` as call `number`, `shift` later (every time moved, ids made unique)."""
    def fresh(linkedid: str) -> str:
        return f"{2_000_000_000 + number}.{linkedid.rpartition('.')[2]}"

    segments = tuple(replace(s, ring_start=_moved(s.ring_start, shift), answer=s.answer + shift, end=s.end + shift)
                     for s in record.segments)
    rang = tuple(replace(r, start=r.start + shift, end=_moved(r.end, shift)) for r in record.rang)
    return replace(record, call_id=fresh(record.call_id), linkedids=tuple(fresh(x) for x in record.linkedids),
                   start=record.start + shift, end=record.end + shift, answer=_moved(record.answer, shift),
                   segments=segments, rang=rang)


async def run(dsn: str, calls: int) -> dict[str, float]:
    """Store `calls` clones; returns the write rate and the sizes."""
    conn = await store.connect(dsn)
    try:
        await store.init_schema(conn)
        await conn.execute(f"TRUNCATE {', '.join(TABLES)}, ingest_state CASCADE")
        system = SystemConfig(name="size-bench", branch="bench", trunks=("trunk",))
        system_id = await store.ensure_system(conn, system)
        templates = trace_records(system)
        rng = random.Random(8)
        per_day = calls / 365
        started = time.perf_counter()
        batch: list[CallRecord] = []
        for number in range(calls):
            day, second = divmod(number, per_day)
            shift = timedelta(days=int(day), seconds=second / per_day * 9 * 3600 + rng.random())
            batch.append(clone(rng.choice(templates), number, shift))
            if len(batch) == BATCH:
                await store.store_calls(conn, system_id, batch)
                batch = []
        await store.store_calls(conn, system_id, batch)
        seconds = time.perf_counter() - started
        await conn.execute("VACUUM ANALYZE")
        sizes = {t: float(await conn.fetchval("SELECT pg_total_relation_size($1::regclass)", t)) for t in TABLES}
        segments = await conn.fetchval("SELECT count(*) FROM call_segments")
        rings = await conn.fetchval("SELECT count(*) FROM call_ring_attempts")
    finally:
        await conn.close()
    return {"stored": calls, "seconds": seconds, "segments": segments, "rings": rings, **sizes}


async def main() -> None:
    """One run, printed as the RESULTS.md section."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args()
    configured = os.environ.get("CALLTRAIL_TEST_DSN")
    workdir = Path(tempfile.mkdtemp(prefix="calltrail-bench-size-"))
    target = None if configured else pg.start_embedded(workdir)
    try:
        r = await run(configured or (target.dsn if target else ""), args.calls)
    finally:
        if target is not None:
            pg.stop_embedded(workdir)
        shutil.rmtree(workdir, ignore_errors=True)
    million = 1_000_000 / r["stored"]
    total = sum(r[t] for t in TABLES)
    print("## Database size and write rate\n")
    print(f"Machine: {machine_details()}\n")
    print(f"`python bench/db_size.py --calls {args.calls}`: the 14 traces' calls from the real assembler, cloned "
          "with fresh ids over a year of working hours, stored by `store.store_calls` in batches of "
          f"{BATCH} on one connection (PostgreSQL embedded, same machine), then VACUUM ANALYZE.\n")
    print(f"Stored {r['stored']:,.0f} calls ({r['segments']:,.0f} segments, {r['rings']:,.0f} ring attempts) in "
          f"{r['seconds']:.1f} s: {r['stored'] / r['seconds']:,.0f} calls/s.\n")
    print("| table (with indexes and TOAST) | size | per million calls |")
    print("| --- | ---: | ---: |")
    for table in TABLES:
        print(f"| {table} | {r[table] / 2**20:,.1f} MiB | {r[table] * million / 2**30:,.2f} GiB |")
    print(f"| **total** | {total / 2**20:,.1f} MiB | **{total * million / 2**30:,.2f} GiB** |")


if __name__ == "__main__":
    asyncio.run(main())
