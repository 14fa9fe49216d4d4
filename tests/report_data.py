"""A small call history whose report figures are known by construction (shared by the report tests).

Period of interest: Esfand 1404 (29 days: 1404 is not a leap year) and Farvardin 1405, i.e.
2026-02-20 .. 2026-04-20. Times are written in Asia/Tehran local time (UTC+3:30, no DST since 2022).

Branch `tehran` (systems `tehran-main`, `tehran-sales`), branch `mashhad` (system `mashhad`), branch
`europe` (system `berlin`, Europe/Berlin). Extension 101 on tehran-main is Ali's until 1404/12/19
(2026-03-10 00:00 Tehran), then Nima's.

    call system        local time            type      agents (talk s)            wait  transfers
    c1   tehran-main   1404/12/05 09:00:00  incoming  101 (60)                      5     1
    c2   tehran-main   1404/12/05 09:30:00  incoming  101 (30) 102 (40) 103 (50)   10     3
    c3   tehran-main   1404/12/05 10:00:00  missed    rang 101 102                 20     0
    c4   tehran-main   1404/12/20 11:00:00  outgoing  102 (90)                      4     1
    c5   tehran-main   1404/12/20 11:10:00  outgoing  101 unanswered               30     0
    c6   tehran-main   1404/12/29 23:59:00  incoming  102 (15)                      3     1
    c7   tehran-main   1405/01/01 00:00:30  missed    rang 102                     25     0
    c8   tehran-main   1405/01/10 12:00:00  internal  101 -> 102 (20)               2     1
    c9   tehran-main   1405/01/15 08:00:00  incoming  101 (45)                      6     1
    c10  tehran-sales  1405/01/02 10:00:00  incoming  201 (100)                     8     1
    c11  mashhad       1404/12/10 14:00:00  outgoing  301 (33), unassigned          2     1
    c12  berlin        2026-03-29 01:30 Berlin incoming 401 (10)                    1     1
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg

from ingest import store
from ingest.config import SystemConfig
from ingest.numbers import normalize_number
from ingest.records import CallRecord, RingAttempt, Segment

TEHRAN = ZoneInfo("Asia/Tehran")
BERLIN = ZoneInfo("Europe/Berlin")
PLAN = SystemConfig()  # country 98, city 21, no prefix: how CRM numbers are written
SWITCH = datetime(2026, 3, 10, tzinfo=TEHRAN)  # extension 101 passes from Ali to Nima
SINCE = datetime(2025, 1, 1, tzinfo=UTC)

SYSTEMS = {
    "tehran-main": SystemConfig(name="tehran-main", branch="tehran"),
    "tehran-sales": SystemConfig(name="tehran-sales", branch="tehran"),
    "mashhad": SystemConfig(name="mashhad", branch="mashhad", city_code="51"),
    "berlin": SystemConfig(name="berlin", branch="europe", country_code="49", city_code="30",
                           timezone="Europe/Berlin"),
}
USERS = {
    # username: (full name, roles, active)
    "boss": ("Boss Admin", ["admin"], True),
    "sara": ("Sara Sales", ["sales_manager"], True),
    "reza": ("Reza CRM", ["crm_manager"], True),
    "maryam": ("Maryam Support", ["support_manager"], True),
    "ali": ("علی رضایی", ["agent"], True),
    "nima": ("Nima Agent", ["agent"], True),
    "hadi": ("Hadi Agent", ["agent"], True),
    "mina": ("Mina Agent", ["agent"], True),
    "leila": ("Leila Agent", ["agent"], True),
    "hans": ("Hans Agent", ["agent"], True),
    "nobody": ("No Role", [], True),
    "former": ("Former Manager", ["sales_manager"], False),
}
ASSIGNMENTS = [
    # system, extension, username, valid from, valid to
    ("tehran-main", "101", "ali", SINCE, SWITCH),
    ("tehran-main", "101", "nima", SWITCH, None),
    ("tehran-main", "102", "hadi", SINCE, None),
    ("tehran-main", "103", "mina", SINCE, None),
    ("tehran-sales", "201", "leila", SINCE, None),
    ("berlin", "401", "hans", SINCE, None),
]
IDENTITIES = [
    # name, kind, profile url, numbers as written in the CRM
    ("Hashemi", "person", "https://crm.example/identities/1", ["0912 123 4567"]),
    ("Sadeghi", "person", "https://crm.example/identities/2", ["+98 935 111 2233"]),
    ("Sadeghi Trading", "organisation", "/identities/3", ["09351112233"]),
    ("Org Co", "organisation", "javascript:alert(1)", ["88776655", "0098 21 8877 6655"]),
]


def local(text: str, zone: ZoneInfo = TEHRAN) -> datetime:
    """A local wall time as a UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=zone).astimezone(UTC)


def answered(call_id: str, start: datetime, direction: str, caller: str, callee: str, wait: int,
             turns: list[tuple[str, int]], system: SystemConfig, caller_name: str | None = None) -> CallRecord:
    """A call answered after `wait` seconds, then connected to each (extension, talk seconds) in turn."""
    at = start + timedelta(seconds=wait)
    segments = []
    for index, (extension, talk) in enumerate(turns):
        began = "answered" if index == 0 else ("blind_transfer" if index == 1 else "attended_transfer")
        segments.append(Segment(extension, began, at - timedelta(seconds=3 if index else wait), at,  # type: ignore[arg-type]
                                at + timedelta(seconds=talk)))
        at += timedelta(seconds=talk)
    outside = caller if direction == "incoming" else callee
    return CallRecord(
        system=system.name, call_id=call_id, direction=direction, status="answered", reason=None,  # type: ignore[arg-type]
        caller=caller, callee=callee, start=start, answer=start + timedelta(seconds=wait), end=at,
        caller_name=caller_name, external_number=None if direction == "internal" else normalize_number(outside, system),
        linkedids=(call_id,), segments=tuple(segments),
        rang=tuple(RingAttempt(s.extension, s.ring_start or s.answer, s.answer, "answered") for s in segments),
    )


def not_answered(call_id: str, start: datetime, direction: str, reason: str, caller: str, callee: str,
                 wait: int, rang: list[str], system: SystemConfig) -> CallRecord:
    """A missed (incoming) or unanswered (outgoing) call that lasted `wait` seconds."""
    end = start + timedelta(seconds=wait)
    outside = caller if direction == "incoming" else callee
    return CallRecord(
        system=system.name, call_id=call_id, direction=direction,  # type: ignore[arg-type]
        status="missed" if direction == "incoming" else "unanswered", reason=reason,  # type: ignore[arg-type]
        caller=caller, callee=callee, start=start, end=end,
        external_number=normalize_number(outside, system), linkedids=(call_id,),
        rang=tuple(RingAttempt(ext, start, end, "no_answer") for ext in rang),
    )


def calls() -> dict[str, list[CallRecord]]:
    """The fixture calls per system."""
    main, sales = SYSTEMS["tehran-main"], SYSTEMS["tehran-sales"]
    mashhad, berlin = SYSTEMS["mashhad"], SYSTEMS["berlin"]
    return {
        "tehran-main": [
            answered("c1", local("2026-02-24 09:00:00"), "incoming", "09121234567", "02191001000", 5,
                     [("101", 60)], main, caller_name="=SUM(1+1)"),
            answered("c2", local("2026-02-24 09:30:00"), "incoming", "+989121234567", "02191001000", 10,
                     [("101", 30), ("102", 40), ("103", 50)], main),
            not_answered("c3", local("2026-02-24 10:00:00"), "incoming", "abandoned", "00989351112233",
                         "02191001000", 20, ["101", "102"], main),
            answered("c4", local("2026-03-11 11:00:00"), "outgoing", "102", "88776655", 4, [("102", 90)], main),
            not_answered("c5", local("2026-03-11 11:10:00"), "outgoing", "no_answer", "101", "09350000000", 30,
                         [], main),
            answered("c6", local("2026-03-20 23:59:00"), "incoming", "09120000001", "02191001000", 3,
                     [("102", 15)], main),
            not_answered("c7", local("2026-03-21 00:00:30"), "incoming", "no_answer", "09120000002",
                         "02191001000", 25, ["102"], main),
            answered("c8", local("2026-03-30 12:00:00"), "internal", "101", "102", 2, [("102", 20)], main),
            answered("c9", local("2026-04-04 08:00:00"), "incoming", "09120000003", "02191001000", 6,
                     [("101", 45)], main),
        ],
        "tehran-sales": [
            answered("c10", local("2026-03-22 10:00:00"), "incoming", "02188776655", "02191002000", 8,
                     [("201", 100)], sales, caller_name="<script>alert('x')</script>"),
        ],
        "mashhad": [
            answered("c11", local("2026-03-01 14:00:00"), "outgoing", "301", "05138887766", 2, [("301", 33)],
                     mashhad),
        ],
        "berlin": [
            answered("c12", local("2026-03-29 01:30:00", BERLIN), "incoming", "+4930123456", "4930999", 1,
                     [("401", 10)], berlin),
        ],
    }


@dataclass(frozen=True)
class Loaded:
    """Ids of what was loaded."""

    systems: dict[str, int]
    users: dict[str, int]


async def load(conn: asyncpg.Connection) -> Loaded:
    """Store the fixture directory and calls through the ingest side's own functions."""
    systems = {name: await store.ensure_system(conn, config) for name, config in SYSTEMS.items()}
    await conn.execute("UPDATE telephone_systems SET title = 'مرکز تهران' WHERE name = 'tehran-main'")
    await conn.execute("UPDATE branches SET title = 'شعبه تهران' WHERE name = 'tehran'")
    users = {}
    for username, (name, roles, active) in USERS.items():
        users[username] = await conn.fetchval(
            "INSERT INTO users (username, full_name, roles, active) VALUES ($1, $2, $3, $4) RETURNING id",
            username, name, roles, active,
        )
    for system, extension, username, valid_from, valid_to in ASSIGNMENTS:
        await conn.execute(
            "INSERT INTO extension_assignments (system_id, extension, user_id, valid_from, valid_to)"
            " VALUES ($1, $2, $3, $4, $5)", systems[system], extension, users[username], valid_from, valid_to,
        )
    for name, kind, url, numbers in IDENTITIES:
        identity = await conn.fetchval(
            "INSERT INTO identities (kind, name, profile_url) VALUES ($1, $2, $3) RETURNING id", kind, name, url
        )
        for raw in numbers:
            await conn.execute(
                "INSERT INTO identity_numbers (identity_id, number_e164, raw) VALUES ($1, $2, $3)"
                " ON CONFLICT DO NOTHING", identity, normalize_number(raw, PLAN), raw,
            )
    for system, records in calls().items():
        await store.store_calls(conn, systems[system], records)
    return Loaded(systems=systems, users=users)
