"""End-to-end daemon benchmark: fake Asterisk (a separate process) -> TCP -> daemon -> PostgreSQL.

Runs the shared traces looped with fresh ids (`--loops`), restamped with the sending time, and
measures: events/s from the socket to committed rows at full speed; the delay from a call's last
Hangup (its end time, stamped when sent) to its row being committed (`stored_at`), p50/p99, at a
steady rate; and the daemon's RSS as calls accumulate. Usage:

    python bench/daemon.py [--loops 400] [--steady-seconds 20] [--rate 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import machine_details
from ingest import pg, store
from ingest.config import Config, DaemonConfig, SystemConfig
from ingest.daemon import Daemon
from ingest.testing.trace_stream import TraceStream

TRACES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "ami-traces"
ALL = sorted([d for d in TRACES.iterdir() if (d / "ami.log").exists()]
             + [d for d in (TRACES / "local-channels").iterdir() if (d / "ami.log").exists()])
CALLS_PER_LOOP = 14


def rss_mib() -> float:
    """Current resident set size of this process."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


async def fake_process(port: int, loops: int, rate: float | None) -> asyncio.subprocess.Process:
    """The fake Asterisk in its own process, so it does not share the daemon's core."""
    args = [sys.executable, "-m", "ingest.testing.fake_asterisk", *map(str, ALL), "--port", str(port),
            "--loops", str(loops), "--restamp"]
    if rate:
        args += ["--rate", str(rate)]
    process = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    await process.stdout.readline()  # "listening on ..."
    return process


async def run(dsn: str, workdir: Path, port: int, loops: int, rate: float | None) -> dict[str, float]:
    """One daemon run against `loops` loops of the traces; returns its figures."""
    admin = await asyncpg.connect(dsn)
    await admin.execute("TRUNCATE calls, call_segments, call_ring_attempts, ingest_state CASCADE")
    fake = await fake_process(port, loops, rate)
    system = SystemConfig(name="bench", host="127.0.0.1", port=port, username="calltrail", secret="secret")
    config = Config(dsn=dsn, journal_dir=workdir / f"journal-{time.time_ns()}", systems=(system,),
                    daemon=DaemonConfig(metrics=""))
    daemon = Daemon(config, install_signals=False)
    task = asyncio.create_task(daemon.run())
    expected = loops * CALLS_PER_LOOP
    started = time.perf_counter()
    rss: list[tuple[int, float]] = []
    stored = 0
    while stored < expected:
        await asyncio.sleep(0.5)
        stored = await admin.fetchval("SELECT count(*) FROM calls")
        rss.append((stored, rss_mib()))
    elapsed = time.perf_counter() - started
    delays = await admin.fetchrow(
        """SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY d) AS p50,
                  percentile_cont(0.99) WITHIN GROUP (ORDER BY d) AS p99
           FROM (SELECT extract(epoch FROM stored_at - end_time) AS d FROM calls) s"""
    )
    events = daemon.views[0].connection.stats.events
    daemon.stop.set()
    await task
    fake.terminate()
    await fake.wait()
    await admin.close()
    quarter = [r for s, r in rss if s >= expected // 4] or [rss[-1][1]]
    return {
        "events": events, "calls": stored, "seconds": elapsed, "events_per_s": events / elapsed,
        "p50_ms": delays["p50"] * 1000, "p99_ms": delays["p99"] * 1000,
        "rss_quarter": quarter[0], "rss_end": rss[-1][1],
    }


async def main() -> None:
    """Both runs, printed as the RESULTS.md section."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--loops", type=int, default=400)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--steady-seconds", type=float, default=20.0)
    args = parser.parse_args()
    per_loop = len(TraceStream(ALL))
    workdir = Path(tempfile.mkdtemp(prefix="calltrail-bench-daemon-"))
    configured = os.environ.get("CALLTRAIL_TEST_DSN")
    target = None if configured else pg.start_embedded(workdir / "pg")
    dsn = configured or (target.dsn if target else "")
    try:
        conn = await store.connect(dsn)
        await store.init_schema(conn)
        await conn.close()
        full = await run(dsn, workdir, 15038, args.loops, None)
        steady_loops = max(1, int(args.rate * args.steady_seconds / per_loop))
        steady = await run(dsn, workdir, 15039, steady_loops, args.rate)
    finally:
        if target is not None:
            pg.stop_embedded(workdir / "pg")
        shutil.rmtree(workdir, ignore_errors=True)
    print("## Daemon\n")
    print(f"Machine: {machine_details()}\n")
    print("`python bench/daemon.py`: the 14 shared traces looped with fresh ids and restamped, streamed by the "
          "fake Asterisk (its own process) over TCP to `calltrail-ingest run` (in-process), PostgreSQL "
          "embedded on the same 2 cores; every call committed before the clock stops.\n")
    print("| run | events | calls | seconds | events/s | hang-up to commit p50 | p99 | RSS at 1/4 | RSS at end |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, r in (("as fast as possible", full), (f"steady {args.rate:.0f} events/s", steady)):
        print(f"| {name} | {r['events']:,.0f} | {r['calls']:,.0f} | {r['seconds']:.1f} | {r['events_per_s']:,.0f} "
              f"| {r['p50_ms']:.0f} ms | {r['p99_ms']:.0f} ms | {r['rss_quarter']:.0f} MiB | {r['rss_end']:.0f} MiB |")


if __name__ == "__main__":
    asyncio.run(main())
