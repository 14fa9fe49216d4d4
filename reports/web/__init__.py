"""The web app of the report side: log in, fill in the seed's filters, see or download the report."""

from __future__ import annotations

from reports.web.app import create_app
from reports.web.settings import WebSettings

__all__ = ["WebSettings", "create_app"]
