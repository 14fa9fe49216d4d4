"""Web benchmark: requests per second and latency of the report page (first page of details).

    .venv/bin/python bench/web.py                      # 10 million calls, 20 clients, 30 s
    .venv/bin/python bench/web.py --calls 1000000 --clients 20 --seconds 20 --workers 2

The database is `calltrail_bench` on --server when it exists and holds at least --calls calls
(the reports benchmark's, bench/report_data.py; brought up to the current schema by `db init`'s
code when older); otherwise `calltrail_bench_web` is generated here (SQL generate_series: 4
telephone systems in 2 branches, 50 agents each, one Jalali year of calls, 60% incoming / 30%
outgoing / 10% internal, the per-day rollup filled by schema.sql's triggers). A user `bench_web`
(sales manager) is added for the run and removed after it.

The server is the real `calltrail-report serve` (--workers processes; its default, one per CPU,
when not given) on a free loopback port. Each client logs in once, then posts the seed's form in
a closed loop on one keep-alive connection: one Jalali month (the latest full one in the data),
by day, all systems, "show" (chart, per-day and grand totals, first 100 call rows); every answer
must be a whole 200 report page with call rows. Latency is measured from send to full response on
the client side. The clients are a minimal HTTP/1.1 client on asyncio streams (bench/web_client.py),
cheap enough not to take the CPU the server needs: their CPU per request is printed beside the
server's (all its processes) and PostgreSQL's (the backends of the server's pool).
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import machine_details, peak_rss_mib
from bench.web_client import Client, Response
from ingest import store
from reports import calendar as cal
from reports import users

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench-web-password"
CHUNK = 1_000_000
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
TABLE_HEADER = (
    "| data, load | workers | throughput | p50 | p95 | p99 | one client alone | server CPU/req | PostgreSQL CPU/req "
    "| clients CPU/req | server RSS | load avg before |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
)
# The server's pool connects under this name, so its PostgreSQL backends can be found and timed.
APP_NAME = "calltrail_bench_web"

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


async def logged_in(port: int) -> tuple[Client, str]:
    """A client with a session of `bench_web`, and its CSRF token."""
    client = Client("127.0.0.1", port)
    token = CSRF.search((await client.request("GET", "/login")).text)
    assert token
    response = await client.request("POST", "/login", {"username": "bench_web", "password": PASSWORD,
                                                       "csrf_token": token.group(1)})
    assert response.status == 303, response.text
    token = CSRF.search((await client.request("GET", "/report")).text)
    assert token
    return client, token.group(1)


def page_problem(response: Response) -> str | None:
    """Why `response` is not a full report page with its rows (None when it is one)."""
    if response.status != 200:
        return f"HTTP {response.status}: {response.text[:200]}"
    body = response.body
    if not body.rstrip().endswith(b"</html>") or b'id="report-output"' not in body:
        return f"not a whole report page: {body[-200:]!r}"
    if body.count(b"data-call=") == 0:
        return "a report page without call rows"
    return None


async def client_loop(session: tuple[Client, str], form: dict[str, str], stop_at: float,
                      latencies: list[float], errors: list[str], page_sizes: list[int]) -> None:
    """Post the report form until `stop_at`, recording each latency."""
    client, token = session
    data = {**form, "csrf_token": token}
    try:
        while time.perf_counter() < stop_at:
            began = time.perf_counter()
            response = await client.request("POST", "/report", data)
            elapsed = time.perf_counter() - began
            problem = page_problem(response)
            if problem:
                errors.append(problem)
                continue
            latencies.append(elapsed)
            page_sizes.append(response.body.count(b"data-call="))
    finally:
        await client.close()


def percentile(values: list[float], fraction: float) -> float:
    """The `fraction` percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time process `pid` has used so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_processes(pid: int) -> list[int]:
    """The server process and its children (uvicorn's spawned workers, multiprocessing's resource tracker)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return [pid] + [int(c) for c in children]


def worker_count(pid: int) -> int:
    """How many worker processes serve requests (1: the server process itself)."""
    spawned = 0
    for child in server_processes(pid)[1:]:
        try:
            spawned += b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
    return max(1, spawned)


async def backend_pids(dsn: str) -> list[int]:
    """PostgreSQL backends serving the benchmark's server (its pool connects with APP_NAME)."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE application_name = $1", APP_NAME)
    finally:
        await conn.close()
    return [r["pid"] for r in rows]


class CpuMeter:
    """CPU seconds used by the server's processes, the clients (this process) and PostgreSQL's backends."""

    def __init__(self, server_pid: int, dsn: str) -> None:
        self.server_pid = server_pid
        self.dsn = dsn

    async def sample(self) -> dict[str, dict[int, float] | float]:
        """CPU seconds so far, per process for the server and the backends."""
        return {
            "server": {p: cpu_seconds(p) for p in server_processes(self.server_pid)},
            "postgres": {p: cpu_seconds(p) for p in await backend_pids(self.dsn)},
            "clients": time.process_time(),
        }

    @staticmethod
    def used(before: dict[str, dict[int, float] | float], after: dict[str, dict[int, float] | float]
             ) -> dict[str, float]:
        """CPU seconds between two samples (processes started in between count from zero)."""
        spent: dict[str, float] = {}
        for key, value in after.items():
            earlier = before[key]
            if isinstance(value, dict):
                assert isinstance(earlier, dict)
                spent[key] = sum(cpu - earlier.get(pid, 0.0) for pid, cpu in value.items())
            else:
                assert isinstance(earlier, float)
                spent[key] = value - earlier
        return spent


async def run_load(port: int, form: dict[str, str], clients: int, seconds: float, meter: CpuMeter
                   ) -> dict[str, float]:
    """Warm up, log every client in, then `clients` closed-loop clients for `seconds`.

    Also the CPU time per request of the server, the clients and PostgreSQL: on a shared machine
    the latencies depend on the other load, the CPU spent on a request much less.
    """
    warm: list[float] = []
    await client_loop(await logged_in(port), form, time.perf_counter() + 3, warm, [], [])
    sessions = [await logged_in(port) for _ in range(clients)]
    latencies: list[float] = []
    errors: list[str] = []
    sizes: list[int] = []
    before = await meter.sample()
    began = time.perf_counter()
    stop_at = began + seconds
    await asyncio.gather(*(client_loop(s, form, stop_at, latencies, errors, sizes) for s in sessions))
    wall = time.perf_counter() - began
    spent = CpuMeter.used(before, await meter.sample())
    if errors:
        raise SystemExit(f"{len(errors)} failed requests, first: {errors[0]}")
    count = max(len(latencies), 1)
    return {
        "requests": len(latencies), "rps": len(latencies) / wall, "p50": percentile(latencies, 0.5) * 1000,
        "p95": percentile(latencies, 0.95) * 1000, "p99": percentile(latencies, 0.99) * 1000,
        "max": max(latencies) * 1000, "mean": statistics.fmean(latencies) * 1000,
        "single": statistics.median(warm) * 1000, "rows": float(statistics.median(sizes)),
        "cpu_ms": spent["server"] / count * 1000, "client_cpu_ms": spent["clients"] / count * 1000,
        "pg_cpu_ms": spent["postgres"] / count * 1000, "wall": wall,
    }


def server_rss_mib(pid: int) -> float:
    """Peak resident memory of the server's processes (VmHWM, summed over the workers), in MiB."""
    total = 0.0
    for process in server_processes(pid):
        try:
            status = Path(f"/proc/{process}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1]) / 1024
    return total


async def ensure_schema(dsn: str) -> None:
    """Bring an older benchmark database up to the current schema (what `db init` does)."""
    conn = await asyncpg.connect(dsn)
    try:
        if await conn.fetchval("SELECT to_regclass('web_login_failures') IS NULL"):
            before, after = await store.init_schema(conn)
            print(f"schema updated from version {before} to {after} (db init)", flush=True)
    finally:
        await conn.close()


def wait_until_up(port: int, server: subprocess.Popen[bytes]) -> None:
    """Return once the server answers /healthz."""
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
                if sock.recv(4096).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("calltrail-report serve did not start")
        time.sleep(0.2)


def main() -> None:
    """Generate or reuse the database, start the server, load it, print and record the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default=os.environ.get("CALLTRAIL_BENCH_SERVER",
                                                           "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--calls", type=int, default=10_000_000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--workers", type=int, default=0,
                        help="server worker processes (default: the server's own default, one per CPU)")
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
    asyncio.run(ensure_schema(dsn))
    port = free_port()
    env = {**os.environ, "CALLTRAIL_DSN": f"{dsn}?application_name={APP_NAME}",
           "CALLTRAIL_WEB_SECRET": "bench-web-secret-0123456789"}
    command = [str(Path(sys.executable).parent / "calltrail-report"), "serve", "--listen", f"127.0.0.1:{port}"]
    if args.workers:
        command += ["--workers", str(args.workers)]
    server = subprocess.Popen(command, cwd=ROOT, env=env)
    try:
        wait_until_up(port, server)
        workers = worker_count(server.pid)
        result = asyncio.run(run_load(port, form, args.clients, args.seconds, CpuMeter(server.pid, dsn)))
        rss = server_rss_mib(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=20)
        asyncio.run(remove_bench_user(dsn))
    load_after = os.getloadavg()[0]
    line = (
        f"| {found:,} calls, {args.clients} clients, {args.seconds:.0f} s | {workers} | {result['rps']:.1f} req/s | "
        f"{result['p50']:.0f} ms | {result['p95']:.0f} ms | {result['p99']:.0f} ms | {result['single']:.0f} ms | "
        f"{result['cpu_ms']:.1f} ms | {result['pg_cpu_ms']:.1f} ms | {result['client_cpu_ms']:.1f} ms | "
        f"{rss:.0f} MiB | {load_before:.2f} ({load_after:.2f} after) |"
    )
    print(f"Jalali {year}/{month:02d} by day, all systems, first {result['rows']:.0f} rows; {workers} worker(s)")
    print(f"requests: {result['requests']} in {result['wall']:.1f} s, req/s {result['rps']:.1f}, "
          f"p50 {result['p50']:.0f} ms, p95 {result['p95']:.0f} ms, p99 {result['p99']:.0f} ms, "
          f"max {result['max']:.0f} ms, one client alone {result['single']:.0f} ms")
    print(f"CPU per request: server {result['cpu_ms']:.1f} ms, PostgreSQL {result['pg_cpu_ms']:.1f} ms, "
          f"clients {result['client_cpu_ms']:.1f} ms; server peak RSS {rss:.0f} MiB (all processes), "
          f"bench peak RSS {peak_rss_mib():.0f} MiB; load average {load_before:.2f} before, {load_after:.2f} after")
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
        "posted by closed-loop clients to `calltrail-report serve`; clients, server and PostgreSQL on the same\n"
        "machine. Target: p99 under 300 ms with 20 clients.\n\n"
        f"{TABLE_HEADER}"
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
