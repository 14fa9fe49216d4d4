"""A synthetic Asterisk Master.csv: realistic call shapes, rows in the order cdr_csv writes them.

Used by bench/import.py and the import tests. Calls follow each other a few seconds apart; each
is written as Asterisk does it, one row per leg when the leg ends: answered and missed inbound
calls (with the dialplan's trailing Hangup row), ring groups, blind transfers, outgoing and
internal calls. Deterministic for a given seed.
"""

from __future__ import annotations

import csv
import heapq
import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import TextIO

_T0 = datetime(2024, 3, 20, 8, 0, 0)


def _stamp(when: datetime | None) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S") if when is not None else ""


class _Pbx:
    """Channel and uniqueid counters, as one Asterisk process would hand them out."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.channel_no = 0
        self.unique_no = 0
        # Customers call again: callers and dialled numbers come from pools, as in a real call centre.
        self.callers = [f"09{self.rng.randrange(10**8, 10**9)}" for _ in range(50_000)]
        self.dialled = [f"021{self.rng.randrange(10**7, 10**8)}" for _ in range(20_000)]

    def channel(self, endpoint: str) -> str:
        self.channel_no += 1
        return f"PJSIP/{endpoint}-{self.channel_no:08x}"

    def uniqueid(self, when: datetime) -> str:
        self.unique_no += 1
        return f"{int(when.timestamp())}.{self.unique_no}"


def _row(src: str, dst: str, context: str, clid: str, channel: str, dstchannel: str, app: str, data: str,
         start: datetime, answer: datetime | None, end: datetime, disposition: str, uniqueid: str) -> list[str]:
    duration = int((end - start).total_seconds())
    billsec = int((end - answer).total_seconds()) if answer is not None else 0
    return ["", src, dst, context, clid, channel, dstchannel, app, data, _stamp(start), _stamp(answer), _stamp(end),
            str(duration), str(billsec), disposition, "DOCUMENTATION", uniqueid, ""]


def _call(pbx: _Pbx, start: datetime) -> list[tuple[datetime, list[str]]]:
    """The rows of one call, each with the time it is written (its end)."""
    rng = pbx.rng
    caller = rng.choice(pbx.callers)
    agent = str(rng.randrange(101, 160))
    trunk = pbx.channel("trunk")
    uid = pbx.uniqueid(start)
    shape = rng.random()
    ring = timedelta(seconds=rng.randrange(2, 15))
    talk = timedelta(seconds=rng.randrange(10, 600))
    clid = f'"" <{caller}>'
    if shape < 0.45:  # inbound, answered
        end = start + ring + talk
        row = _row(caller, "02191001000", "from-trunk", clid, trunk, pbx.channel(agent), "Dial",
                   f"PJSIP/{agent},20,tT", start, start + ring, end, "ANSWERED", uid)
        return [(end, row)]
    if shape < 0.60:  # inbound, missed (timeout, then the dialplan's Hangup)
        end = start + timedelta(seconds=20)
        return [(end, _row(caller, "02191001000", "from-trunk", clid, trunk, pbx.channel(agent), "Dial",
                           f"PJSIP/{agent},20,tT", start, None, end, "NO ANSWER", uid)),
                (end, _row(caller, "02191001000", "from-trunk", clid, trunk, "", "Hangup", "", end, None, end,
                           "NO ANSWER", uid))]
    if shape < 0.72:  # ring group: two phones ring, one answers
        other = str(int(agent) + 1)
        end = start + ring + talk
        data = f"PJSIP/{agent}&PJSIP/{other},25,tT"
        return [(start + ring, _row(caller, "02191001002", "from-trunk", clid, trunk, pbx.channel(other), "Dial",
                                    data, start, None, start + ring, "NO ANSWER", uid)),
                (end, _row(caller, "02191001002", "from-trunk", clid, trunk, pbx.channel(agent), "Dial", data,
                           start, start + ring, end, "ANSWERED", uid))]
    if shape < 0.80:  # blind transfer to a second agent
        second = str(int(agent) + 2)
        split = start + ring + talk / 2
        end = start + ring + talk
        return [(split, _row(caller, second, "internal", clid, trunk, pbx.channel(agent), "Dial",
                             f"PJSIP/{agent},20,tT", start, start + ring, split, "ANSWERED", uid)),
                (end, _row(caller, second, "internal", clid, trunk, pbx.channel(second), "Dial",
                           f"PJSIP/{agent},20,tT", split, split, end, "ANSWERED", uid))]
    if shape < 0.95:  # outgoing
        number = rng.choice(pbx.dialled)
        phone = pbx.channel(agent)
        answered = rng.random() < 0.7
        end = start + ring + (talk if answered else timedelta())
        return [(end, _row(agent, number, "internal", f'"Agent {agent}" <{agent}>', phone, pbx.channel("trunk"),
                           "Dial", f"PJSIP/{number}@trunk,30,tT", start, start + ring if answered else None, end,
                           "ANSWERED" if answered else "NO ANSWER", uid))]
    other = str(rng.randrange(101, 160))  # internal
    end = start + ring + talk
    return [(end, _row(agent, other, "internal", f'"Agent {agent}" <{agent}>', pbx.channel(agent),
                       pbx.channel(other), "Dial", f"PJSIP/{other},20,tT", start, start + ring, end, "ANSWERED",
                       uid))]


def synthetic_rows(rows: int, seed: int = 7) -> Iterator[list[str]]:
    """`rows` Master.csv rows, in the order cdr_csv writes them (by leg end)."""
    pbx = _Pbx(seed)
    pending: list[tuple[datetime, int, list[str]]] = []
    written = 0
    order = 0
    when = _T0
    while written < rows:
        for end, row in _call(pbx, when):
            order += 1
            heapq.heappush(pending, (end, order, row))
        while pending and pending[0][0] <= when and written < rows:
            yield heapq.heappop(pending)[2]
            written += 1
        when += timedelta(seconds=pbx.rng.randrange(1, 6))
    # Calls still talking when the file was cut are not written, as in a live Master.csv.


def write_master_csv(out: TextIO, rows: int, seed: int = 7) -> None:
    """Write `rows` synthetic CDR rows to `out` with cdr_csv's quoting."""
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    for row in synthetic_rows(rows, seed):
        writer.writerow(row)


def write_master_file(path: Path, rows: int, seed: int = 7) -> None:
    """`write_master_csv` to a file."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        write_master_csv(handle, rows, seed)
