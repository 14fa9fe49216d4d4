from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from ingest._cdrrow import Row

class Groups:
    """Finished calls of a Master.csv, in cdr_import.group_rows' order, a list of calls per expiry check."""

    rows_read: int
    skipped: dict[str, int]
    late: list[int]
    bytes_read: int
    open_rows: int
    def __init__(self, path: str, zone: ZoneInfo, window_seconds: float,
                 parse: Callable[[str], datetime | None], *, chunk_size: int = ...) -> None: ...
    def __iter__(self) -> Groups: ...
    def __next__(self) -> list[list[Row]]: ...
    def close(self) -> None: ...
