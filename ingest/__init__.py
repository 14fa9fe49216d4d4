"""Calltrail ingestion: AMI events in, one call record per call out, stored in PostgreSQL."""

from __future__ import annotations

__version__ = "0.1.0"
