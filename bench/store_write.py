"""Three ways to write a batch of finished calls, timed against PostgreSQL at several batch sizes.

- `per-call`: the daemon's first writer: one upsert round trip per call, then deletes and
  executemany for the segments and ring attempts, in a transaction (kept here for comparison);
- `unnest`: `store.store_calls`: the whole batch as parallel arrays in ONE statement (between BEGIN
  and COMMIT) whose CTEs upsert calls, segments and ring attempts, register unmapped extensions and
  save the checkpoint;
- `copy`: COPY the calls into a temporary staging table, INSERT ... SELECT ... ON CONFLICT from it,
  then COPY the segments and ring attempts (after deleting those of calls stored again).

The calls are the shared traces' own calls (assembled once), cloned with fresh ids. Usage:

    python bench/store_write.py [--calls 3000] [--sizes 1,10,100,500] [--dsn DSN]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.daemon import ALL
from bench.machine import machine_details
from ingest import pg, store
from ingest.config import SystemConfig
from ingest.records import CallRecord
from ingest.replay import replay

SYSTEM = SystemConfig(name="bench-store")
Writer = Callable[[asyncpg.Connection, int, Sequence[CallRecord], str], Awaitable[None]]
_STAGE = "calltrail_bench_stage"
_COLUMNS = ", ".join((
    "system_id", "call_id", "linkedids", "direction", "status", "reason", "caller", "caller_name", "callee",
    "external_number", "start_time", "answer_time", "end_time", "wait_seconds", "talk_seconds", "duration_seconds",
    "transfer_count", "agents", "rang", "recovered", "source",
))
_UPDATE = """ON CONFLICT (system_id, call_id) DO UPDATE SET
    linkedids = EXCLUDED.linkedids, direction = EXCLUDED.direction, status = EXCLUDED.status,
    reason = EXCLUDED.reason, caller = EXCLUDED.caller, caller_name = EXCLUDED.caller_name,
    callee = EXCLUDED.callee, external_number = EXCLUDED.external_number,
    start_time = EXCLUDED.start_time, answer_time = EXCLUDED.answer_time, end_time = EXCLUDED.end_time,
    wait_seconds = EXCLUDED.wait_seconds, talk_seconds = EXCLUDED.talk_seconds,
    duration_seconds = EXCLUDED.duration_seconds, transfer_count = EXCLUDED.transfer_count,
    agents = EXCLUDED.agents, rang = EXCLUDED.rang, recovered = EXCLUDED.recovered,
    source = EXCLUDED.source, stored_at = now()"""


def trace_calls() -> list[CallRecord]:
    """The finished calls of the shared traces."""
    calls: list[CallRecord] = []
    replay([path / "ami.log" for path in ALL], SYSTEM, calls.append)
    return calls


def clones(calls: list[CallRecord], count: int, prefix: str) -> list[CallRecord]:
    """`count` calls cycling through `calls`, each with a fresh call id."""
    out = []
    for n in range(count):
        record = calls[n % len(calls)]
        call_id = f"{prefix}.{n}"
        out.append(replace(record, call_id=call_id, linkedids=(call_id, *record.linkedids[1:])))
    return out


async def per_call(conn: asyncpg.Connection, system_id: int, records: Sequence[CallRecord], checkpoint: str) -> None:
    """The first writer: one round trip per call (see the module docstring)."""
    upsert = f"INSERT INTO calls ({_COLUMNS}) VALUES ({', '.join(f'${n}' for n in range(1, 22))}) {_UPDATE} " \
             "RETURNING id, (xmax = 0) AS inserted"
    async with conn.transaction():
        pks: list[int] = []
        new: list[CallRecord] = []
        for record in records:
            row = await conn.fetchrow(upsert, *store.call_row(system_id, record, "ami"))
            pks.append(row["id"])
            if row["inserted"]:
                new.append(record)
        await conn.execute("DELETE FROM call_segments WHERE call_pk = ANY($1)", pks)
        await conn.execute("DELETE FROM call_ring_attempts WHERE call_pk = ANY($1)", pks)
        await _children(conn, dict(zip([r.call_id for r in records], pks, strict=True)), records, copy=False)
        await store._register_unmapped(conn, system_id, new)
        await store.save_checkpoint(conn, system_id, checkpoint, calls=len(new))


async def unnest(conn: asyncpg.Connection, system_id: int, records: Sequence[CallRecord], checkpoint: str) -> None:
    """What the daemon does now: `store.store_calls`, one statement."""
    await store.store_calls(conn, system_id, records, checkpoint=checkpoint)


async def copy(conn: asyncpg.Connection, system_id: int, records: Sequence[CallRecord], checkpoint: str) -> None:
    """COPY into a staging table, then one INSERT ... SELECT ... ON CONFLICT, then COPY the children."""
    async with conn.transaction():
        await conn.copy_records_to_table(
            _STAGE, records=[store.call_row(system_id, r, "ami") for r in records], columns=_COLUMNS.split(", ")
        )
        rows = await conn.fetch(
            f"INSERT INTO calls ({_COLUMNS}) SELECT {_COLUMNS} FROM {_STAGE} {_UPDATE} "
            "RETURNING id, call_id, (xmax = 0) AS inserted"
        )
        again = [r["id"] for r in rows if not r["inserted"]]
        if again:
            await conn.execute("DELETE FROM call_segments WHERE call_pk = ANY($1)", again)
            await conn.execute("DELETE FROM call_ring_attempts WHERE call_pk = ANY($1)", again)
        await _children(conn, {r["call_id"]: r["id"] for r in rows}, records, copy=True)
        inserted = {r["call_id"] for r in rows if r["inserted"]}
        await store._register_unmapped(conn, system_id, [r for r in records if r.call_id in inserted])
        await store.save_checkpoint(conn, system_id, checkpoint, calls=len(inserted))


async def _children(
    conn: asyncpg.Connection, pks: dict[str, int], records: Sequence[CallRecord], *, copy: bool
) -> None:
    segments = [(pks[r.call_id], seq, s.extension, s.began_by, s.ring_start, s.answer, s.end,
                 round(s.talk_seconds, 3), s.channel) for r in records for seq, s in enumerate(r.segments, start=1)]
    rings = [(pks[r.call_id], seq, a.extension, a.start, a.end, a.outcome)
             for r in records for seq, a in enumerate(r.rang, start=1)]
    if copy:
        await conn.copy_records_to_table("call_segments", records=segments, columns=[
            "call_pk", "seq", "extension", "began_by", "ring_start", "answer_time", "end_time", "talk_seconds",
            "channel"])
        await conn.copy_records_to_table("call_ring_attempts", records=rings, columns=[
            "call_pk", "seq", "extension", "start_time", "end_time", "outcome"])
        return
    await conn.executemany(
        "INSERT INTO call_segments (call_pk, seq, extension, began_by, ring_start, answer_time, end_time, "
        "talk_seconds, channel) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)", segments)
    await conn.executemany(
        "INSERT INTO call_ring_attempts (call_pk, seq, extension, start_time, end_time, outcome) "
        "VALUES ($1, $2, $3, $4, $5, $6)", rings)


async def measure(
    dsn: str, calls: list[CallRecord], total: int, sizes: list[int], rounds: int
) -> dict[str, dict[int, float]]:
    """calls/s for every (method, batch size): the median of `rounds` interleaved rounds."""
    conn = await asyncpg.connect(dsn)
    await conn.execute(f"CREATE TEMP TABLE {_STAGE} (LIKE calls INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
    system_id = await store.ensure_system(conn, SYSTEM)
    methods: dict[str, Writer] = {"per-call": per_call, "unnest": unnest, "copy": copy}
    samples: dict[str, dict[int, list[float]]] = {m: {s: [] for s in sizes} for m in methods}
    for round_no in range(rounds):
        for size in sizes:
            count = max(size * 3, min(total, size * 200))
            for name, method in methods.items():
                records = clones(calls, count, f"{name}-{size}-{round_no}")
                started = time.perf_counter()
                for start in range(0, count, size):
                    await method(conn, system_id, records[start:start + size], f"1:{start}")
                samples[name][size].append(count / (time.perf_counter() - started))
    await conn.close()
    return {m: {s: statistics.median(v) for s, v in by_size.items()} for m, by_size in samples.items()}


async def main() -> None:
    """Run and print the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=3000, help="calls per (method, batch size) at most")
    parser.add_argument("--sizes", default="1,10,100,500")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dsn", default=None)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="calltrail-bench-store-"))
    target = None if args.dsn else pg.start_embedded(workdir / "pg")
    dsn = args.dsn or (target.dsn if target else "")
    try:
        conn = await store.connect(dsn)
        await store.init_schema(conn)
        await conn.close()
        result = await measure(dsn, trace_calls(), args.calls, sizes, args.rounds)
    finally:
        if target is not None:
            pg.stop_embedded(workdir / "pg")
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"Machine: {machine_details()}\n")
    print("| calls per batch | " + " | ".join(result) + " |")
    print("| ---: | " + " | ".join("---:" for _ in result) + " |")
    for size in sizes:
        print(f"| {size} | " + " | ".join(f"{result[m][size]:,.0f} calls/s" for m in result) + " |")


if __name__ == "__main__":
    asyncio.run(main())
