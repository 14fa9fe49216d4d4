"""End-to-end daemon benchmark: fake Asterisk (a separate process) -> TCP -> daemon -> PostgreSQL.

Runs the shared traces looped with fresh ids (`--loops`), restamped with the sending time, and
measures: events/s from the socket to committed rows at full speed; the delay from a call's last
Hangup (its end time, stamped when sent) to its row being committed (`stored_at`), p50/p99, at a
steady rate; the CPU each process spent per event (daemon, fake Asterisk, PostgreSQL), since the
three share the machine's cores; and the daemon's RSS as calls accumulate. `--rss-calls N` adds a
full-speed run of N calls that prints the RSS at every tenth of them (flatness), and a progress
line (UTC time, calls stored, RSS, CPU per event so far) every `--rss-every` calls, so a long soak
is usable while it runs. `--filtered` streams only what a PBX set up with
deploy/manager.conf.snippet sends (its event filters drop the noise: about 45 events per call
instead of 148). Usage:

    python bench/daemon.py [--loops 400] [--repeat 1] [--steady-seconds 20] [--rate 2000] [--filtered]
                           [--rss-calls 0] [--rss-every 50000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import machine_details
from ingest import pg, store
from ingest.config import Config, DaemonConfig, SystemConfig
from ingest.daemon import Daemon
from ingest.testing.trace_stream import FILTERED, TraceStream

TRACES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "ami-traces"
ALL = sorted([d for d in TRACES.iterdir() if (d / "ami.log").exists()]
             + [d for d in (TRACES / "local-channels").iterdir() if (d / "ami.log").exists()])
CALLS_PER_LOOP = 14
_TICK = os.sysconf("SC_CLK_TCK")


def rss_mib() -> float:
    """Current resident set size of this process."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """CPU seconds (user + system) a process used; with `children`, also its children it reaped."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:15 if children else 13]) / _TICK


def postgres_cpu(pgdata: Path | None) -> float | None:
    """CPU seconds of the embedded PostgreSQL: the postmaster, its live children and those it reaped."""
    if pgdata is None or not (pgdata / "postmaster.pid").exists():
        return None
    postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
    total = cpu_seconds(postmaster, children=True)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if parent == postmaster:
                total += cpu_seconds(int(entry.name))
    return total


@dataclass
class RunResult:
    """The figures of one run."""

    events: int
    calls: int
    seconds: float
    p50_ms: float
    p99_ms: float
    load: float
    cpu_us: dict[str, float | None]
    rss: list[tuple[int, float]] = field(default_factory=list)  # (calls stored, RSS MiB)

    @property
    def events_per_s(self) -> float:
        """End-to-end throughput."""
        return self.events / self.seconds

    def rss_at(self, fraction: float) -> float:
        """RSS when `fraction` of the calls were stored."""
        return next((r for s, r in self.rss if s >= self.calls * fraction), self.rss[-1][1])


async def fake_process(port: int, loops: int, rate: float | None, filtered: bool) -> asyncio.subprocess.Process:
    """The fake Asterisk in its own process, so it does not share the daemon's core."""
    args = [sys.executable, "-m", "ingest.testing.fake_asterisk", *map(str, ALL), "--port", str(port),
            "--loops", str(loops), "--restamp"]
    if rate:
        args += ["--rate", str(rate)]
    if filtered:
        args.append("--filtered")
    process = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    await process.stdout.readline()  # "listening on ..."
    return process


def progress(stored: int, events: int, started: float, cpu_before: tuple[float, float, float | None],
             fake_pid: int, pgdata: Path | None) -> None:
    """One line of a long run's progress, flushed at once (the log of a soak is read while it runs)."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    elapsed = time.perf_counter() - started
    cpu = (time.process_time(), cpu_seconds(fake_pid), postgres_cpu(pgdata))
    per_event = [
        "-" if b is None or a is None or not events else f"{(a - b) / events * 1e6:.1f}"
        for a, b in zip(cpu, cpu_before, strict=True)
    ]
    print(f"{now} UTC  calls {stored:>9,}  events {events:>12,}  {elapsed:>7.0f} s  "
          f"{events / max(elapsed, 1e-9):>7,.0f} events/s  RSS {rss_mib():6.1f} MiB  "
          f"CPU us/event daemon {per_event[0]} fake {per_event[1]} PostgreSQL {per_event[2]}  "
          f"load {os.getloadavg()[0]:.1f}", flush=True)


async def run(dsn: str, workdir: Path, port: int, loops: int, rate: float | None, pgdata: Path | None,
              *, filtered: bool = False, every: int = 0) -> RunResult:
    """One daemon run against `loops` loops of the traces; returns its figures."""
    admin = await asyncpg.connect(dsn)
    await admin.execute("TRUNCATE calls, call_segments, call_ring_attempts, ingest_state CASCADE")
    fake = await fake_process(port, loops, rate, filtered)
    system = SystemConfig(name="bench", host="127.0.0.1", port=port, username="calltrail", secret="secret")
    config = Config(dsn=dsn, journal_dir=workdir / f"journal-{time.time_ns()}", systems=(system,),
                    daemon=DaemonConfig(metrics=""))
    daemon = Daemon(config, install_signals=False)
    load = os.getloadavg()[0]
    cpu_before = (time.process_time(), cpu_seconds(fake.pid), postgres_cpu(pgdata))
    task = asyncio.create_task(daemon.run())
    expected = loops * CALLS_PER_LOOP
    started = time.perf_counter()
    rss: list[tuple[int, float]] = []
    stored = 0
    step = max(1, expected // 100)  # about 100 RSS samples whatever the length: the bench must not grow
    next_progress = every
    while stored < expected:
        # The daemon's own count of committed calls: polling count(*) would load PostgreSQL.
        await asyncio.sleep(0.2)
        writer = daemon.views[0].writer if daemon.views else None
        stored = writer.stored if writer is not None else 0
        if not rss or stored // step > rss[-1][0] // step or stored >= expected:
            rss.append((stored, rss_mib()))
        if every and stored >= next_progress:
            next_progress = (stored // every + 1) * every
            progress(stored, daemon.views[0].connection.stats.events, started, cpu_before, fake.pid, pgdata)
    elapsed = time.perf_counter() - started
    events = daemon.views[0].connection.stats.events
    cpu_after = (time.process_time(), cpu_seconds(fake.pid), postgres_cpu(pgdata))
    daemon.stop.set()
    await task
    fake.terminate()
    await fake.wait()
    delays = await admin.fetchrow(
        """SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY d) AS p50,
                  percentile_cont(0.99) WITHIN GROUP (ORDER BY d) AS p99, count(*) AS calls
           FROM (SELECT extract(epoch FROM stored_at - end_time) AS d FROM calls) s"""
    )
    await admin.close()
    if delays["calls"] != expected:
        print(f"warning: {delays['calls']} calls in the database, {expected} expected", file=sys.stderr)
    cpu: dict[str, float | None] = {}
    for name, before, after in zip(("daemon", "fake Asterisk", "PostgreSQL"), cpu_before, cpu_after, strict=True):
        cpu[name] = None if before is None or after is None else (after - before) / events * 1e6
    return RunResult(events, delays["calls"], elapsed, delays["p50"] * 1000, delays["p99"] * 1000, load, cpu, rss)


def cpu_text(value: float | None) -> str:
    """A CPU-per-event cell."""
    return "-" if value is None else f"{value:.1f} us"


async def main() -> None:
    """The runs, printed as the RESULTS.md section."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--loops", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=1, help="full-speed runs (the machine may be shared)")
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--steady-seconds", type=float, default=20.0)
    parser.add_argument("--rss-calls", type=int, default=0, help="also a full-speed RSS run of this many calls")
    parser.add_argument("--rss-every", type=int, default=50_000, help="progress line every this many calls")
    parser.add_argument("--filtered", action="store_true",
                        help="stream only what deploy/manager.conf.snippet lets through (a production PBX)")
    args = parser.parse_args()
    per_loop = len(TraceStream(ALL, exclude=FILTERED if args.filtered else frozenset()))
    print(f"Stream: {'filtered as deploy/manager.conf.snippet does' if args.filtered else 'unfiltered'}, "
          f"{per_loop} events per {CALLS_PER_LOOP} calls ({per_loop / CALLS_PER_LOOP:.1f} per call); "
          f"load {os.getloadavg()[0]:.2f}; started {datetime.now(UTC):%Y-%m-%d %H:%M} UTC", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="calltrail-bench-daemon-"))
    configured = os.environ.get("CALLTRAIL_TEST_DSN")
    target = None if configured else pg.start_embedded(workdir / "pg")
    dsn = configured or (target.dsn if target else "")
    pgdata = target.embedded_dir if target is not None else None
    runs: list[tuple[str, RunResult]] = []
    rss_run: RunResult | None = None
    try:
        conn = await store.connect(dsn)
        await store.init_schema(conn)
        await conn.close()
        for _ in range(args.repeat):
            runs.append(("as fast as possible",
                         await run(dsn, workdir, 15038, args.loops, None, pgdata, filtered=args.filtered)))
        if args.steady_seconds > 0:
            steady_loops = max(1, int(args.rate * args.steady_seconds / per_loop))
            steady = await run(dsn, workdir, 15039, steady_loops, args.rate, pgdata, filtered=args.filtered)
            runs.append((f"steady {args.rate:.0f} events/s", steady))
        if args.rss_calls:
            rss_loops = -(-args.rss_calls // CALLS_PER_LOOP)
            rss_run = await run(dsn, workdir, 15040, rss_loops, None, pgdata, filtered=args.filtered,
                                every=args.rss_every)
    finally:
        if target is not None:
            pg.stop_embedded(workdir / "pg")
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"Machine: {machine_details()}\n")
    print("| run | load | events | calls | seconds | events/s | hang-up to commit p50 | p99 "
          "| CPU/event daemon | fake Asterisk | PostgreSQL | RSS at 1/4 | RSS at end |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, r in runs:
        print(f"| {name} | {r.load:.1f} | {r.events:,} | {r.calls:,} | {r.seconds:.1f} | {r.events_per_s:,.0f} "
              f"| {r.p50_ms:.0f} ms | {r.p99_ms:.0f} ms | {cpu_text(r.cpu_us['daemon'])} "
              f"| {cpu_text(r.cpu_us['fake Asterisk'])} | {cpu_text(r.cpu_us['PostgreSQL'])} "
              f"| {r.rss_at(0.25):.0f} MiB | {r.rss[-1][1]:.0f} MiB |")
    if rss_run is not None:
        print(f"\nRSS run: {rss_run.calls:,} calls, {rss_run.events:,} events in {rss_run.seconds:.0f} s "
              f"({rss_run.events_per_s:,.0f} events/s, load {rss_run.load:.1f}); daemon RSS by calls stored:\n")
        tenths = [rss_run.rss_at(n / 10) for n in range(1, 11)]
        print("| calls stored | " + " | ".join(f"{n * 10}%" for n in range(1, 11)) + " |")
        print("| --- | " + " | ".join("---:" for _ in tenths) + " |")
        print("| RSS (MiB) | " + " | ".join(f"{r:.1f}" for r in tenths) + " |")


if __name__ == "__main__":
    asyncio.run(main())
