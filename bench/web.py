"""Web benchmark: requests per second and latency of the report page (first page of details).

    .venv/bin/python bench/web.py                      # 10 million calls, 20 clients, 30 s
    .venv/bin/python bench/web.py --calls 1000000 --clients 20 --seconds 20

The database is `calltrail_bench` on --server when it exists and holds at least --calls calls
(the reports benchmark's, bench/reports.py); otherwise `calltrail_bench_web` is generated here
(SQL generate_series: 4 telephone systems in 2 branches, 50 agents each, one Jalali year of calls,
60% incoming / 30% outgoing / 10% internal, the per-day rollup filled by schema.sql's triggers).
A user `bench_web` (sales manager) is added for the run and removed after it.

The server is the real `calltrail-report serve` (one uvicorn process) on a free loopback port.
Each client logs in once, then posts the seed's form in a closed loop: one Jalali month (the
latest in the data), by day, all systems, "show" (chart, per-day and grand totals, first 100 call
rows). Latency is measured from send to full response on the client side, on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import machine_details, peak_rss_mib
from ingest import store
from reports import calendar as cal
from reports import users

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench-web-password"
CHUNK = 1_000_000
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')

GENERATE_CALLS = """
INSERT INTO calls (system_id, call_id, linkedids, direction, status, reason, caller, callee, external_number,
                   start_time, answer_time, end_time, wait_seconds, talk_seconds, duration_seconds,
                   transfer_count, agents, rang, source)
SELECT system_id, 'w' || g, ARRAY['w' || g], direction, status,
       CASE status WHEN 'answered' THEN NULL WHEN 'missed' THEN 'abandoned' ELSE 'no_answer' END,
       CASE direction WHEN 'incoming' THEN outside WHEN 'outgoing' THEN ext ELSE ext END,
       CASE direction WHEN 'incoming' THEN '02188000000' WHEN 'outgoing' THEN outside ELSE ext2 END,
       CASE WHEN direction = 'internal' THEN NULL ELSE '+98' || substr(outside, 2) END,
       start, CASE WHEN status = 'answered' THEN start + wait * interval '1 second' END,
       start + (wait + talk) * interval '1 second', wait, talk, wait + talk,
       CASE WHEN status = 'answered' THEN transfers ELSE 0 END,
       CASE WHEN status = 'answered' THEN ARRAY[ext] ELSE '{}' END, ARRAY[ext], 'cdr'
FROM (
    SELECT g, ($3::bigint[])[1 + g % 4] AS system_id, start,
           direction,
           CASE WHEN direction = 'incoming' AND r2 < 0.2 THEN 'missed'
                WHEN direction <> 'incoming' AND r2 < 0.12 THEN 'unanswered' ELSE 'answered' END AS status,
           (100 + g % 50)::text AS ext, (100 + (g / 7) % 50)::text AS ext2,
           '0912' || lpad(((g * 7919) % 10000000)::text, 7, '0') AS outside,
           (r2 * 40)::int AS wait,
           CASE WHEN direction = 'incoming' AND r2 < 0.2 THEN 0
                WHEN direction <> 'incoming' AND r2 < 0.12 THEN 0 ELSE 20 + (r3 * 400)::int END AS talk,
           1 + (r3 < 0.15)::int + (r3 < 0.03)::int AS transfers
    FROM (
        SELECT g, random() AS r1, random() AS r2, random() AS r3,
               $4::timestamptz + (g * $5::double precision + random() * 30) * interval '1 second' AS start,
               CASE WHEN (g % 10) < 6 THEN 'incoming' WHEN (g % 10) < 9 THEN 'outgoing' ELSE 'internal' END
                   AS direction
        FROM generate_series($1::bigint, $2::bigint) AS g
    ) AS raw
) AS call
"""


def with_database(dsn: str, database: str) -> str:
    """`dsn` pointing at another database on the same server."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


async def call_count(dsn: str) -> int:
    """Calls in the database at `dsn`, or -1 when it does not exist or has no schema."""
    try:
        conn = await asyncpg.connect(dsn)
    except asyncpg.InvalidCatalogNameError:
        return -1
    try:
        if not await conn.fetchval("SELECT to_regclass('calls') IS NOT NULL"):
            return -1
        return int(await conn.fetchval("SELECT count(*) FROM calls"))
    finally:
        await conn.close()


async def generate(server: str, database: str, calls: int) -> str:
    """Create `database` with the schema and `calls` synthetic calls over Jalali year 1404."""
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{database}"')
    finally:
        await admin.close()
    dsn = with_database(server, database)
    conn = await asyncpg.connect(dsn)
    try:
        await store.init_schema(conn)
        systems = []
        for index, (name, branch) in enumerate(
            [("tehran-1", "tehran"), ("tehran-2", "tehran"), ("shiraz-1", "shiraz"), ("tabriz-1", "tabriz")]
        ):
            branch_id = await conn.fetchval(
                "INSERT INTO branches (name) VALUES ($1) ON CONFLICT (name) DO UPDATE SET name = $1 RETURNING id",
                branch,
            )
            system_id = await conn.fetchval(
                "INSERT INTO telephone_systems (branch_id, name, title) VALUES ($1, $2, $3) RETURNING id",
                branch_id, name, f"سیستم {index + 1}",
            )
            systems.append(system_id)
        await conn.execute(
            """INSERT INTO users (username, full_name, roles)
               SELECT 'agent' || e, 'کارشناس ' || e, ARRAY['agent'] FROM generate_series(100, 149) AS e"""
        )
        await conn.execute(
            """INSERT INTO extension_assignments (system_id, extension, user_id, valid_from)
               SELECT s, substr(u.username, 6), u.id, '2020-01-01' FROM users u, unnest($1::bigint[]) AS s
               WHERE u.username LIKE 'agent%'""",
            systems,
        )
        await conn.execute(
            """INSERT INTO identities (kind, name) SELECT 'person', 'مشتری ' || i FROM generate_series(1, 20000) AS i"""
        )
        await conn.execute(
            """INSERT INTO identity_numbers (identity_id, number_e164)
               SELECT id, '+98912' || lpad(((id * 7919 * 3) % 10000000)::text, 7, '0') FROM identities"""
        )
        first = cal.calendar_period("year", 1404, None, "jalali")[0]
        start = cal.local_midnight(first, ZoneInfo("Asia/Tehran"))
        spacing = 365 * 86400 / calls
        done = 0
        began = time.perf_counter()
        while done < calls:
            upto = min(calls, done + CHUNK)
            await conn.execute(GENERATE_CALLS, done + 1, upto, systems, start, spacing)
            done = upto
            print(f"  generated {done:,} calls ({time.perf_counter() - began:.0f} s)", flush=True)
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return dsn


async def add_bench_user(dsn: str) -> None:
    """The sales manager the clients log in as."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DELETE FROM users WHERE username = 'bench_web'")
        await users.add_user(conn, "bench_web", full_name="محک وب", roles=["sales_manager"], password=PASSWORD)
    finally:
        await conn.close()


async def remove_bench_user(dsn: str) -> None:
    """Leave the (shared) benchmark database as it was."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DELETE FROM users WHERE username = 'bench_web'")
    finally:
        await conn.close()


async def latest_month(dsn: str) -> tuple[int, int]:
    """Jalali (year, month) of the latest call: the month the clients ask for."""
    conn = await asyncpg.connect(dsn)
    try:
        latest = await conn.fetchval("SELECT max(start_time) FROM calls")
    finally:
        await conn.close()
    year, month, _ = cal.split(latest.astimezone(ZoneInfo("Asia/Tehran")).date(), "jalali")
    # The last month may be partial: take the one before it, a full month.
    return (year, month - 1) if month > 1 else (year - 1, 12)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def logged_in(base: str) -> tuple[httpx.AsyncClient, str]:
    """A client with a session of `bench_web`, and its CSRF token."""
    client = httpx.AsyncClient(base_url=base, timeout=60)
    page = await client.get("/login")
    token = CSRF.search(page.text)
    assert token
    response = await client.post("/login", data={"username": "bench_web", "password": PASSWORD,
                                                 "csrf_token": token.group(1)})
    assert response.status_code == 303, response.text
    token = CSRF.search((await client.get("/report")).text)
    assert token
    return client, token.group(1)


async def client_loop(session: tuple[httpx.AsyncClient, str], form: dict[str, str], stop_at: float,
                      latencies: list[float], errors: list[str], page_sizes: list[int]) -> None:
    """Post the report form until `stop_at`, recording each latency."""
    client, token = session
    data = {**form, "csrf_token": token}
    try:
        while time.perf_counter() < stop_at:
            began = time.perf_counter()
            response = await client.post("/report", data=data)
            elapsed = time.perf_counter() - began
            if response.status_code != 200 or "data-call=" not in response.text:
                errors.append(f"{response.status_code}: {response.text[:200]}")
                continue
            latencies.append(elapsed)
            page_sizes.append(response.text.count("data-call="))
    finally:
        await client.aclose()


def percentile(values: list[float], fraction: float) -> float:
    """The `fraction` percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def server_cpu_seconds(pid: int) -> float:
    """User + system CPU time the server process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_load(base: str, form: dict[str, str], clients: int, seconds: float, pid: int) -> dict[str, float]:
    """Warm up, log every client in, then `clients` closed-loop clients for `seconds`.

    Also the server's CPU time per request: on a shared machine the latencies depend on the
    other load, the CPU the server spends on a request much less.
    """
    warm: list[float] = []
    await client_loop(await logged_in(base), form, time.perf_counter() + 3, warm, [], [])
    sessions = [await logged_in(base) for _ in range(clients)]
    latencies: list[float] = []
    errors: list[str] = []
    sizes: list[int] = []
    began = time.perf_counter()
    cpu_began = server_cpu_seconds(pid)
    stop_at = began + seconds
    await asyncio.gather(*(client_loop(s, form, stop_at, latencies, errors, sizes) for s in sessions))
    wall = time.perf_counter() - began
    cpu = server_cpu_seconds(pid) - cpu_began
    if errors:
        raise SystemExit(f"{len(errors)} failed requests, first: {errors[0]}")
    return {
        "requests": len(latencies), "rps": len(latencies) / wall, "p50": percentile(latencies, 0.5) * 1000,
        "p95": percentile(latencies, 0.95) * 1000, "p99": percentile(latencies, 0.99) * 1000,
        "max": max(latencies) * 1000, "mean": statistics.fmean(latencies) * 1000,
        "single": statistics.median(warm) * 1000, "rows": float(statistics.median(sizes)),
        "cpu_ms": cpu / max(len(latencies), 1) * 1000,
    }


def server_rss_mib(pid: int) -> float:
    """Peak resident memory of the server process (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    """Generate or reuse the database, start the server, load it, print and record the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default=os.environ.get("CALLTRAIL_BENCH_SERVER",
                                                           "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--calls", type=int, default=10_000_000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--record", action="store_true", help="append the figures to bench/RESULTS.md")
    args = parser.parse_args()

    dsn = with_database(args.server, "calltrail_bench")
    found = asyncio.run(call_count(dsn))
    load_before = os.getloadavg()[0]
    if found < args.calls:
        dsn = with_database(args.server, "calltrail_bench_web")
        found = asyncio.run(call_count(dsn))
        if found < args.calls:
            print(f"generating {args.calls:,} calls into calltrail_bench_web ...", flush=True)
            began = time.perf_counter()
            dsn = asyncio.run(generate(args.server, "calltrail_bench_web", args.calls))
            print(f"generated in {time.perf_counter() - began:.0f} s", flush=True)
            found = asyncio.run(call_count(dsn))
    asyncio.run(add_bench_user(dsn))
    year, month = asyncio.run(latest_month(dsn))
    form = {"period": "month", "calendar": "jalali", "year": str(year), "month": str(month), "by": "day",
            "type": "all", "format": "pdf", "action": "show"}
    port = free_port()
    env = {**os.environ, "CALLTRAIL_DSN": dsn, "CALLTRAIL_WEB_SECRET": "bench-web-secret-0123456789"}
    server = subprocess.Popen([str(Path(sys.executable).parent / "calltrail-report"), "serve", "--listen",
                               f"127.0.0.1:{port}"], cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(base + "/healthz").text == "ok":
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        result = asyncio.run(run_load(base, form, args.clients, args.seconds, server.pid))
        rss = server_rss_mib(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=20)
        asyncio.run(remove_bench_user(dsn))
    line = (
        f"| {found:,} calls, {args.clients} clients, {args.seconds:.0f} s | Jalali {year}/{month:02d} by day, "
        f"all systems, first {result['rows']:.0f} rows | {result['rps']:.1f} req/s | {result['p50']:.0f} ms | "
        f"{result['p95']:.0f} ms | {result['p99']:.0f} ms | {result['single']:.0f} ms | {rss:.0f} MiB | "
        f"{load_before:.1f} |"
    )
    print(f"requests: {result['requests']}, req/s {result['rps']:.1f}, p50 {result['p50']:.0f} ms, "
          f"p95 {result['p95']:.0f} ms, p99 {result['p99']:.0f} ms, max {result['max']:.0f} ms, "
          f"one client alone {result['single']:.0f} ms, server CPU {result['cpu_ms']:.1f} ms per request, "
          f"server peak RSS {rss:.0f} MiB, "
          f"bench peak RSS {peak_rss_mib():.0f} MiB")
    print(line)
    if args.record:
        record(line)


def record(line: str) -> None:
    """Append the result row under "## Web" in bench/RESULTS.md (the section is created when missing)."""
    path = ROOT / "bench" / "RESULTS.md"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    header = (
        "\n## Web\n\n"
        "`bench/web.py`: the report page (\"show\": chart, per-day and grand totals, first page of call rows)\n"
        "posted by closed-loop clients to one `calltrail-report serve` process; client and server on the same\n"
        "machine. Target: p99 under 300 ms with 20 clients.\n\n"
        "| data, load | request | throughput | p50 | p95 | p99 | one client alone | server RSS | load avg before |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
    )
    if "\n## Web\n" not in text:
        text = text.rstrip("\n") + "\n" + header
        path.write_text(text + f"{line}\n\nMachine: {machine_details()}\n", encoding="utf-8")
        return
    # Insert the row at the end of the Web table.
    start = text.index("\n## Web\n")
    following = text.find("\n## ", start + 1)
    section = text[start:following] if following >= 0 else text[start:]
    rows_end = section.rfind("|\n") + 2
    section = section[:rows_end] + f"{line}\n" + section[rows_end:]
    if machine_details() not in section:
        section = section.rstrip("\n") + f"\n\nMachine: {machine_details()}\n"
    path.write_text(text[:start] + section + (text[following:] if following >= 0 else ""), encoding="utf-8")


if __name__ == "__main__":
    main()
