"""The report side's errors, under ingest's one exception tree.

    CalltrailError (ingest.errors)
    └── ReportError                 anything the report layer refuses on purpose
        ├── ReportFilterError       a bad filter value; `.field` names the filter (exit code 2)
        ├── ReportPermissionError   the user may not produce reports
        └── ReportNotFoundError     a call (transfer chain) that does not exist
"""

from __future__ import annotations

from ingest.errors import CalltrailError


class ReportError(CalltrailError):
    """Base of the report layer's errors."""


class ReportFilterError(ReportError):
    """A filter value is invalid; `field` names the filter and the message says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


class ReportPermissionError(ReportError):
    """The acting user does not hold a role that may produce reports."""


class ReportNotFoundError(ReportError):
    """The requested call is not in the database."""
