"""`calltrail-ingest run`: wires AMI connections, journals, assemblers and writers, and runs them.

Start-up order matters for losing nothing: journals open and AMI connections start first (events
are journaled from the first second, even while PostgreSQL is still unreachable); then, once the
database answers, each system replays its journal from the committed checkpoint and goes live,
and its writer starts. SIGTERM/SIGINT: log off from AMI, assemble what is queued, commit every
finished call and the checkpoint, fsync and close the journals, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import signal
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from ingest import pg, sdnotify, store
from ingest.ami import AmiConnection
from ingest.config import Config, redact_dsn
from ingest.errors import ConfigError, DatabaseError
from ingest.journal import Journal, Position
from ingest.metrics import Metrics, SystemView, serve_http
from ingest.pipeline import SystemPipeline
from ingest.writer import CallWriter, DatabaseState

log = logging.getLogger(__name__)

EXPIRE_EVERY = 60.0
SHUTDOWN_FLUSH_SECONDS = 15.0


@dataclass
class Daemon:
    """The running daemon; `run()` returns the exit code once `stop` is set."""

    config: Config
    metrics_listen: str | None = None
    ami_options: dict[str, float] = field(default_factory=dict)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    views: list[SystemView] = field(default_factory=list)
    db: DatabaseState = field(default_factory=DatabaseState)
    pool: Any = None
    install_signals: bool = True
    metrics: Metrics | None = None
    http: asyncio.Server | None = None
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    async def run(self) -> int:
        """Run until `stop` is set (by a signal or a caller); returns the exit code."""
        config = self.config
        if not config.systems:
            raise ConfigError("no telephone system configured: add a [[systems]] table to the configuration")
        if self.install_signals:
            self._install_signals()
        metrics = self.metrics = Metrics(self.db)
        daemon_cfg = config.daemon
        options = {"ping_interval": daemon_cfg.ping_interval, "ping_timeout": daemon_cfg.ping_timeout,
                   **self.ami_options}
        for system in config.systems:
            journal = Journal(
                config.journal_dir / re.sub(r"[^\w.-]", "_", system.name),
                segment_bytes=daemon_cfg.journal_segment_mb << 20, max_bytes=daemon_cfg.journal_max_mb << 20,
            )
            journal.open()
            pipeline = SystemPipeline(system, journal)
            connection = AmiConnection(system, pipeline.sink, sink_many=pipeline.sink_many, **options)
            pipeline.pause_reading = connection.pause_reading
            view = SystemView(pipeline, connection)
            self.views.append(view)
            metrics.systems[system.name] = view
            self._spawn(pipeline.run(), f"pipeline-{system.name}")
        listen = daemon_cfg.metrics if self.metrics_listen is None else self.metrics_listen
        server = self.http = await self._serve(metrics, listen) if listen else None
        for view in self.views:
            await view.connection.start()
        self._spawn(self._database(metrics), "database")
        self._spawn(self._expire(), "expire")
        interval = sdnotify.watchdog_interval()
        if interval:
            self._spawn(self._watchdog(interval), "systemd-watchdog")
        sdnotify.notify("READY=1", f"STATUS=ingesting {len(self.views)} telephone system(s)")
        log.info("calltrail-ingest started: %s; journal in %s",
                 ", ".join(f"{v.connection.system.name} ({v.connection.where})" for v in self.views),
                 config.journal_dir)
        await self.stop.wait()
        sdnotify.notify("STOPPING=1", "STATUS=stopping")
        await self._shutdown()
        if server is not None:
            server.close()
            await server.wait_closed()
        log.info("calltrail-ingest stopped cleanly")
        return 0

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, self._on_signal, signum)

    def _on_signal(self, signum: int) -> None:
        log.info("received %s: stopping", signal.Signals(signum).name)
        self.stop.set()

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(self._task_done)
        self._tasks.append(task)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.critical("internal task %s failed; stopping", task.get_name(), exc_info=exc)
            self.stop.set()

    async def _serve(self, metrics: Metrics, listen: str) -> asyncio.Server:
        host, _, port = listen.rpartition(":")
        try:
            return await serve_http(metrics, host.strip("[]") or "127.0.0.1", int(port))
        except OSError as exc:
            raise ConfigError(f"cannot serve metrics on {listen}: {exc.strerror}") from exc

    # PostgreSQL: connect (retrying), then replay and start each system's writer ----------------

    async def _database(self, metrics: Metrics) -> None:
        failures = 0
        while self.pool is None:
            try:
                target = await asyncio.to_thread(pg.resolve, self.config.dsn)
                pool = await store.create_pool(target.dsn, min_size=1, max_size=len(self.views) + 1)
                async with pool.acquire() as conn:
                    await store.init_schema(conn)
                self.pool = pool
                log.info("PostgreSQL: %s", redact_dsn(target.dsn))
            except (DatabaseError, *store.RETRYABLE_ERRORS) as exc:  # type: ignore[misc]
                if failures == 0:
                    log.warning("PostgreSQL not reachable yet (%s); journaling meanwhile, retrying", exc)
                self.db.failed(exc)
                failures += 1
                await asyncio.sleep(min(30.0, 0.5 * 2 ** min(failures, 6)) * (0.75 + random.random() / 4))
        for view in self.views:
            await self._start_system(view, metrics)

    async def _start_system(self, view: SystemView, metrics: Metrics) -> None:
        pipeline = view.pipeline
        system = pipeline.system
        failures = 0
        while True:
            try:
                async with self.pool.acquire() as conn:
                    system_id = await store.ensure_system(conn, system)
                    saved = await store.load_checkpoint(conn, system_id)

                async def stored(linkedids: list[str], since: Any, system_id: int = system_id) -> set[str]:
                    async with self.pool.acquire() as conn:
                        return await store.stored_linkedids(conn, system_id, linkedids, since)

                start = Position.parse(saved) if saved else None
                await pipeline.replay(start, stored)
                break
            except store.RETRYABLE_ERRORS as exc:
                self.db.failed(exc)
                failures += 1
                await asyncio.sleep(min(30.0, 0.5 * 2 ** min(failures, 6)))
        self.db.worked(len(pipeline.pending))
        writer = CallWriter(
            pipeline, self.pool, system_id, self.db, checkpoint_interval=self.config.daemon.checkpoint_interval,
            observe_latency=metrics.write_latency.observe,
        )
        writer.checkpoint = start
        view.writer = writer
        self._spawn(writer.run(), f"writer-{system.name}")

    async def _expire(self) -> None:
        idle = self.config.daemon.stale_call_hours * 3600
        while True:
            await asyncio.sleep(EXPIRE_EVERY)
            for view in self.views:
                pipeline = view.pipeline
                if pipeline.live:
                    stale = pipeline.assembler.expire(pipeline.now(), idle=idle)
                    if stale:
                        log.warning("system %s: %d call(s) without events for %.0f h closed as recovered",
                                    pipeline.system.name, len(stale), idle / 3600)
                        pipeline.pending.extend(stale)
                        pipeline.records_ready.set()

    async def _watchdog(self, interval: float) -> None:
        while True:
            sdnotify.notify("WATCHDOG=1")
            await asyncio.sleep(interval)

    # Shutdown ----------------------------------------------------------------------------------

    async def _shutdown(self) -> None:
        for view in self.views:
            await view.connection.close()
        for view in self.views:
            view.pipeline.drain()
        writers = [view.writer for view in self.views if view.writer is not None]
        background = [t for t in self._tasks if not t.get_name().startswith("writer-")]
        for task in background:
            task.cancel()
        try:
            await asyncio.wait_for(self._final_flush(writers), SHUTDOWN_FLUSH_SECONDS)
        except TimeoutError:
            waiting = sum(len(w.pipeline.pending) for w in writers)
            log.warning("PostgreSQL did not take the last %d call(s) in time; the journal keeps them for the "
                        "next start", waiting)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in writers:
            await writer.close()
        for view in self.views:
            view.pipeline.journal.close()
        if self.pool is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.pool.close(), 5)

    async def _final_flush(self, writers: list[CallWriter]) -> None:
        for writer in writers:
            # Stop the loop first so two tasks never write the same batch.
            await writer.stop()
            for task in self._tasks:
                if task.get_name() == f"writer-{writer.pipeline.system.name}":
                    await asyncio.gather(task, return_exceptions=True)
            while True:
                ok = await writer.write_once()
                if ok and not writer.pipeline.pending and writer.checkpoint == writer.pipeline.low_water():
                    break


async def run_daemon(config: Config, *, metrics_listen: str | None = None) -> int:
    """Run the daemon until SIGTERM/SIGINT; returns the exit code."""
    return await Daemon(config, metrics_listen=metrics_listen).run()
