"""Calltrail reports: validated filters in, call-details documents (PDF, XLSX, CSV, HTML) out."""

from __future__ import annotations
