"""The compiled CDR reader and grouper (ingest/_cdrgroup) against the Python path it replaces.

The oracle: cdr_import.group_rows(read_cdr(open_text(path), ...), Grouper(window)) without CEL.
_cdrgroup.Groups must give the same calls in the same order, each with the same rows (every field),
the same counts (rows read, skipped by reason, late lines) and the same errors, on the recorded
traces, a synthetic file, odd hand-written files and random ones. Pure: no database.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from conftest import TRACES

from ingest._cdrgroup import Groups
from ingest._cdrrow import Row
from ingest.cdr_csv import CdrRow, LocalTimes, read_cdr
from ingest.cdr_import import Grouper, ImportStats, group_rows, open_text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.cdr_synth import write_master_file

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
_TEHRAN = ZoneInfo("Asia/Tehran")
_BERLIN = ZoneInfo("Europe/Berlin")
_NEW_YORK = ZoneInfo("America/New_York")

Fields = tuple[Any, ...]


def _us(when: datetime | None) -> int | None:
    return None if when is None else (when - _EPOCH) // _MICRO


def _python_fields(row: CdrRow) -> Fields:
    return (row.line, row.src, row.dst, row.dcontext, row.clid, row.channel, row.dstchannel, row.lastapp,
            row.lastdata, row.disposition, row.uniqueid, row.linkedid, row.accountcode, row.billsec,
            _us(row.start), _us(row.end), _us(row.answer))


def _compiled_fields(row: Row) -> Fields:
    return (row.line, row.src, row.dst, row.dcontext, row.clid, row.channel, row.dstchannel, row.lastapp,
            row.lastdata, row.disposition, row.uniqueid, row.linkedid, row.accountcode, row.billsec,
            row.start, row.end, row.answer if row.has_answer else None)


def _error(exc: BaseException | None) -> tuple[str, str] | None:
    return None if exc is None else (type(exc).__name__, str(exc))


def _python(path: Path, zone: ZoneInfo, window: float) -> dict[str, Any]:
    stats = ImportStats()
    late: list[int] = []
    calls: list[list[Fields]] = []
    error: BaseException | None = None
    try:
        with open_text(path) as handle:
            for rows in group_rows(read_cdr(handle, str(path), LocalTimes(zone)), str(path), stats,
                                   Grouper(timedelta(seconds=window)), late=late):
                calls.append([_python_fields(r) for r in rows])
    except Exception as exc:
        error = exc
    return {"calls": calls, "rows_read": stats.rows_read, "skipped": dict(stats.skipped), "late": late,
            "error": _error(error)}


def _compiled(path: Path, zone: ZoneInfo, window: float, chunk_size: int = 1 << 20) -> dict[str, Any]:
    calls: list[list[Fields]] = []
    error: BaseException | None = None
    groups: Groups | None = None
    try:
        groups = Groups(str(path), zone, window, LocalTimes(zone).parse, chunk_size=chunk_size)
        for chunk in groups:
            assert chunk, "an empty list of calls"
            for rows in chunk:
                assert rows
                calls.append([_compiled_fields(r) for r in rows])
    except Exception as exc:
        error = exc
    if groups is None:
        return {"calls": calls, "rows_read": 0, "skipped": {}, "late": [], "error": _error(error)}
    if error is None:
        assert groups.bytes_read == path.stat().st_size
        assert groups.open_rows == 0
    return {"calls": calls, "rows_read": groups.rows_read, "skipped": dict(groups.skipped), "late": list(groups.late),
            "error": _error(error)}


def _same(path: Path, zone: ZoneInfo = _TEHRAN, window: float = 3 * 3600.0,
          chunk_sizes: tuple[int, ...] = (1 << 20,)) -> dict[str, Any]:
    expected = _python(path, zone, window)
    for chunk_size in chunk_sizes:
        _compare(_compiled(path, zone, window, chunk_size), expected)
    return expected


def _compare(got: dict[str, Any], expected: dict[str, Any]) -> None:
    for name in ("error", "rows_read", "skipped", "late"):
        assert got[name] == expected[name], name
    assert len(got["calls"]) == len(expected["calls"])
    for index, (mine, reference) in enumerate(zip(got["calls"], expected["calls"], strict=True)):
        assert mine == reference, f"call {index}"


# -- the recorded traces and a synthetic file -----------------------------------------------------------

_TRACE_FILES = sorted(TRACES.rglob("cdr.csv"))


@pytest.mark.parametrize("path", _TRACE_FILES, ids=[str(p.parent.relative_to(TRACES)) for p in _TRACE_FILES])
def test_recorded_traces(path: Path) -> None:
    result = _same(path)
    assert result["calls"]
    assert result["error"] is None


def test_recorded_traces_with_newcdrcolumns_and_a_header(tmp_path: Path) -> None:
    """09 as newcdrcolumns=yes writes it (21 columns), and 05 with a header row naming the columns."""
    lines = (TRACES / "09_attended_transfer" / "cdr.csv").read_text(encoding="utf-8").splitlines()
    wide = tmp_path / "wide.csv"
    wide.write_text("".join(f'{line},"","{1700000000 + n // 2}.{n // 2}","{n}"\n' for n, line in enumerate(lines)),
                    encoding="utf-8")
    assert _same(wide)["error"] is None
    header = ("accountcode,src,dst,dcontext,clid,channel,dstchannel,lastapp,lastdata,calldate,answer_time,end_time,"
              "duration,billsec,disposition,amaflags,uniqueid,userfield\n")
    named = tmp_path / "named.csv"
    named.write_text(header + (TRACES / "05_outbound_answered" / "cdr.csv").read_text(encoding="utf-8"),
                     encoding="utf-8")
    assert _same(named)["calls"]


def test_synthetic_file(tmp_path: Path) -> None:
    path = tmp_path / "Master.csv"
    write_master_file(path, 20_000)
    result = _same(path)
    assert result["rows_read"] == 20_000
    assert len(result["calls"]) > 10_000
    # A short window: calls finish while the file is read, some legs arrive late.
    _same(path, window=60.0)


# -- odd files -------------------------------------------------------------------------------------------

_TIMES = ("2024-03-20 10:00:00", "2024-03-20 10:00:05", "2024-03-20 10:01:00")


def _row(n: int, *, src: str = "09121110000", clid: str = '"Ali" <09121110000>', channel: str | None = None,
         dstchannel: str = "", start: str = _TIMES[0], answer: str = _TIMES[1], end: str = _TIMES[2],
         billsec: str = "55", disposition: str = "ANSWERED", uniqueid: str | None = None,
         extra: tuple[str, ...] = ()) -> list[str]:
    return ["", src, "100", "from-trunk", clid, channel if channel is not None else f"PJSIP/trunk-{n:08x}",
            dstchannel, "Dial", "PJSIP/101,20", start, answer, end, "60", billsec, disposition, "DOCUMENTATION",
            uniqueid if uniqueid is not None else f"1714557600.{n}", "", *extra]


def _quoted(cells: list[str], end: str = "\n") -> str:
    return ",".join('"' + c.replace('"', '""') + '"' for c in cells) + end


def _write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def test_quoting_and_line_ends(tmp_path: Path) -> None:
    rows = [_quoted(_row(1))]
    rows.append(_quoted(_row(2, clid='"Ali ""the boss"" R" <0912>'), "\r\n"))
    rows.append(_quoted(_row(3, clid="two\nlines", src="a\r\nb"), "\r"))
    cells = _row(4)
    cells[8] = "PJSIP/101"
    rows.append(",".join(cells) + "\n")  # unquoted
    rows.append(_quoted(_row(5))[:-1].replace('"Dial"', '"Di"al') + "\r\n")  # "ab"c gives abc
    rows.append(_quoted(_row(6))[:-1].replace('"100"', '10"0') + "\n")  # ab"c stays literal
    rows.append(_quoted(_row(7))[:-1].replace('"100"', '"10" 0') + "\n")
    rows.append("\n\r\n\r")  # three empty lines
    rows.append(_quoted(_row(8)).replace('"from-trunk"', '"from\r\ntrunk"'))
    rows.append(_quoted(_row(9))[:-1])  # no line end at the end of the file
    result = _same(_write(tmp_path, "quotes.csv", "".join(rows)))
    assert result["skipped"] == {"empty line": 3}
    assert [r[0] for c in result["calls"] for r in c] == [1, 2, 3, 4, 5, 6, 7, 11, 12]


@pytest.mark.parametrize("ending", ["", ",", ',"', ',"abc', ',"a"b', ',"a""', "\r", "\r\n"])
def test_end_of_file(tmp_path: Path, ending: str) -> None:
    text = _quoted(_row(1)) + _quoted(_row(2))[:-1] + ending
    _same(_write(tmp_path, "end.csv", text))


def test_invalid_utf8_and_persian(tmp_path: Path) -> None:
    good = _quoted(_row(1, clid='"علی رضایی" <09121110000>')).encode("utf-8")
    lines = [good]
    lines.append(_quoted(_row(2)).encode().replace(b'"09121110000"', b'"0912\xff\xfe1110000"'))
    lines.append(_quoted(_row(3)).encode().replace(b'"100"', b'"\xe2\x82"\xac'))  # split by a dropped quote
    lines.append(_quoted(_row(4)).encode().replace(b'"100"', b'"\xe2\x82""\xac"'))  # split by a doubled quote
    lines.append(_quoted(_row(5)).encode().replace(b'"100"', b'\xe2\x82\xac\xe2\x82'))  # truncated, unquoted
    lines.append(_quoted(_row(6)).encode().replace(b'"Dial"', b'"\xed\xa0\x80\xc0\xaf"'))  # surrogate, overlong
    lines.append(_quoted(_row(7, disposition="answered\u00df")).encode())
    lines.append(_quoted(_row(8, disposition="busy")).encode().replace(b'"busy"', b'"bu\xffsy"'))
    lines.append(_quoted(_row(9)).encode().replace(b"PJSIP/trunk-", b"PJSIP/tr\xffunk-"))
    lines.append(_quoted(_row(10)).encode().replace(b"PJSIP/trunk-0000000a", b"PJSIP/trunk-0\xff00000a"))
    lines.append(_quoted(_row(11, billsec="۱۲")).encode())
    lines.append(_quoted(_row(12, billsec="12a")).encode())
    lines.append(_quoted(_row(13, billsec="1234567890123456")).encode())
    lines.append(_quoted(_row(14)).encode().replace(b'"55"', b'"5\xff"'))
    lines.append(_quoted(_row(15)).encode().replace(b"10:00:00", b"10:00:0\xff"))
    lines.append(_quoted(_row(16)).encode().replace(b'"DOCUMENTATION"', b'"DOC\x00UMENT"'))
    result = _same(_write(tmp_path, "utf8.csv", b"".join(lines)))
    assert result["skipped"] == {"bad start/answer/end time": 1}
    calls = {r[0]: r for c in result["calls"] for r in c}
    assert calls[3][2] == "\ufffd\ufffd"
    assert calls[11][13] == 0  # Persian digits: not ASCII, not seconds (cdr_csv._billsec)


def test_odd_billsec_values_count_as_zero(tmp_path: Path) -> None:
    """'²'.isdigit() but int('²') raises, and 19 digits overflow a C long: both paths read them as 0."""
    result = _same(_write(tmp_path, "sup.csv", _quoted(_row(1)) + _quoted(_row(2, billsec="²"))
                          + _quoted(_row(3, billsec="1" * 19)) + _quoted(_row(4, billsec="77"))))
    assert result["error"] is None
    calls = {r[0]: r for c in result["calls"] for r in c}
    assert [calls[n][13] for n in (2, 3, 4)] == [0, 0, 77]


def test_a_field_over_the_csv_limit(tmp_path: Path) -> None:
    long = _quoted(_row(2, clid="x" * 131_072)) + _quoted(_row(3, clid="é" * 131_072)) + _quoted(_row(4))
    assert _same(_write(tmp_path, "ok.csv", _quoted(_row(1)) + long))["error"] is None
    result = _same(_write(tmp_path, "long.csv", _quoted(_row(1)) + long + _quoted(_row(5, clid="y" * 131_073))))
    assert result["error"] is not None
    assert result["error"][0] == "InputFileError"
    assert "field limit" in result["error"][1]
    assert "long.csv:5: unreadable CSV" in result["error"][1]
    runaway = _quoted(_row(1)) + '"' + "z" * 600_000
    assert _same(_write(tmp_path, "runaway.csv", runaway))["error"] is not None


@pytest.mark.parametrize("count", [16, 17, 18, 21, 23])
def test_column_counts(tmp_path: Path, count: int) -> None:
    def cells(n: int, **kw: Any) -> list[str]:
        full = [*_row(n, **kw), "peer", f"1714557600.{n // 3}", str(n), "x", "y"]
        return full[:count]

    rows = [_quoted(cells(n, uniqueid=f"1714557600.{n // 2}")) for n in range(1, 9)]
    rows.insert(3, _quoted(cells(20)[:10]))  # short
    rows.insert(5, _quoted([*cells(21), "more", "cells"]))  # long
    rows.append(_quoted(cells(22, channel="")))
    result = _same(_write(tmp_path, f"c{count}.csv", "".join(rows)))
    assert result["skipped"] == {"10 columns instead of " + str(min(count, 21)): 1, "no channel": 1}


@pytest.mark.parametrize("first", [
    "name,phone\n", "\n", "a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q,r,s\n", "channel,calldate\n", "channel,start,answer\n",
    "Channel , CallDate ,end_time,src\n", "\ufeffchannel,start,end\n",
])
def test_first_lines(tmp_path: Path, first: str) -> None:
    """The header decides the columns; a first line that is no CDR row is an error, as in Python."""
    body = "PJSIP/a-0001,2024-03-20 10:00:00,2024-03-20 10:00:09,101\n"
    _same(_write(tmp_path, "first.csv", first + body + "\n" + body.replace("0001", "0002")))


def test_header_with_aliases(tmp_path: Path) -> None:
    header = "src,CHANNEL,dstchannel,calldate,answer_time,end_time,disposition,uniqueid,billsec,src\n"
    rows = [
        "101,PJSIP/101-0001,PJSIP/102-0002,2024-03-20 10:00:00,2024-03-20 10:00:03,2024-03-20 10:01:00,answered,u1,57,"
        "1011\n",
        "\n",
        "101,PJSIP/101-0001,,2024-03-20 10:00:00,,,no answer,u2,x,1012\n",
        "101,PJSIP/101-0003\n",
    ]
    result = _same(_write(tmp_path, "header.csv", header + "".join(rows)))
    assert result["rows_read"] == 4
    assert result["skipped"] == {"empty line": 1, "2 columns instead of 10": 1}
    # The first row after the header must be a CDR row.
    result = _same(_write(tmp_path, "bad.csv", header + "101,PJSIP/101-0003\n" + "".join(rows)))
    assert result["error"] is not None
    assert ":1: not an Asterisk CDR line" in result["error"][1]
    result = _same(_write(tmp_path, "noend.csv", "channel,start\n" + rows[0]))
    assert result["error"] is not None
    assert "no end column" in result["error"][1]


def test_files_without_rows(tmp_path: Path) -> None:
    assert _same(_write(tmp_path, "empty.csv", ""))["rows_read"] == 0
    assert _same(_write(tmp_path, "header.csv", "channel,start,end\r\n"))["rows_read"] == 0
    first_bad = _same(_write(tmp_path, "nochannel.csv", _quoted(_row(1, channel="")) + _quoted(_row(2))))
    assert first_bad["error"] is not None
    assert "no channel" in first_bad["error"][1]
    missing = _same(tmp_path / "missing.csv")
    assert missing["error"] is not None
    assert "cannot read: No such file or directory" in missing["error"][1]
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    assert _same(folder)["error"] is not None


_ODD_TIMES = [
    "", "2024-03-20 10:00:00", "2024-03-20 10:00:00.5", "2024-03-20T10:00:00", "2024-03-20 10:00:00+03:30",
    "2024-03-20T10:00Z", "2024-03-20", "2024-03-20 10:00", "20240320T100000", "2024-13-01 00:00:00",
    "2023-02-29 10:00:00", "2024-02-29 23:59:59", "2024-03-20 24:00:00", "2024-03-20 10:60:00", "2024-03-20 10:00:60",
    "0999-12-31 23:00:00", "1899-12-31 23:59:59", "2199-12-31 23:59:59", "2200-01-01 00:00:00", "yesterday",
    "2024-03-20 10:00:0x", " 2024-03-20 10:00:00", "2024-03-20 10:00:00 ", "2024-03-20 10:1:00", "0001-01-02 00:00:00",
    "2024-03-20 10:00:07", "2024-03-20 09:59:50", "2024-03-20 10:05:00",
]


@pytest.mark.parametrize("zone", [_TEHRAN, _BERLIN, _NEW_YORK, ZoneInfo("UTC"), ZoneInfo("Australia/Lord_Howe")],
                         ids=str)
def test_times(tmp_path: Path, zone: ZoneInfo) -> None:
    """Every odd time as start, answer and end: fallbacks, errors, clamping, as the Python path does."""
    rows = []
    n = 0
    pool = [  # DST changes: Berlin and New York (skipped and repeated hours), Tehran 2022
        *_ODD_TIMES, "2024-03-31 01:59:59", "2024-03-31 02:30:00", "2024-03-31 03:00:00", "2024-10-27 01:59:59",
        "2024-10-27 02:00:00", "2024-10-27 02:59:59", "2024-10-27 03:00:00", "2024-03-10 02:30:00",
        "2024-03-10 03:10:00", "2024-11-03 01:30:00", "2024-11-03 02:00:00", "2022-03-22 00:30:00",
        "2022-09-21 23:30:00", "2024-04-07 02:15:00", "2024-10-06 02:15:00",
    ]
    rng = random.Random(5)
    for start in pool:
        for end in (start, "", rng.choice(pool), rng.choice(pool)):
            for answer in ("", start, rng.choice(pool)):
                n += 1
                rows.append(_quoted(_row(n, start=start, answer=answer, end=end, uniqueid=f"u{n}")))
    # The first row must be usable in both paths.
    result = _same(_write(tmp_path, "times.csv", _quoted(_row(0)) + "".join(rows)), zone)
    assert result["error"] is None
    assert len(result["skipped"]) == 2


def test_a_time_out_of_range(tmp_path: Path) -> None:
    """Local midnight of 0001-01-01 is before datetime.min in UTC+3:30: both paths fail with OverflowError."""
    result = _same(_write(tmp_path, "min.csv", _quoted(_row(1)) + _quoted(_row(2, end="0001-01-01 00:00:00"))))
    assert result["error"] is not None
    assert result["error"][0] == "OverflowError"


def test_joins_and_merges(tmp_path: Path) -> None:
    """linkedid, uniqueid and channel-name joins, Local pairs, a channel name reused later, merges."""
    def t(second: int) -> str:
        return (datetime(2024, 3, 20, 10) + timedelta(seconds=second)).strftime("%Y-%m-%d %H:%M:%S")

    def leg(n: int, channel: str, dstchannel: str, start: int, end: int, uniqueid: str = "", linkedid: str = "") -> str:
        return _quoted(_row(n, channel=channel, dstchannel=dstchannel, start=t(start), answer="", end=t(end),
                            uniqueid=uniqueid, extra=("", linkedid, str(n))))

    rows = [
        leg(1, "PJSIP/a-0001", "PJSIP/b-0002", 0, 10, "u1", "L1"),
        leg(2, "PJSIP/c-0003", "", 1, 11, "u2", "L1"),                           # linkedid
        leg(3, "PJSIP/d-0004", "PJSIP/e-0005", 2, 12, "u1", ""),                 # uniqueid
        leg(4, "Local/100@x-000a;1", "PJSIP/f-0006", 3, 13, "u4", ""),
        leg(5, "Local/100@x-000a;2", "PJSIP/g-0007", 4, 14, "u5", ""),           # Local pair
        leg(6, "PJSIP/g-0007", "PJSIP/b-0002", 5, 15, "u6", ""),                 # merges 1-3 with 4-5
        leg(7, "PJSIP/a-0001", "", 30, 40, "u7", ""),                            # name reused: a new call
        leg(8, "DAHDI/1-1", "DAHDI/2-1", 31, 41, "", ""),
        leg(9, "DAHDI/1-1", "", 32, 42, "", ""),                                 # no key: alone
        leg(10, "PJSIP/h-0008", "PJSIP/a-0001", 33, 43, "u10", ""),              # joins 7
        leg(11, "PJSIP/i-0009", "", 34, 44, "u11", "L11"),
        leg(12, "PJSIP/j-000b", "PJSIP/i-0009", 35, 45, "u12", "L12"),
        leg(13, "PJSIP/k-000c", "PJSIP/h-0008", 36, 46, "u13", "L12"),           # merges 11, 12 and 7
        leg(14, "Local/a;b@x-00ff;2", "", 47, 48, "u14", ""),
        leg(15, "Local/a;b@x-00ff;1", "PJSIP/zz-fffff", 46, 49, "u15", ""),
        leg(16, "Local/nosuffix;1", "", 50, 51, "", ""),
        leg(17, "PJSIP/short-abc", "", 50, 51, "", ""),
        leg(18, "PJSIP/Upper-ABCD", "PJSIP/short-abc", 50, 51, "", ""),
        leg(19, "PJSIP/nodash", "PJSIP/Upper-ABCD", 51, 52, "", ""),
        leg(20, "PJSIP/late-0020", "", 52, 51, "u20", ""),                       # end before start
    ]
    result = _same(_write(tmp_path, "joins.csv", "".join(rows)))
    sizes = sorted(len(c) for c in result["calls"])
    assert max(sizes) >= 6
    assert len(result["calls"]) < 20


def test_late_legs_and_expiry(tmp_path: Path) -> None:
    """Calls finish during the file (expiry every 1000 rows); rows of finished calls are late, by uniqueid or
    linkedid; a channel name alone never makes a row late; old finished keys are forgotten."""
    def leg(n: int, minute: int, uniqueid: str, linkedid: str = "", channel: str = "") -> str:
        start = datetime(2024, 1, 1) + timedelta(minutes=minute)
        return _quoted(_row(n, channel=channel or f"PJSIP/trunk-{n:08x}", start=f"{start:%Y-%m-%d %H:%M:%S}",
                            answer="", end=f"{start + timedelta(seconds=30):%Y-%m-%d %H:%M:%S}", uniqueid=uniqueid,
                            extra=("", linkedid, "")))

    rows = [leg(n, n, f"{n}.1", f"L{n // 2}") for n in range(3000)]
    # The check at row 2000 (clock 1999:30) finishes the calls that ended before 1989:30 and forgets those
    # that ended before 1979:30.
    rows[2100:2100] = [
        leg(9000, 2100, "1985.1"),                                 # late by uniqueid
        leg(9001, 2100, "x.9001", "L993"),                         # late by linkedid (rows 1986 and 1987)
        leg(9002, 2100, "x.9002", "", "PJSIP/trunk-000007c1"),     # only an old channel name: a new call
        leg(9003, 2100, "1950.1"),                                 # too old to be remembered: a new call
    ]
    rows.insert(1500, leg(9004, 0, "x.9004", "L700"))              # out of order: joins its open call
    result = _same(_write(tmp_path, "late.csv", "".join(rows)), window=600.0)
    assert result["late"] == [2102, 2103]


# -- random files ----------------------------------------------------------------------------------------

_PIECES = {
    "text": ["", "a", "a,b", 'q"q', "x\ny", "r\rs", "\u0639\u0644\u06cc", "\ufffd", "  ", "ANSWERED", "busy"],
    "billsec": ["", "0", "7", "x", "\u06f3", "-1", "99"],
}


def _random_key(rng: random.Random, n: int, prefix: str) -> str:
    """A uniqueid or linkedid shared with rows nearby (calls of a few rows, some joined much later)."""
    return rng.choice(["", f"{prefix}{n // 2}", f"{prefix}{n // 3}", f"{prefix}{max(0, n - rng.randrange(0, 60))}",
                       f"{prefix}{n}"])


def _random_channel(rng: random.Random, n: int) -> str:
    return rng.choice([f"PJSIP/a-{n // 2:04x}", f"Local/1@x-{n // 3:04x};{rng.choice('12')}", "DAHDI/1-1", "",
                       "SIP/zz", f"PJSIP/\xe9-{n:04x}", f"PJSIP/b-{max(0, n - rng.randrange(0, 100)):04x}",
                       "PJSIP/reused-0001"])


def _random_time(rng: random.Random, base: datetime) -> str:
    when = base + timedelta(seconds=rng.randrange(-30, 300))
    choice = rng.random()
    if choice < 0.95:
        return f"{when:%Y-%m-%d %H:%M:%S}"
    if choice < 0.97:
        return ""
    if choice < 0.98:
        return when.isoformat(sep="T") + ".25"
    return rng.choice(["bad", "2024-02-30 00:00:00", f"{when:%Y-%m-%d %H:%M}"])


def _random_cell(rng: random.Random, text: str) -> bytes:
    data = text.encode("utf-8")
    if rng.random() < 0.02:
        data += rng.choice([b"\xff", b"\xe2\x82", b"\xc3"])
    style = rng.random()
    if style < 0.6 or any(c in data for c in b',"\r\n'):
        quoted = b'"' + data.replace(b'"', b'""') + b'"'
        if rng.random() < 0.02:
            quoted += rng.choice([b"x", b"\xac", b'"'])
        return quoted
    return data


def _random_file(rng: random.Random, rows: int) -> bytes:
    out = []
    width = rng.choice([16, 18, 18, 21])
    base = datetime(2024, rng.choice([3, 10]), rng.choice([20, 27, 31]), rng.randrange(0, 24))
    for n in range(rows):
        base += timedelta(seconds=rng.randrange(0, 20))
        start = _random_time(rng, base)
        cells = ["", rng.choice(_PIECES["text"]), "100", rng.choice(_PIECES["text"]), rng.choice(_PIECES["text"]),
                 _random_channel(rng, n), _random_channel(rng, n), "Dial", rng.choice(_PIECES["text"]),
                 start, rng.choice([start, "", _random_time(rng, base)]), _random_time(rng, base), "1",
                 rng.choice(_PIECES["billsec"]), rng.choice(["ANSWERED", "no answer", "Busy", ""]), "DOC",
                 _random_key(rng, n, "u"), "", "", _random_key(rng, n, "L"), str(n)]
        if n == 0:
            cells[5], cells[9] = "PJSIP/first-0000", f"{base:%Y-%m-%d %H:%M:%S}"
        count = width if rng.random() < 0.99 or n == 0 else rng.randrange(0, 23)
        line = b",".join(_random_cell(rng, c) for c in ([*cells, "extra", "x"])[:count])
        out.append(line + rng.choice([b"\n", b"\n", b"\r\n", b"\r"]))
    return b"".join(out)


@pytest.mark.parametrize("seed", range(24))
def test_random_files(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    rows = 2600 if seed % 4 == 0 else 120
    path = _write(tmp_path, "random.csv", _random_file(rng, rows))
    zone = rng.choice([_TEHRAN, _BERLIN, _NEW_YORK])
    _same(path, zone, rng.choice([2.0, 60.0, 300.0, 3600.0]))


_NOISE = [b",", b'"', b'""', b"\r", b"\n", b"\r\n", b"\xff", b"\xe2\x82", b"\xac", b" ", b"\x00", b"x"]


@pytest.mark.parametrize("seed", range(12))
def test_mutated_files(tmp_path: Path, seed: int) -> None:
    """A valid file with bytes of the CSV syntax sprinkled in, read in chunks that end anywhere."""
    rng = random.Random(1000 + seed)
    clean = b"".join(_quoted(_row(n, uniqueid=f"u{n // 3}", clid=rng.choice(["علی", "a b", ""]))).encode()
                     for n in range(150))
    first = clean.index(b"\n") + 1
    data = bytearray(clean)
    for _ in range(rng.randrange(5, 60)):
        at = rng.randrange(first, len(data))
        data[at:at + rng.randrange(0, 2)] = rng.choice(_NOISE)
    path = _write(tmp_path, "mutated.csv", bytes(data))
    _same(path, chunk_sizes=(1 << 20, 1, 2, 3, 7, 61, 4096))


def test_small_chunks(tmp_path: Path) -> None:
    for trace in _TRACE_FILES[:4]:
        _same(trace, chunk_sizes=(1, 5, 64))


def _chunks(groups: Groups) -> Iterator[list[list[Row]]]:
    yield from groups


def test_chunks_follow_the_expiry_checks(tmp_path: Path) -> None:
    """A list per expiry check (every 1000 rows) that finished calls, then the rest at the end; counters as it goes."""
    path = tmp_path / "Master.csv"
    write_master_file(path, 5000)
    groups = Groups(str(path), _TEHRAN, 600.0, LocalTimes(_TEHRAN).parse)
    seen = []
    for chunk in _chunks(groups):
        seen.append((groups.rows_read, len(chunk)))
    assert [r for r, _ in seen] == [1000, 2000, 3000, 4000, 5000, 5000]
    assert all(count > 0 for _, count in seen)
    assert next(groups, None) is None
