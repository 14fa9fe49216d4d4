"""A realistic call history for the report benchmarks, generated inside PostgreSQL.

`python -m bench.report_data --dsn postgresql://postgres@127.0.0.1:5432/test --calls 10000000`
(re)creates the database `calltrail_bench` on that server with: 2 branches, 4 telephone systems
(Asia/Tehran), 200 agents on 50 extensions per system (one extension in ten re-assigned mid-year),
50,000 identities (10% with a second, landline number), and the calls of the Jalali year 1404
spread evenly: 25% missed, 37% received, 33% outgoing (15% of them unanswered), 5% internal; 10%
of all calls transferred once or twice. 70% of outside numbers belong to an identity.

Rows are made with generate_series in SQL, 1 million per statement, with the secondary indexes
and the rollup triggers off during the load, then rebuilt (the way a bulk import should run).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from ingest import store

DATABASE = "calltrail_bench"
YEAR_START = "2025-03-21 00:00:00+03:30"     # 1404/01/01 in Tehran
YEAR_END = "2026-03-21 00:00:00+03:30"       # 1405/01/01
CHUNK = 1_000_000
SECONDARY_INDEXES = ("calls_start", "calls_system_start", "calls_agents", "calls_rang", "calls_external_number")

DIRECTORY_SQL = """
INSERT INTO branches (name, title) VALUES ('north', 'شعبه شمال'), ('south', 'شعبه جنوب');
INSERT INTO telephone_systems (branch_id, name, title)
SELECT b.id, 'pbx' || n, 'سیستم ' || n FROM generate_series(1, 4) n
JOIN branches b ON b.name = CASE WHEN n <= 2 THEN 'north' ELSE 'south' END;
INSERT INTO users (username, full_name, roles)
SELECT 'agent' || lpad(n::text, 3, '0'), 'کارشناس ' || n, ARRAY['agent'] FROM generate_series(1, 200) n;
INSERT INTO users (username, full_name, roles) VALUES ('manager', 'مدیر فروش', ARRAY['sales_manager']);
-- Extension 100 + e of system s belongs to agent (s - 1) * 50 + e + 1; every tenth extension
-- passes to the next agent on 1404/07/01.
INSERT INTO extension_assignments (system_id, extension, user_id, valid_from, valid_to)
SELECT s.id, (100 + e)::text, u.id, '2020-01-01', CASE WHEN e % 10 = 0 THEN timestamptz '2025-09-23 00:00+03:30' END
FROM telephone_systems s CROSS JOIN generate_series(0, 49) e
JOIN users u ON u.username = 'agent' || lpad(((right(s.name, 1)::int - 1) * 50 + e + 1)::text, 3, '0');
INSERT INTO extension_assignments (system_id, extension, user_id, valid_from)
SELECT s.id, (100 + e)::text, u.id, '2025-09-23 00:00+03:30'
FROM telephone_systems s CROSS JOIN generate_series(0, 49, 10) e
JOIN users u ON u.username = 'agent' || lpad(((right(s.name, 1)::int - 1) * 50 + (e + 1) % 50 + 1)::text, 3, '0');
INSERT INTO identities (external_id, kind, name, profile_url)
SELECT 'crm-' || n, CASE WHEN n % 5 = 0 THEN 'organisation' ELSE 'person' END, 'مشتری ' || n,
       '/identities/' || n
FROM generate_series(1, 50000) n;
INSERT INTO identity_numbers (identity_id, number_e164, raw)
SELECT i.id, '+98912' || lpad(n::text, 7, '0'), '0912' || lpad(n::text, 7, '0')
FROM generate_series(1, 50000) n JOIN identities i ON i.external_id = 'crm-' || n;
INSERT INTO identity_numbers (identity_id, number_e164, raw)
SELECT i.id, '+9821' || lpad((30000000 + n)::text, 8, '0'), lpad((30000000 + n)::text, 8, '0')
FROM generate_series(10, 50000, 10) n JOIN identities i ON i.external_id = 'crm-' || n;
"""

# $1 first call number, $2 last, $3 total calls (to spread them over the year).
CALLS_SQL = """
WITH g AS (
    SELECT n, random() AS r_kind, random() AS r_ext, random() AS r_ext2, random() AS r_number,
           random() AS r_transfer, random() AS r_wait, random() AS r_talk, random() AS r_jitter
    FROM generate_series($1::bigint, $2::bigint) n
), shaped AS (
    SELECT g.*,
           1 + n % 4 AS system_id,    -- pbx1..pbx4 got ids 1..4 in this fresh database
           timestamptz '""" + YEAR_START + """' + ((n - 1 + r_jitter) * (extract(epoch FROM
               timestamptz '""" + YEAR_END + """' - timestamptz '""" + YEAR_START + """') / $3)) * interval '1 second'
               AS start_time,
           CASE WHEN r_kind < 0.25 THEN 'missed' WHEN r_kind < 0.62 THEN 'received'
                WHEN r_kind < 0.95 THEN 'outgoing' ELSE 'internal' END AS kind,
           (100 + floor(r_ext * 50))::int::text AS ext1,
           (100 + floor(r_ext2 * 50))::int::text AS ext2,
           CASE WHEN r_number < 0.7 THEN '+98912' || lpad((1 + floor(r_number / 0.7 * 50000))::int::text, 7, '0')
                ELSE '+98935' || lpad(floor(r_number * 9999999)::int::text, 7, '0') END AS outside
    FROM g
), calls_made AS (
    SELECT s.*,
           CASE kind WHEN 'missed' THEN 'missed' WHEN 'outgoing' THEN
                CASE WHEN r_transfer < 0.15 THEN 'unanswered' ELSE 'answered' END ELSE 'answered' END AS status,
           -- 10% of all calls are transferred: 27% of received calls.
           CASE WHEN kind = 'received' AND r_transfer < 0.27 THEN
                CASE WHEN r_transfer < 0.05 THEN 3 ELSE 2 END ELSE 1 END AS turns,
           round((2 + r_wait * 40)::numeric, 3) AS wait,
           round((15 + r_talk * r_talk * 900)::numeric, 3) AS talk
    FROM shaped s
)
INSERT INTO calls (system_id, call_id, linkedids, direction, status, reason, caller, callee, external_number,
                   start_time, answer_time, end_time, wait_seconds, talk_seconds, duration_seconds,
                   transfer_count, agents, rang, source)
SELECT system_id, 'bench-' || n, ARRAY['bench-' || n],
       CASE kind WHEN 'missed' THEN 'incoming' WHEN 'received' THEN 'incoming' ELSE kind END,
       status,
       CASE WHEN status = 'answered' THEN NULL WHEN kind = 'missed' THEN
            CASE WHEN r_talk < 0.6 THEN 'abandoned' ELSE 'no_answer' END ELSE 'no_answer' END,
       CASE WHEN kind IN ('missed', 'received') THEN '0' || substr(outside, 4) ELSE ext1 END,
       CASE kind WHEN 'outgoing' THEN '0' || substr(outside, 4) WHEN 'internal' THEN ext2 ELSE '02191000000' END,
       CASE WHEN kind = 'internal' THEN NULL ELSE outside END,
       start_time,
       CASE WHEN status = 'answered' THEN start_time + wait * interval '1 second' END,
       start_time + (wait + CASE WHEN status = 'answered' THEN talk ELSE 0 END) * interval '1 second',
       wait, CASE WHEN status = 'answered' THEN talk ELSE 0 END,
       wait + CASE WHEN status = 'answered' THEN talk ELSE 0 END,
       CASE WHEN status = 'answered' THEN turns ELSE 0 END,
       CASE WHEN status <> 'answered' THEN '{}'::text[]
            WHEN kind = 'internal' THEN ARRAY[ext2]
            WHEN turns = 1 THEN ARRAY[ext1]
            WHEN turns = 2 THEN ARRAY[ext1, ext2]
            ELSE ARRAY[ext1, ext2, (100 + (ext2::int - 99) % 50)::text] END,
       CASE WHEN kind = 'missed' THEN ARRAY[ext1, ext2] WHEN kind = 'received' THEN ARRAY[ext1]
            WHEN kind = 'internal' THEN ARRAY[ext2] ELSE '{}'::text[] END,
       'cdr'
FROM calls_made
"""


def with_database(dsn: str, database: str) -> str:
    """`dsn` pointing at another database on the same server."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


async def generate(dsn: str, calls: int) -> str:
    """Create (or re-create) the bench database and fill it; returns its DSN."""
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await admin.close()
    target = with_database(dsn, DATABASE)
    conn = await asyncpg.connect(target, command_timeout=None)
    try:
        await store.init_schema(conn)
        await conn.execute(DIRECTORY_SQL)
        await conn.execute("SET maintenance_work_mem = '1GB'")
        await conn.execute("SELECT setseed(0.42)")
        for index in SECONDARY_INDEXES:
            await conn.execute(f"DROP INDEX {index}")
        await conn.execute("ALTER TABLE calls DISABLE TRIGGER USER")
        started = time.perf_counter()
        for first in range(1, calls + 1, CHUNK):
            last = min(first + CHUNK - 1, calls)
            await conn.execute(CALLS_SQL, first, last, calls)
            print(f"calls {last:,} of {calls:,} ({time.perf_counter() - started:.0f} s)", flush=True)
        await conn.execute("ALTER TABLE calls ENABLE TRIGGER USER")
        await store.init_schema(conn)            # re-creates the secondary indexes
        await conn.execute("SELECT report_rollup_rebuild(NULL)")
        await conn.execute("VACUUM ANALYZE")
        print(f"indexes, rollup and analyze done ({time.perf_counter() - started:.0f} s)", flush=True)
    finally:
        await conn.close()
    return target


def main() -> None:
    """Command line: generate the benchmark database."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test",
                        help="a server where CREATE DATABASE is allowed")
    parser.add_argument("--calls", type=int, default=10_000_000)
    args = parser.parse_args()
    print(asyncio.run(generate(args.dsn, args.calls)))


if __name__ == "__main__":
    main()
