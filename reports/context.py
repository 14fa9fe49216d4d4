"""Query rows turned into the documented dataclasses the renderers read (pure: no IO).

A `ReportDocument` is the call-details report: header, totals per bucket (D) and for the period
(E), and its call rows as a lazy async stream, so a million-row export never sits in memory.
`sections` interleaves the rows with bucket openings and closings for renderers that print
subtotals under each bucket, as the seed does.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal, NamedTuple
from zoneinfo import ZoneInfo

from reports.calendar import Bucket
from reports.data import SystemInfo
from reports.filters import CallType, ReportRequest
from reports.text import Formatter, half_up

# Totals fields holding seconds (Decimal); the others are counts.
_SECONDS = frozenset({"incoming_talk", "outgoing_talk", "internal_talk", "wait_seconds"})


@dataclass(frozen=True)
class Totals:
    """Counts and sums over a set of calls (seconds as Decimal); averages are derived."""

    calls: int = 0
    incoming: int = 0
    incoming_talk: Decimal = Decimal(0)
    outgoing: int = 0
    outgoing_talk: Decimal = Decimal(0)
    missed: int = 0
    internal: int = 0
    internal_talk: Decimal = Decimal(0)
    answered: int = 0
    wait_seconds: Decimal = Decimal(0)
    transfers: int = 0

    @classmethod
    def from_record(cls, record: Mapping[str, Any] | None) -> Totals:
        """Totals from a query row holding the same column names (None: all zero)."""
        if record is None:
            return cls()
        # Positional, from names listed once: a report page builds one per bucket (31 for a month).
        values: list[Any] = [Decimal(record[name]) if seconds else int(record[name])
                             for name, seconds in _TOTALS_FIELDS]
        return cls(*values)

    def __add__(self, other: Totals) -> Totals:
        values: dict[str, Any] = {f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        return Totals(**values)

    @staticmethod
    def _average(total: Decimal | int, count: int, places: int = 0) -> Decimal | None:
        return half_up(Decimal(total) / count, places) if count else None

    @property
    def avg_incoming_talk(self) -> Decimal | None:
        """Average talk seconds of received incoming calls (half up to the second)."""
        return self._average(self.incoming_talk, self.incoming)

    @property
    def avg_outgoing_talk(self) -> Decimal | None:
        """Average talk seconds of outgoing calls."""
        return self._average(self.outgoing_talk, self.outgoing)

    @property
    def avg_wait(self) -> Decimal | None:
        """Average wait seconds over all counted calls."""
        return self._average(self.wait_seconds, self.calls)

    @property
    def avg_transfers(self) -> Decimal | None:
        """Average transfer count over all counted calls, to one decimal."""
        return self._average(self.transfers, self.calls, 1)

    def divided(self, rows: int) -> Totals:
        """Every figure divided by `rows`, rounded half up (the sibling reports' Average row)."""
        if rows <= 0:
            return Totals()
        averaged = {f.name: half_up(Decimal(getattr(self, f.name)) / rows) for f in fields(self)}
        values: dict[str, Any] = {name: (value if name in _SECONDS else int(value)) for name, value in averaged.items()}
        return Totals(**values)


# Totals' fields in order, each with whether it holds seconds (Decimal) or a count.
_TOTALS_FIELDS: tuple[tuple[str, bool], ...] = tuple((f.name, f.name in _SECONDS) for f in fields(Totals))


@dataclass(frozen=True)
class BucketTotals:
    """One bucket (day, month, season, year) and its totals (the seed's D)."""

    bucket: Bucket
    label: str
    totals: Totals


# The per-call types are NamedTuples, not dataclasses: a million-row export builds a million of
# them, and a tuple is made several times faster than a frozen dataclass.
class AgentRef(NamedTuple):
    """One agent of a call's chain: the extension and, when assigned at the time, the user's name."""

    extension: str
    name: str | None


class IdentityRef(NamedTuple):
    """A CRM identity holding the call's outside number (the seed's B)."""

    id: int
    name: str
    url: str


class CallRow(NamedTuple):
    """One call as the report shows it."""

    number: int
    call_id: str
    system: str
    start: datetime
    bucket: int
    kind: CallType
    direction: str
    status: str
    reason: str | None
    caller: str
    caller_name: str | None
    callee: str
    external_number: str | None
    agents: tuple[AgentRef, ...]
    identities: tuple[IdentityRef, ...]
    transfer_count: int
    wait_seconds: Decimal
    talk_seconds: Decimal | None
    # The system's unique name (`system` is its title for display): with the call id, it names the call.
    system_name: str = ""

    @property
    def several_identities(self) -> bool:
        """True when more than one identity holds the number (all are shown, flagged)."""
        return len(self.identities) > 1

    @property
    def agent_names(self) -> str:
        """The agent chain as text: names, or extensions where no user was assigned."""
        return " → ".join(a.name or a.extension for a in self.agents)


@dataclass(frozen=True)
class Header:
    """Title, company, when and by whom, the period and every filter (label, value) applied."""

    title: str
    company: str
    made_at: datetime
    made_by: str
    first_day: date
    last_day: date
    filters: tuple[tuple[str, str], ...]


@dataclass
class ReportDocument:
    """The call-details report; `rows` is consumed once, in time order."""

    request: ReportRequest
    header: Header
    buckets: tuple[BucketTotals, ...]
    grand: Totals
    rows: AsyncIterable[CallRow]
    fmt: Formatter
    rollup_used: bool = False

    @property
    def show_internal(self) -> bool:
        """Internal calls are shown (columns and counts) only when asked for."""
        return "internal" in self.request.types


@dataclass(frozen=True)
class Section:
    """One step of a details rendering: a bucket opens, a row, or a bucket closes."""

    kind: Literal["open", "row", "close"]
    bucket: BucketTotals
    row: CallRow | None = None


async def sections(document: ReportDocument) -> AsyncIterator[Section]:
    """The rows, each bucket opened before its first row and closed (with its totals) after its last."""
    current: BucketTotals | None = None
    async for row in document.rows:
        if current is None or row.bucket != current.bucket.index:
            if current is not None:
                yield Section("close", current)
            current = document.buckets[row.bucket]
            yield Section("open", current)
        yield Section("row", current, row)
    if current is not None:
        yield Section("close", current)


def sections_in(document: ReportDocument, rows: Iterable[CallRow]) -> Iterator[Section]:
    """`sections` over rows already in memory (the same steps, without the event loop)."""
    current: BucketTotals | None = None
    for row in rows:
        if current is None or row.bucket != current.bucket.index:
            if current is not None:
                yield Section("close", current)
            current = document.buckets[row.bucket]
            yield Section("open", current)
        yield Section("row", current, row)
    if current is not None:
        yield Section("close", current)


class AssignmentBook:
    """Who held an extension when: (system, extension) -> periods, from the assignments query."""

    def __init__(self, records: Iterable[Mapping[str, Any]]) -> None:
        self._periods: dict[tuple[int, str], list[tuple[datetime, datetime | None, str]]] = defaultdict(list)
        for r in records:
            self._periods[(r["system_id"], r["extension"])].append((r["valid_from"], r["valid_to"], r["name"]))

    def name(self, system_id: int, extension: str, at: datetime) -> str | None:
        """The user assigned to `extension` at `at`, or None."""
        for valid_from, valid_to, name in reversed(self._periods.get((system_id, extension), ())):
            if valid_from <= at and (valid_to is None or at < valid_to):
                return name
        return None


def agent_extensions(records: Iterable[Mapping[str, Any]]) -> set[tuple[int, str]]:
    """The (system id, extension) pairs whose users `RowBuilder.build` names for these details.sql
    rows: only their assignments need to be read for one page."""
    pairs: set[tuple[int, str]] = set()
    for r in records:
        system_id, chain, caller = r["system_id"], r["chain"], r["caller"]
        if chain:
            pairs.update((system_id, ext) for ext in chain)
        if caller and r["direction"] != "incoming":
            pairs.add((system_id, caller))
    return pairs


def kind_of(direction: str, status: str) -> CallType:
    """The report's call type: missed, else the direction."""
    if status == "missed":
        return "missed"
    return "incoming" if direction == "incoming" else "outgoing" if direction == "outgoing" else "internal"


@dataclass
class RowBuilder:
    """Turns detail query rows into CallRows (numbering them, bucketing and naming agents)."""

    request: ReportRequest
    systems: Mapping[int, SystemInfo]
    book: AssignmentBook
    next_number: int = 1
    _starts: Sequence[datetime] = field(default=(), init=False)
    _zone: ZoneInfo = field(init=False)

    def __post_init__(self) -> None:
        self._starts = self.request.bucket_starts()
        self._zone = self.request.zone

    def agents(self, system_id: int, direction: str, caller: str, chain: list[str],
               at: datetime) -> tuple[AgentRef, ...]:
        """PRODUCT.md's agents of a call: who placed it (outgoing, internal), then who answered or rang."""
        if direction != "incoming" and caller and caller not in chain:
            chain = [caller, *chain]
        return tuple(AgentRef(ext, self.book.name(system_id, ext, at)) for ext in dict.fromkeys(chain))

    def build(self, r: Mapping[str, Any]) -> CallRow:
        """One CallRow from one row of details.sql."""
        start: datetime = r["start_time"]
        system_id, direction, status, caller = r["system_id"], r["direction"], r["status"], r["caller"]
        chain = r["chain"]
        if direction != "incoming" and caller and (not chain or caller not in chain):
            chain = [caller, *(chain or ())]
        name = self.book.name
        # dict.fromkeys: each extension once, in order of appearance.
        agents = tuple([AgentRef(ext, name(system_id, ext, start)) for ext in dict.fromkeys(chain)]) if chain else ()
        ids = r["identity_ids"]
        identities = tuple(map(IdentityRef, ids, r["identity_names"], r["identity_urls"])) if ids else ()
        system = self.systems.get(system_id)
        number = self.next_number
        self.next_number = number + 1
        # Positional: this runs for every row of a page, and keywords cost a third more here.
        return CallRow(
            number, r["call_id"], system.label if system else str(system_id), start.astimezone(self._zone),
            bisect.bisect_right(self._starts, start) - 1, kind_of(direction, status), direction, status,
            r["reason"], caller, r["caller_name"], r["callee"], r["external_number"], agents, identities,
            r["transfer_count"], r["wait_seconds"], r["talk_seconds"] if status == "answered" else None,
            system.name if system else str(system_id),
        )

    async def stream(self, lines: AsyncIterable[list[str]],
                     identities: Mapping[str, Mapping[str, Any]]) -> AsyncIterator[CallRow]:
        """CallRows from the text fields of details_copy.sql, identities looked up by number."""
        starts = [moment.timestamp() for moment in self._starts]
        zone, systems = self._zone, self.systems
        # Built once per number, not once per call.
        holders = {number: tuple(IdentityRef(*found) for found in zip(r["ids"], r["names"], r["urls"], strict=True))
                   for number, r in identities.items()}
        async for (call_id, system_text, epoch, direction, status, reason, caller, caller_name, callee, outside,
                   wait, talk, transfers, chain) in lines:
            system_id, seconds = int(system_text), float(epoch)
            start = datetime.fromtimestamp(seconds, zone)
            system = systems.get(system_id)
            yield CallRow(
                number=self.next_number, call_id=call_id, system=system.label if system else system_text,
                start=start, bucket=bisect.bisect_right(starts, seconds) - 1, kind=kind_of(direction, status),
                direction=direction, status=status, reason=reason or None, caller=caller,
                caller_name=caller_name or None, callee=callee, external_number=outside or None,
                agents=self.agents(system_id, direction, caller, chain.split(), start),
                identities=holders.get(outside, ()), transfer_count=int(transfers), wait_seconds=Decimal(wait),
                talk_seconds=Decimal(talk) if status == "answered" else None,
                system_name=system.name if system else system_text,
            )
            self.next_number += 1


async def iterate(rows: Iterable[CallRow]) -> AsyncIterator[CallRow]:
    """An async stream over rows already in memory."""
    for row in rows:
        yield row


@dataclass(frozen=True)
class TotalsLine:
    """One row of a sibling report: its key (agent, date or number), a note, and its totals."""

    key: str
    note: str
    totals: Totals


@dataclass(frozen=True)
class TotalsDocument:
    """A sibling report: totals by agent, date or phone number, with Sum and Average rows."""

    by: Literal["agent", "date", "number"]
    request: ReportRequest
    header: Header
    lines: tuple[TotalsLine, ...]
    fmt: Formatter

    @property
    def sum(self) -> Totals:
        """The Sum row."""
        total = Totals()
        for line in self.lines:
            total = total + line.totals
        return total

    @property
    def average(self) -> Totals:
        """The Average row: the Sum divided by the number of rows, rounded half up."""
        return self.sum.divided(len(self.lines))

    @property
    def show_internal(self) -> bool:
        """Internal columns only when internal calls were asked for (never by number)."""
        return "internal" in self.request.types and self.by != "number"


@dataclass(frozen=True)
class ChainTurn:
    """One turn of a transfer chain, or one ring attempt."""

    seq: int
    extension: str
    agent: str | None
    how: str
    start: datetime | None
    answer: datetime | None
    end: datetime | None
    ring_seconds: Decimal | None
    talk_seconds: Decimal | None


@dataclass(frozen=True)
class ChainDocument:
    """One call's full transfer chain: the call, its turns and every extension that rang."""

    header: Header
    call_id: str
    system: str
    kind: CallType
    reason: str | None
    caller: str
    callee: str
    start: datetime
    end: datetime
    wait_seconds: Decimal
    talk_seconds: Decimal
    transfer_count: int
    turns: tuple[ChainTurn, ...]
    rings: tuple[ChainTurn, ...]
    fmt: Formatter
