"""Health and Prometheus metrics over a tiny asyncio HTTP server (`/healthz`, `/metrics`).

Counters live as plain ints on the connection and pipeline objects (no cost per event) and a
custom collector reads them at scrape time; only the write latency is a real Histogram.

Metrics (label `system` unless noted):
    calltrail_ami_events_total            AMI messages received (rate() gives events/s)
    calltrail_events_journaled_total      events kept in the journal (the rest are noise)
    calltrail_parse_errors_total          garbage bytes and malformed messages skipped
    calltrail_open_calls                  calls in progress
    calltrail_calls_stored_total          calls committed to PostgreSQL
    calltrail_calls_pending               finished calls waiting for PostgreSQL
    calltrail_calls_reconciled_total      calls closed by reconciliation after an AMI outage
    calltrail_journal_backlog_bytes       journal bytes after the committed checkpoint
    calltrail_ami_connected               1 when logged in
    calltrail_ami_login_failed            1 when the last login was refused
    calltrail_ami_reconnects_total        connections lost
    calltrail_last_event_age_seconds      seconds since the last AMI data
    calltrail_db_up (no label)            1 when the last write succeeded
    calltrail_write_latency_seconds       histogram of batch commit time
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ingest.ami import AmiConnection
from ingest.pipeline import SystemPipeline
from ingest.writer import CallWriter, DatabaseState

log = logging.getLogger(__name__)


@dataclass
class SystemView:
    """Everything the metrics and health of one system read."""

    pipeline: SystemPipeline
    connection: AmiConnection
    writer: CallWriter | None = None

    def health(self) -> dict[str, Any]:
        """This system's part of /healthz."""
        stats = self.connection.stats
        last = stats.last_event_monotonic
        checkpoint = self.writer.checkpoint if self.writer is not None else None
        return {
            "connected": stats.connected,
            "login_failed": stats.login_failed,
            "last_event_age_seconds": None if last is None else round(time.monotonic() - last, 3),
            "journal_backlog_bytes": self.pipeline.journal.backlog_bytes(checkpoint)
            if checkpoint is not None else self.pipeline.journal.size_bytes,
            "open_calls": self.pipeline.assembler.open_count,
            "calls_pending": len(self.pipeline.pending),
            "calls_stored": self.writer.stored if self.writer is not None else 0,
            "replay_done": self.pipeline.live,
        }


class Metrics:
    """The registry, the collector over live objects, and the health verdict."""

    def __init__(self, db: DatabaseState) -> None:
        self.db = db
        self.systems: dict[str, SystemView] = {}
        self.registry = CollectorRegistry()
        self.write_latency = Histogram(
            "calltrail_write_latency_seconds", "Time to commit one batch of calls.", registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
        )
        self.registry.register(self)

    def describe(self) -> list[Metric]:
        """No fixed description: the families depend on the configured systems."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Read the live counters (called by prometheus_client at scrape time)."""
        families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}

        def family(kind: type[Any], name: str, doc: str) -> Any:
            if name not in families:
                families[name] = kind(name, doc, labels=["system"])
            return families[name]

        counter, gauge = CounterMetricFamily, GaugeMetricFamily
        for name, view in self.systems.items():
            stats, conn = view.pipeline.stats, view.connection.stats
            health = view.health()
            family(counter, "calltrail_ami_events", "AMI messages received.").add_metric([name], conn.events)
            family(counter, "calltrail_events_journaled", "Events kept in the journal.").add_metric(
                [name], stats.journaled)
            family(counter, "calltrail_parse_errors", "Garbage and malformed AMI messages skipped.").add_metric(
                [name], stats.malformed + conn.garbage)
            family(gauge, "calltrail_open_calls", "Calls in progress.").add_metric([name], health["open_calls"])
            family(counter, "calltrail_calls_stored", "Calls committed to PostgreSQL.").add_metric(
                [name], health["calls_stored"])
            family(gauge, "calltrail_calls_pending", "Finished calls waiting for PostgreSQL.").add_metric(
                [name], health["calls_pending"])
            family(counter, "calltrail_calls_reconciled", "Calls closed by reconciliation.").add_metric(
                [name], stats.reconciled)
            family(gauge, "calltrail_journal_backlog_bytes", "Journal bytes after the checkpoint.").add_metric(
                [name], health["journal_backlog_bytes"])
            family(gauge, "calltrail_ami_connected", "1 when logged in to AMI.").add_metric(
                [name], float(conn.connected))
            family(gauge, "calltrail_ami_login_failed", "1 when the AMI login was refused.").add_metric(
                [name], float(conn.login_failed))
            family(counter, "calltrail_ami_reconnects", "AMI connections lost.").add_metric([name], conn.reconnects)
            age = health["last_event_age_seconds"]
            family(gauge, "calltrail_last_event_age_seconds", "Seconds since the last AMI data.").add_metric(
                [name], float("nan") if age is None else age)
        yield from families.values()
        up = GaugeMetricFamily("calltrail_db_up", "1 when the last PostgreSQL write succeeded.")
        up.add_metric([], 1.0 if self.db.up else 0.0)
        yield up

    def health(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, the /healthz document): every system logged in, and PostgreSQL reachable."""
        systems = {name: view.health() for name, view in self.systems.items()}
        healthy = bool(systems) and all(s["connected"] and not s["login_failed"] for s in systems.values())
        healthy = healthy and self.db.up is not False
        return healthy, {"healthy": healthy, "database_reachable": self.db.up, "systems": systems}

    def render_metrics(self) -> bytes:
        """The Prometheus text exposition."""
        return bytes(generate_latest(self.registry))


async def serve_http(metrics: Metrics, host: str, port: int) -> asyncio.Server:
    """Serve /healthz (200 or 503, JSON) and /metrics until the server is closed."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            parts = request.split(b"\r\n", 1)[0].split()
            path = parts[1].decode("latin-1").split("?", 1)[0] if len(parts) >= 2 else "/"
            if path == "/metrics":
                status, ctype, body = "200 OK", CONTENT_TYPE_LATEST, metrics.render_metrics()
            elif path in ("/healthz", "/health"):
                healthy, document = metrics.health()
                status = "200 OK" if healthy else "503 Service Unavailable"
                ctype, body = "application/json", json.dumps(document, indent=1).encode()
            else:
                status, ctype, body = "404 Not Found", "text/plain", b"try /healthz or /metrics\n"
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, host, port)
    log.info("health and metrics on http://%s:%d/healthz and /metrics", host, port)
    return server
