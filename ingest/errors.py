"""The exception tree of Calltrail. Every error carries a message a user can act on.

    CalltrailError                 base; the CLIs print its message and exit non-zero
    ├── ConfigError                bad configuration file, key or environment value
    ├── DatabaseError              PostgreSQL unreachable, embedded server failed, schema missing
    ├── ParseError                 a malformed AMI message (carries the offending text)
    └── InputFileError             a bad row in an imported file (carries file, line and field)
"""

from __future__ import annotations


class CalltrailError(Exception):
    """Base of every error Calltrail raises on purpose."""


class ConfigError(CalltrailError):
    """The configuration is invalid; the message names the key."""


class DatabaseError(CalltrailError):
    """The database cannot be reached or is not in the expected state."""


class ParseError(CalltrailError):
    """An AMI message could not be parsed; `text` holds the offending input."""

    def __init__(self, message: str, text: str = "") -> None:
        super().__init__(message)
        self.text = text


class InputFileError(CalltrailError):
    """A row of an imported file is invalid; names the file, line and field."""

    def __init__(self, message: str, *, path: str = "", line: int = 0, field: str = "") -> None:
        where = ":".join(p for p in (path, str(line) if line else "") if p)
        super().__init__(f"{where}: {field + ': ' if field else ''}{message}" if where else message)
        self.path = path
        self.line = line
        self.field = field
