# cython: language_level=3
"""The compiled call builder and COPY encoder of the history import (CDR rows without CEL).

A faithful port of cdr_import.call_identity / CallMaker.build and cdr_calls.CallBuilder.build with no
CEL events, and of cdr_store.BinaryBatch's encoding: the output is identical to the Python path, byte for
byte (tests/test_cdrcore_build.py compares them). The per-value rules (which extension a channel stands
for, number normalisation, caller names) stay in CallBuilder and are called through bounded caches.
Times are int64 microseconds since 2000-01-01 UTC, as in Row.
"""

cimport cython

import logging
import re
from datetime import UTC, datetime, timedelta

from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.math cimport floor
from libc.stdlib cimport free, realloc
from libc.string cimport memcpy

from ingest._cdrrow cimport Row

log = logging.getLogger("ingest.cdr_import")  # CallMaker's logger: the same warnings in the same place

cdef long long _SLACK = 1000000  # 1 s
cdef Py_ssize_t _CACHE_LIMIT = 100000
cdef object _UNSET = object()
cdef tuple _EMPTY = ()
cdef object _EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
cdef object _UNIQUEID = re.compile(r"^(.*)\.(\d+)$")

# Codes of the words a call is made of, and the words.
cdef enum:
    INCOMING = 0
    OUTGOING = 1
    INTERNAL = 2
    ST_ANSWERED = 0
    ST_MISSED = 1
    ST_UNANSWERED = 2
    R_NONE = -1
    R_ABANDONED = 0
    R_NO_ANSWER = 1
    R_BUSY = 2
    R_FAILED = 3
    R_VOICEMAIL = 4
    R_IVR = 5
    B_ANSWERED = 0
    B_QUEUE = 1
    B_BLIND = 2
    B_ATTENDED = 3
    O_ANSWERED = 0
    O_NO_ANSWER = 1
    O_BUSY = 2
    O_CANCELLED = 3
    O_ELSEWHERE = 4
    O_FAILED = 5
    APP_OTHER = 0
    APP_QUEUE = 1
    APP_VOICEMAIL = 2
cdef tuple _DIRECTIONS = ("incoming", "outgoing", "internal")
cdef tuple _STATUSES = ("answered", "missed", "unanswered")
cdef tuple _REASONS = ("abandoned", "no_answer", "busy", "failed", "voicemail", "ivr")
cdef tuple _BEGAN_BY = ("answered", "queue", "blind_transfer", "attended_transfer")
cdef tuple _OUTCOMES = ("answered", "no_answer", "busy", "cancelled", "answered_elsewhere", "failed")


cdef inline str _pair_of(str channel):
    """cdr_calls.pair_of: a Local pair's common name, else the channel itself."""
    cdef Py_ssize_t semi
    if channel.startswith("Local/"):
        semi = channel.rfind(";")
        if semi > 0:
            return channel[:semi]
    return channel


cdef str _channel_key(str channel):
    """cdr_calls._channel_key: the name without its unique suffix (and a Local pair's half)."""
    cdef Py_ssize_t slash = channel.find("/")
    cdef Py_ssize_t semi, cut
    if slash < 0:
        return channel
    if channel.startswith("Local/"):
        semi = channel.rfind(";")
        if semi >= 0:
            channel = channel[:semi]
    cut = channel.rfind("-")
    return channel[:cut] if cut > slash + 1 else channel


cdef object _plain_name(str clid):
    """cdr_calls._caller_name of a clid of the plain shape `"Name" <number>` (printable ASCII, no quote, `<`
    or `>` in the name, no `>` in the number); _UNSET for any other clid.

    On that shape the regex's lazy name group is exactly what lies between the quotes, and stripping it
    removes only spaces: the name without its outer spaces, None when empty.
    """
    cdef Py_ssize_t n = len(clid), k, i, a, b
    cdef Py_UCS4 c
    if n < 5 or not clid.isascii() or clid[0] != '"' or clid[n - 1] != '>':
        return _UNSET
    k = 1
    while k < n:
        c = clid[k]
        if c == '"':
            break
        if c < ' ' or c > '~' or c == '<' or c == '>':
            return _UNSET
        k += 1
    if k + 3 > n - 1 or clid[k + 1] != ' ' or clid[k + 2] != '<':
        return _UNSET
    for i in range(k + 3, n - 1):
        c = clid[i]
        if c < ' ' or c > '~' or c == '>':
            return _UNSET
    a = 1
    b = k
    while a < b and clid[a] == ' ':
        a += 1
    while b > a and clid[b - 1] == ' ':
        b -= 1
    if a == b:
        return None
    return clid[a:b]


cdef bint _ascii_lower_is(str text, str lowered):
    """text.lower() == lowered, for an ASCII text as long as the lower-case ASCII word `lowered`."""
    cdef Py_ssize_t i
    cdef Py_UCS4 c
    for i in range(len(lowered)):
        c = text[i]
        if 'A' <= c <= 'Z':
            c = <Py_UCS4>(<unsigned int>c + 32)
        if c != lowered[i]:
            return False
    return True


cdef inline double _seconds(long long micros):
    # timedelta.total_seconds(): the int microseconds divided by 10**6, correctly rounded (exact below 2**53).
    return <double>micros / 1e6


@cython.no_gc
@cython.freelist(64)
cdef class _Leg:
    cdef str extension
    cdef Row row
    cdef str agent_channel
    cdef long long end
    cdef Row inner
    cdef long long answer
    cdef int began_by


@cython.no_gc
@cython.freelist(4096)
cdef class _Seg:
    cdef str extension
    cdef int began_by
    cdef long long ring_start, answer, end
    cdef str channel


@cython.no_gc
@cython.freelist(4096)
cdef class _Ring:
    cdef str extension
    cdef long long start, end
    cdef int outcome
    cdef long long key_start
    cdef Py_ssize_t key_line


@cython.no_gc
@cython.freelist(4096)
cdef class _Call:
    cdef str call_id
    cdef tuple linkedids
    cdef int direction, status, reason
    cdef str caller, callee
    cdef object caller_name, external
    cdef long long start, end, answer
    cdef bint has_answer
    cdef tuple segments
    cdef tuple rang


cdef tuple _linkedids_of(list rows):
    """tuple(sorted({r.linkedid for r in rows if r.linkedid})), without a set for the usual one or none."""
    cdef str one = None
    cdef Row row
    for row in rows:
        if row.linkedid:
            if one is None:
                one = row.linkedid
            elif row.linkedid != one:
                return tuple(sorted({row.linkedid for row in rows if row.linkedid}))
    return _EMPTY if one is None else (one,)


cdef bint _in_order(list rows):
    """Whether rows are sorted by (start, line) already."""
    cdef Py_ssize_t i, n = len(rows)
    cdef Row a, b
    for i in range(1, n):
        a = rows[i - 1]
        b = rows[i]
        if a.start > b.start or (a.start == b.start and a.line > b.line):
            return False
    return True


cdef void _sort_rows(list rows):
    """Stable insertion sort by (start, line): sorted(rows, key=_row_order) for the few rows of a call."""
    cdef Py_ssize_t i, j, n = len(rows)
    cdef Row row, other
    for i in range(1, n):
        row = rows[i]
        j = i - 1
        while j >= 0:
            other = rows[j]
            if other.start < row.start or (other.start == row.start and other.line <= row.line):
                break
            rows[j + 1] = other
            j -= 1
        rows[j + 1] = row


cdef void _sort_legs(list legs):
    """Stable sort by (answer, line)."""
    cdef Py_ssize_t i, j, n = len(legs)
    cdef _Leg leg, other
    for i in range(1, n):
        leg = legs[i]
        j = i - 1
        while j >= 0:
            other = legs[j]
            if other.answer < leg.answer or (other.answer == leg.answer and other.row.line <= leg.row.line):
                break
            legs[j + 1] = other
            j -= 1
        legs[j + 1] = leg


cdef void _sort_attempts(list attempts):
    """Stable sort by (start, line) of the leg."""
    cdef Py_ssize_t i, j, n = len(attempts)
    cdef _Ring a, other
    for i in range(1, n):
        a = attempts[i]
        j = i - 1
        while j >= 0:
            other = attempts[j]
            if other.key_start < a.key_start or (other.key_start == a.key_start and other.key_line <= a.key_line):
                break
            attempts[j + 1] = other
            j -= 1
        attempts[j + 1] = a


cdef class Builder:
    """Builds the calls of groups of Rows as CallBuilder.build (no CEL) and batches them as produce_calls."""

    cdef readonly object calls
    cdef str system_name
    cdef int source
    cdef dict _ext_b, _ext_a, _isext, _norm, _names, _apps
    cdef Py_ssize_t _ext_a_size
    cdef object _extension, _is_ext, _normalize, _caller_name, _dialled
    # Scratch lists of the call being built (reused: no allocation, nothing for the GC to track).
    cdef list _pairs, _found_ext, _found_inner, _trunk, _answered, _rang, _merged, _work
    # call_identity's answer.
    cdef str _call_id
    cdef tuple _linkedids

    def __init__(self, calls):
        from ingest.channels import dialled_number

        self.calls = calls
        self.system_name = calls.system.name
        source = calls.system.extension_from
        self.source = 0 if source == "endpoint" else 1 if source == "callerid" else 2
        self._ext_b = {}
        self._ext_a = {}
        self._isext = {}
        self._norm = {}
        self._names = {}
        self._apps = {}
        self._extension = calls.extension
        self._is_ext = calls.is_extension_number
        self._normalize = calls.normalize
        self._caller_name = calls.caller_name
        self._dialled = dialled_number
        self._pairs = []
        self._found_ext = []
        self._found_inner = []
        self._trunk = []
        self._answered = []
        self._rang = []
        self._merged = []
        self._work = []

    # --- the per-value rules, cached in front of CallBuilder's (pure functions of their keys) ---

    cdef object _ext_of(self, str channel):
        """CallBuilder.extension(channel): party B (no caller ID, account code or context)."""
        if not channel:
            return None
        cdef str key = _channel_key(channel)
        found = self._ext_b.get(key, _UNSET)
        if found is _UNSET:
            found = self._extension(channel)
            if len(self._ext_b) >= _CACHE_LIMIT:
                self._ext_b.clear()
            self._ext_b[key] = found
        return found

    cdef object _a_party(self, Row row):
        """CallBuilder._a_party."""
        if not row.channel:
            return None
        # Keyed as CallBuilder.extension: (channel key, candidate, context); by context (and candidate) first.
        outer = row.dcontext if self.source == 0 else (
            row.src if self.source == 1 else row.accountcode, row.dcontext)
        cdef dict inner = self._ext_a.get(outer)
        if inner is None:
            inner = self._ext_a[outer] = {}
        cdef str key = _channel_key(row.channel)
        found = inner.get(key, _UNSET)
        if found is _UNSET:
            found = self._extension(row.channel, row.src, row.accountcode, row.dcontext)
            self._ext_a_size += 1
            if self._ext_a_size >= _CACHE_LIMIT:
                self._ext_a.clear()
                self._ext_a_size = 0
                inner = self._ext_a[outer] = {}
            inner[key] = found
        return found

    cdef bint _is_extension_number(self, str number) except -1:
        found = self._isext.get(number)
        if found is None:
            found = bool(self._is_ext(number))
            if len(self._isext) >= _CACHE_LIMIT:
                self._isext.clear()
            self._isext[number] = found
        return found is True

    cdef object _normalized(self, str number):
        found = self._norm.get(number, _UNSET)
        if found is _UNSET:
            found = self._normalize(number)
            if len(self._norm) >= _CACHE_LIMIT:
                self._norm.clear()
            self._norm[number] = found
        return found

    cdef object _name_of(self, str clid):
        """CallBuilder.caller_name: worked out here for the plain `"Name" <number>` shape, else cached."""
        found = _plain_name(clid)
        if found is not _UNSET:
            return found
        found = self._names.get(clid, _UNSET)
        if found is _UNSET:
            found = self._caller_name(clid)
            if len(self._names) >= _CACHE_LIMIT:
                self._names.clear()
            self._names[clid] = found
        return found

    cdef int _app(self, str lastapp) except -1:
        """What `lastapp.lower()` says: Queue, VoiceMail or something else."""
        cdef Py_ssize_t n = len(lastapp)
        if lastapp.isascii():
            # ASCII lowers letter by letter: only 5 or 9 letters can be "queue" or "voicemail".
            if n == 5:
                return APP_QUEUE if _ascii_lower_is(lastapp, "queue") else APP_OTHER
            if n == 9:
                return APP_VOICEMAIL if _ascii_lower_is(lastapp, "voicemail") else APP_OTHER
            return APP_OTHER
        found = self._apps.get(lastapp)
        if found is None:
            lowered = lastapp.lower()
            found = APP_QUEUE if lowered == "queue" else APP_VOICEMAIL if lowered == "voicemail" else APP_OTHER
            if len(self._apps) >= 1000:
                self._apps.clear()
            self._apps[lastapp] = found
        return <int>found

    # --- CallBuilder.build ---

    cdef object _b_party(self, Py_ssize_t i, list rows, list pairs, list found_ext, list found_inner):
        """CallBuilder._b_party of rows[i] (worked out once): the extension; found_inner[i] gets the inner row."""
        cdef Row row, inner
        cdef Py_ssize_t j, n
        cdef str pair
        extension = found_ext[i]
        if extension is not _UNSET:
            return extension
        row = rows[i]
        extension = None
        if row.dstchannel:
            if row.dstchannel.startswith("Local/"):
                pair = _pair_of(row.dstchannel)
                n = len(rows)
                for j in range(n):
                    inner = rows[j]
                    if inner is not row and inner.dstchannel and <str>pairs[j] == pair:
                        extension = self._ext_of(inner.dstchannel)
                        if extension is not None:
                            found_ext[i] = extension
                            found_inner[i] = inner
                            return extension
            extension = self._ext_of(row.dstchannel)
        found_ext[i] = extension
        return extension

    cdef _Call _build(self, list rows, str call_id, tuple linkedids):
        cdef Py_ssize_t n = len(rows), i, m
        cdef Row root = rows[0]
        cdef Row row, inner, first
        cdef str root_pair, anchor, agent_channel
        cdef list pairs, found_ext, found_inner, trunk, answered, rang
        cdef tuple segments
        cdef int direction, reason
        cdef bint took
        cdef _Leg leg
        cdef _Seg seg
        cdef _Call call
        cdef long long end

        pairs = self._pairs
        found_ext = self._found_ext
        found_inner = self._found_inner
        trunk = self._trunk
        answered = self._answered
        rang = self._rang
        if trunk:
            del trunk[:]
        if answered:
            del answered[:]
        if rang:
            del rang[:]
        # Per row: its pair (pair_of(channel)) and its party B, not worked out yet. Slots are overwritten.
        m = len(pairs)
        if m > 64 and n < m:
            del pairs[n:], found_ext[n:], found_inner[n:]  # let a large call's rows go
            m = n
        for i in range(n):
            if i < m:
                pairs[i] = _pair_of((<Row>rows[i]).channel)
                found_ext[i] = _UNSET
                found_inner[i] = None
            else:
                pairs.append(_pair_of((<Row>rows[i]).channel))
                found_ext.append(_UNSET)
                found_inner.append(None)
        caller_extension = self._a_party(root)
        root_pair = pairs[0]
        for i in range(n):
            row = rows[i]
            if row.dstchannel and <str>pairs[i] == root_pair \
                    and self._b_party(i, rows, pairs, found_ext, found_inner) is None:
                trunk.append(row)
        if caller_extension is None:
            direction = INCOMING
        elif trunk or (len(root.dst) > 5 and root.dst.isdigit() and not self._is_extension_number(root.dst)):
            direction = OUTGOING
        else:
            direction = INTERNAL
        if direction == OUTGOING and trunk:
            anchor = _pair_of((<Row>trunk[0]).dstchannel)
        else:
            anchor = root_pair

        # _legs
        for i in range(n):
            row = rows[i]
            if <str>pairs[i] == anchor:
                extension = self._b_party(i, rows, pairs, found_ext, found_inner)
                inner = found_inner[i]
                agent_channel = inner.dstchannel if inner is not None else row.dstchannel
            elif row.dstchannel and _pair_of(row.dstchannel) == anchor:
                extension = self._a_party(row)
                inner = None
                agent_channel = row.channel
            else:
                continue
            if extension is None:
                continue
            leg = _Leg.__new__(_Leg)
            leg.extension = extension
            leg.row = row
            leg.agent_channel = agent_channel
            leg.end = row.end
            leg.inner = inner
            leg.began_by = B_ANSWERED
            took = row.has_answer and row.disposition == "ANSWERED"
            if took and inner is not None and (inner.disposition != "ANSWERED" or not inner.has_answer):
                took = False  # the Local half answered, the phone behind it did not
            (answered if took else rang).append(leg)

        segments = self._segments(answered, rows) if answered else _EMPTY
        call = _Call.__new__(_Call)
        call.call_id = call_id
        call.linkedids = linkedids
        call.direction = direction
        call.start = root.start
        end = root.end
        for i in range(1, n):
            row = rows[i]
            if row.end > end:
                end = row.end
        call.end = end if end > root.start else root.start
        if segments:
            call.has_answer = True
            call.answer = (<_Seg>segments[0]).answer
            call.status = ST_ANSWERED
            reason = R_NONE
        else:
            call.has_answer = False
            call.answer = 0
            call.status = ST_MISSED if direction == INCOMING else ST_UNANSWERED
            reason = self._reason(direction, root, rows, rang, trunk)
        call.reason = reason
        call.caller = root.src
        call.caller_name = self._name_of(root.clid)
        if direction == OUTGOING:
            first = trunk[0] if trunk else root
            callee = first.dst if first.dst != "" and first.dst != "s" else self._dialled(first.lastdata)
            call.callee = callee
            call.external = self._normalized(callee) if callee else None
        else:
            call.callee = self._callee(root, rows, direction)
            call.external = self._normalized(root.src) if direction == INCOMING and root.src else None
        call.segments = segments
        if direction != OUTGOING and (answered or rang):
            call.rang = self._ring_attempts(answered, rang, segments, reason)
        else:
            call.rang = _EMPTY
        return call

    cdef tuple _segments(self, list legs, list rows):
        cdef _Leg leg, last
        cdef Row row, r
        cdef bint found, has_completed
        cdef long long best, completed, ring_start
        cdef int kind
        cdef list merged
        cdef _Seg seg
        cdef str target1, target2, pair
        for leg in legs:
            row = leg.row
            leg.answer = row.answer
            if leg.inner is not None and leg.inner.has_answer and leg.inner.answer > leg.answer:
                leg.answer = leg.inner.answer
            if self._app(row.lastapp) == APP_QUEUE:
                leg.began_by = B_QUEUE
                # The caller was answered by the queue; members stop ringing when one answers.
                found = False
                best = 0
                for r in rows:
                    if self._app(r.lastapp) == APP_QUEUE and r.disposition != "ANSWERED" \
                            and r.channel == row.channel and row.start <= r.end <= row.end:
                        if not found or r.end > best:
                            best = r.end
                        found = True
                if found and best > leg.answer:
                    leg.answer = best
        if len(legs) > 1:
            _sort_legs(legs)
        merged = self._merged
        if merged:
            del merged[:]
        for leg in legs:
            if merged:
                last = merged[len(merged) - 1]
                if last.extension == leg.extension and leg.answer <= last.end + _SLACK:
                    if leg.end > last.end:
                        last.end = leg.end  # one turn written as two rows (hold, park)
                    continue
                # _transfer_kind without CEL
                has_completed = False
                completed = 0
                if leg.began_by == B_QUEUE:
                    kind = B_QUEUE
                else:
                    kind = B_BLIND
                    target1 = _pair_of(leg.row.dstchannel)
                    target2 = _pair_of(leg.agent_channel)
                    for r in rows:
                        if r.channel == last.agent_channel:
                            pair = _pair_of(r.dstchannel)
                            if pair == target1 or pair == target2:
                                kind = B_ATTENDED
                                completed = r.end
                                has_completed = True
                                break
                leg.began_by = kind
                if has_completed and leg.answer <= completed <= leg.end:
                    # The previous agent's turn (with the caller on hold) lasts until the transfer completes.
                    if completed > last.end:
                        last.end = completed
                    leg.answer = completed
            merged.append(leg)
        segments = self._work
        if segments:
            del segments[:]
        for leg in merged:
            ring_start = leg.inner.start if leg.inner is not None else leg.row.start
            seg = _Seg.__new__(_Seg)
            seg.extension = leg.extension
            seg.began_by = leg.began_by
            seg.ring_start = ring_start if ring_start < leg.answer else leg.answer
            seg.answer = leg.answer
            seg.end = leg.end if leg.end > leg.answer else leg.answer
            seg.channel = leg.agent_channel
            segments.append(seg)
        return tuple(segments)

    cdef int _reason(self, int direction, Row root, list rows, list rings, list trunk) except -2:
        """CallBuilder._reason without CEL: why nobody answered."""
        cdef Row r
        cdef _Leg leg
        cdef bint busy, failed, other, after, voicemail
        cdef long long last
        cdef str disposition
        cdef set ring_rows
        if direction != INCOMING:
            # dispositions == {X} for X in BUSY, FAILED, CONGESTION
            if trunk:
                dialled = trunk
            elif rings:
                dialled = [(<_Leg>leg).row for leg in rings]
            else:
                dialled = [root]
            disposition = (<Row>dialled[0]).disposition
            for r in dialled:
                if r.disposition != disposition:
                    return R_NO_ANSWER
            if disposition == "BUSY":
                return R_BUSY
            if disposition == "FAILED" or disposition == "CONGESTION":
                return R_FAILED
            return R_NO_ANSWER
        if rings:
            busy = failed = other = False
            last = 0
            ring_rows = set()
            for leg in rings:
                disposition = leg.row.disposition
                if disposition == "BUSY":
                    busy = True
                elif disposition == "FAILED" or disposition == "CONGESTION":
                    failed = True
                else:
                    other = True
                if not ring_rows or leg.row.end > last:
                    last = leg.row.end
                ring_rows.add(id(leg.row))
            if busy and not failed and not other:
                return R_BUSY
            if not busy and not other:
                return R_FAILED
            after = voicemail = False
            for r in rows:
                if r.channel == root.channel and r.start >= last - _SLACK and id(r) not in ring_rows:
                    after = True
                    if self._app(r.lastapp) == APP_VOICEMAIL:
                        voicemail = True
            if voicemail:
                return R_VOICEMAIL
            # The dialplan went on after the ringing: the caller was still there (timeout).
            return R_NO_ANSWER if after else (R_BUSY if busy else R_ABANDONED)
        for r in rows:
            if self._app(r.lastapp) == APP_VOICEMAIL:
                return R_VOICEMAIL
        for r in rows:
            if self._app(r.lastapp) == APP_QUEUE:
                return R_ABANDONED
        for r in rows:
            if r.has_answer:
                return R_IVR  # answered by the PBX (menu, announcement) but never by an agent
        disposition = root.disposition
        if disposition == "BUSY":
            return R_BUSY
        if disposition == "FAILED" or disposition == "CONGESTION":
            return R_FAILED
        return R_ABANDONED  # the caller hung up before anything answered or rang

    cdef str _callee(self, Row root, list rows, int direction):
        """CallBuilder._callee without CEL: the number the caller dialled, never `s`."""
        cdef Row row
        if direction == INTERNAL:
            return root.dst
        for row in rows:
            if row.dst and row.dst != "s" and not self._is_extension_number(row.dst):
                return row.dst
        return root.dst if root.dst != "s" else ""

    cdef tuple _ring_attempts(self, list answered, list rang, tuple segments, int reason):
        cdef list attempts = self._work
        cdef _Leg leg
        cdef _Ring a
        cdef _Seg s
        cdef long long start, low, high
        cdef str disposition
        cdef int outcome
        if attempts:
            del attempts[:]
        for leg in answered:
            start = leg.inner.start if leg.inner is not None else leg.row.start
            a = _Ring.__new__(_Ring)
            a.extension = leg.extension
            a.start = start if start < leg.answer else leg.answer
            a.end = leg.answer
            a.outcome = O_ANSWERED
            a.key_start = start
            a.key_line = leg.row.line
            attempts.append(a)
        for leg in rang:
            start = leg.inner.start if leg.inner is not None else leg.row.start
            disposition = leg.row.disposition
            if disposition == "BUSY":
                outcome = O_BUSY
            elif disposition == "FAILED" or disposition == "CONGESTION":
                outcome = O_FAILED
            else:
                outcome = O_CANCELLED if reason == R_ABANDONED else O_NO_ANSWER
                low = start - _SLACK
                high = leg.row.end + _SLACK
                for s in segments:
                    if low <= s.answer <= high:
                        outcome = O_ELSEWHERE
                        break
            a = _Ring.__new__(_Ring)
            a.extension = leg.extension
            a.start = start
            a.end = leg.row.end if leg.row.end > start else start
            a.outcome = outcome
            a.key_start = start
            a.key_line = leg.row.line
            attempts.append(a)
        if len(attempts) > 1:
            _sort_attempts(attempts)
        return tuple(attempts)

    cdef int _identity(self, list rows) except -1:
        """cdr_import.call_identity of the sorted rows: sets _call_id and _linkedids (every Linkedid)."""
        if not rows:
            raise ValueError("min() iterable argument is empty")  # as call_identity fails on no rows
        cdef Row root = rows[0]
        cdef Row row
        cdef tuple linkedids
        if len(rows) == 1:
            linkedids = (root.linkedid,) if root.linkedid else _EMPTY
        else:
            linkedids = _linkedids_of(rows)
        self._linkedids = linkedids
        if root.linkedid:
            self._call_id = root.linkedid
            return 0
        if linkedids:
            self._call_id = linkedids[0]
            return 0
        self._linkedids = _EMPTY
        if root.uniqueid:
            match = _UNIQUEID.match(root.uniqueid) if root.channel.startswith("Local/") else None
            if match and root.channel.endswith(";2"):
                # An originated Local pair: its ;1 half (uniqueid one less) has no CDR row but is the Linkedid.
                self._call_id = f"{match.group(1)}.{int(match.group(2)) - 1}"
            else:
                self._call_id = root.uniqueid
            return 0
        start = _EPOCH + timedelta(microseconds=root.start)
        self._call_id = f"cdr-{root.channel}-{int(start.timestamp())}"
        return 0

    def build(self, rows):
        """The call of one group of rows (as CallMaker.build without CEL), as a CallRecord; raises as it does."""
        cdef list ordered = list(rows)
        if len(ordered) > 1:
            _sort_rows(ordered)
        self._identity(ordered)
        return _record(self._build(ordered, self._call_id, self._linkedids), self.system_name)

    def batches(self, groups, Py_ssize_t batch_size, stats, str path):
        """Batches of batch_size calls (the last one shorter) of the groups' calls (each group: one call's Rows),
        as produce_calls batches them; counts built and unbuildable calls into `stats` as CallMaker does."""
        cdef list calls = []
        cdef list ordered, rows
        cdef _Call call
        cdef Py_ssize_t size = batch_size, built = 0
        try:
            for group in groups:
                rows = group if type(group) is list else list(group)
                if len(rows) > 1 and not _in_order(rows):
                    ordered = list(rows)
                    _sort_rows(ordered)
                else:
                    ordered = rows
                self._identity(ordered)
                try:
                    call = self._build(ordered, self._call_id, self._linkedids)
                except (ValueError, AssertionError) as exc:
                    log.warning("%s:%d: call %s could not be built: %s", path, (<Row>rows[0]).line, self._call_id,
                                exc)
                    stats.skipped["call could not be built"] += len(rows)
                    continue
                built += 1
                calls.append(call)
                if len(calls) >= size:
                    stats.calls_built += built  # counted per call, told before each batch (as produce_calls)
                    built = 0
                    yield _make_batch(calls, self.system_name)
                    calls = []
        finally:
            if built:
                stats.calls_built += built
        if calls:
            yield _make_batch(calls, self.system_name)


cdef Batch _make_batch(list calls, str system_name):
    cdef Batch batch = Batch.__new__(Batch)
    batch._calls = calls
    batch._system = system_name
    batch.call_ids = [(<_Call>c).call_id for c in calls]
    return batch


cdef object _when(long long micros):
    return _EPOCH + timedelta(microseconds=micros)


cdef object _record(_Call call, str system_name):
    from ingest.records import CallRecord, RingAttempt, Segment

    cdef _Seg s
    cdef _Ring a
    return CallRecord(
        system=system_name, call_id=call.call_id, direction=_DIRECTIONS[call.direction],
        status=_STATUSES[call.status], reason=None if call.reason == R_NONE else _REASONS[call.reason],
        caller=call.caller, callee=call.callee, start=_when(call.start), end=_when(call.end),
        answer=_when(call.answer) if call.has_answer else None, caller_name=call.caller_name,
        external_number=call.external, linkedids=call.linkedids,
        segments=tuple([Segment(s.extension, _BEGAN_BY[s.began_by], _when(s.ring_start), _when(s.answer),
                                _when(s.end), s.channel) for s in call.segments]),
        rang=tuple([RingAttempt(a.extension, _when(a.start), _when(a.end), _OUTCOMES[a.outcome])
                    for a in call.rang]),
    )


# --- COPY binary encoding (cdr_store.BinaryBatch) ---

cdef struct Buf:
    char* data
    Py_ssize_t size
    Py_ssize_t cap


cdef Buf _pool_calls, _pool_segments, _pool_rings  # zeroed C statics
cdef bint _pool_busy = False


cdef void _release(Buf* b):
    """Keep a pooled buffer for the next encode, unless it grew very large."""
    if b.cap > 64 * 1024 * 1024:
        free(b.data)
        b.data = NULL
        b.cap = 0
    b.size = 0


cdef int _grow(Buf* b, Py_ssize_t need) except -1:
    cdef Py_ssize_t cap = b.cap * 2 if b.cap else 65536
    cdef char* data
    while cap < b.size + need:
        cap *= 2
    data = <char*>realloc(b.data, cap)
    if data == NULL:
        raise MemoryError()
    b.data = data
    b.cap = cap
    return 0


cdef inline int _i16(Buf* b, int value) except -1:
    cdef unsigned char* p
    if b.size + 2 > b.cap:
        _grow(b, 2)
    p = <unsigned char*>b.data + b.size
    p[0] = (value >> 8) & 0xff
    p[1] = value & 0xff
    b.size += 2
    return 0


cdef inline int _i32(Buf* b, long value) except -1:
    cdef unsigned int v = <unsigned int>value
    cdef unsigned char* p
    if b.size + 4 > b.cap:
        _grow(b, 4)
    p = <unsigned char*>b.data + b.size
    p[0] = (v >> 24) & 0xff
    p[1] = (v >> 16) & 0xff
    p[2] = (v >> 8) & 0xff
    p[3] = v & 0xff
    b.size += 4
    return 0


cdef inline int _i64(Buf* b, long long value) except -1:
    """An int8 or timestamptz field: its length (8) and the value."""
    cdef unsigned long long v = <unsigned long long>value
    cdef unsigned char* p
    cdef int k
    if b.size + 12 > b.cap:
        _grow(b, 12)
    p = <unsigned char*>b.data + b.size
    p[0] = 0
    p[1] = 0
    p[2] = 0
    p[3] = 8
    for k in range(8):
        p[4 + k] = (v >> (56 - 8 * k)) & 0xff
    b.size += 12
    return 0


cdef inline int _raw(Buf* b, const char* data, Py_ssize_t length) except -1:
    if b.size + length > b.cap:
        _grow(b, length)
    memcpy(b.data + b.size, data, length)
    b.size += length
    return 0


cdef inline int _text(Buf* b, str value) except -1:
    cdef Py_ssize_t length
    cdef const char* data = PyUnicode_AsUTF8AndSize(value, &length)
    _i32(b, length)
    _raw(b, data, length)
    return 0


cdef int _array_head(Buf* b, Py_ssize_t n, Py_ssize_t body) except -1:
    """A one-dimensional text[] field's length and header (the empty array as BinaryBatch writes it)."""
    if n == 0:
        _i32(b, 12)
        _i32(b, 0)
        _i32(b, 0)
        _i32(b, 25)
        return 0
    _i32(b, 20 + body)
    _i32(b, 1)
    _i32(b, 0)
    _i32(b, 25)
    _i32(b, n)
    _i32(b, 1)
    return 0


cdef inline Py_ssize_t _utf8_length(str value) except -1:
    cdef Py_ssize_t length
    PyUnicode_AsUTF8AndSize(value, &length)
    return length


cdef int _text_array(Buf* b, tuple values) except -1:
    """A text[] field of strings."""
    cdef Py_ssize_t body = 0
    cdef str value
    for value in values:
        body += 4 + _utf8_length(value)
    _array_head(b, len(values), body)
    for value in values:
        _text(b, value)
    return 0


cdef int _agents_array(Buf* b, tuple segments) except -1:
    """The text[] field of a call's agents: its segments' extensions, in order."""
    cdef Py_ssize_t body = 0
    cdef _Seg s
    for s in segments:
        body += 4 + _utf8_length(s.extension)
    _array_head(b, len(segments), body)
    for s in segments:
        _text(b, s.extension)
    return 0


cdef int _rang_array(Buf* b, tuple rang) except -1:
    """The text[] field of the distinct extensions that rang, in first-ring order."""
    cdef Py_ssize_t body = 0, count = 0, i, j, n = len(rang)
    cdef _Ring a
    cdef bint passes
    for i in range(n):
        if _first_ring(rang, i):
            body += 4 + _utf8_length((<_Ring>rang[i]).extension)
            count += 1
    _array_head(b, count, body)
    for i in range(n):
        if _first_ring(rang, i):
            _text(b, (<_Ring>rang[i]).extension)
    return 0


cdef inline bint _first_ring(tuple rang, Py_ssize_t i) except -1:
    """Whether attempt i is the first of its extension."""
    cdef str extension = (<_Ring>rang[i]).extension
    cdef Py_ssize_t j
    for j in range(i):
        if (<_Ring>rang[j]).extension == extension:
            return False
    return True


cdef int _numeric_whole(Buf* b, long long thousandths) except -1:
    """cdr_store._numeric of a non-negative number of thousandths (C arithmetic)."""
    cdef long long whole = thousandths // 1000
    cdef int fraction = <int>(thousandths % 1000)
    cdef int groups[8]
    cdef int count = 0, weight, k, first = 0
    cdef int reversed_[8]
    cdef int r = 0
    while whole:
        reversed_[r] = <int>(whole % 10000)
        whole //= 10000
        r += 1
    for k in range(r):
        groups[k] = reversed_[r - 1 - k]
    count = r
    weight = count - 1
    if fraction:
        groups[count] = fraction * 10
        count += 1
    while count and groups[count - 1] == 0:
        count -= 1
    _i32(b, 8 + 2 * count)
    _i16(b, count)
    _i16(b, weight if count else 0)
    _i16(b, 0)
    _i16(b, 3 if fraction else 0)
    for k in range(count):
        _i16(b, groups[k])
    return 0


cdef dict _FRACTIONS = {}


cdef int _numeric(Buf* b, double seconds) except -1:
    """A numeric(12, 3) field of seconds: cdr_store.seconds_field(seconds)."""
    cdef bytes data
    if seconds == floor(seconds) and 0 <= seconds < 1e12:
        return _numeric_whole(b, (<long long>seconds) * 1000)
    # Fractional (or odd) seconds: Python's own rounding (round(x, 3), Decimal), as cdr_store does it.
    data = _FRACTIONS.get(seconds)
    if data is None:
        from ingest.cdr_store import _numeric as numeric, seconds_value

        data = numeric(seconds_value(seconds))
        if len(_FRACTIONS) >= 20000:
            _FRACTIONS.clear()
        _FRACTIONS[seconds] = data
    _raw(b, data, len(data))
    return 0


@cython.no_gc
@cython.freelist(1024)
cdef class _Seen:
    cdef long long first, last
    cdef Py_ssize_t count


cdef bint _first_extension(_Call call, Py_ssize_t i, Py_ssize_t ns) except -1:
    """Whether the i-th extension of the call (its agents, then the extensions that rang) is the first of its kind."""
    cdef str extension = (<_Seg>call.segments[i]).extension if i < ns else (<_Ring>call.rang[i - ns]).extension
    cdef Py_ssize_t j
    for j in range(i):
        if ((<_Seg>call.segments[j]).extension if j < ns else (<_Ring>call.rang[j - ns]).extension) == extension:
            return False
    return True


cdef bytes _HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)


@cython.no_gc
cdef class Batch:
    """One batch of built calls: their COPY data (encode), extensions seen (seen) and CallRecords (records)."""

    cdef list _calls
    cdef str _system
    cdef public list call_ids

    @property
    def count(self):
        return len(self._calls)

    cdef list _kept(self, keep):
        cdef Py_ssize_t i, n = len(self._calls)
        cdef list kept = []
        if keep is None:
            return self._calls
        for index in keep:
            i = index
            if i < 0:
                i += n
            if i < 0 or i >= n:
                raise IndexError(f"no call {index} in a batch of {n}")
            kept.append(self._calls[i])
        return kept

    def encode(self, ids, long long system_id, str source, keep=None):
        """(calls, segments, rings) COPY data, as cdr_store.BinaryBatch(ids, system_id, kept records, source)."""
        cdef list calls = self._kept(keep)
        cdef list pks = list(ids)
        cdef Buf bc, bs, br
        cdef Buf* pc
        cdef Buf* ps
        cdef Buf* pr
        cdef bint pooled
        cdef Py_ssize_t k, seq, n = len(calls), i, j
        cdef long long pk
        cdef _Call call
        cdef _Seg s
        cdef _Ring a
        cdef double talk, seconds, wait, duration
        if len(pks) != n:
            raise ValueError(f"{len(pks)} ids for {n} calls")
        global _pool_busy
        # The buffers of the last encode, reused (no fresh pages to fault in); fresh ones if they are in use.
        pooled = not _pool_busy
        if pooled:
            _pool_busy = True
            pc, ps, pr = &_pool_calls, &_pool_segments, &_pool_rings
        else:
            pc, ps, pr = &bc, &bs, &br
            pc.data = ps.data = pr.data = NULL
            pc.cap = ps.cap = pr.cap = 0
        pc.size = ps.size = pr.size = 0
        try:
            _raw(pc, _HEADER, 19)
            _raw(ps, _HEADER, 19)
            _raw(pr, _HEADER, 19)
            for k in range(n):
                call = calls[k]
                pk = pks[k]
                talk = 0.0
                seq = 0
                for s in call.segments:
                    seq += 1
                    seconds = _seconds(s.end - s.answer)
                    if seconds < 0.0:
                        seconds = 0.0
                    talk += seconds
                    _i16(ps, 9)
                    _i64(ps, pk)
                    _i32(ps, 4)
                    _i32(ps, <long>seq)
                    _text(ps, s.extension)
                    _text(ps, _BEGAN_BY[s.began_by])
                    _i64(ps, s.ring_start)
                    _i64(ps, s.answer)
                    _i64(ps, s.end)
                    _numeric(ps, seconds)
                    _text(ps, s.channel)
                seq = 0
                for a in call.rang:
                    seq += 1
                    _i16(pr, 6)
                    _i64(pr, pk)
                    _i32(pr, 4)
                    _i32(pr, <long>seq)
                    _text(pr, a.extension)
                    _i64(pr, a.start)
                    _i64(pr, a.end)
                    _text(pr, _OUTCOMES[a.outcome])
                wait = _seconds((call.answer if call.has_answer else call.end) - call.start)
                duration = _seconds(call.end - call.start)
                _i16(pc, 22)
                _i64(pc, pk)
                _i64(pc, system_id)
                _text(pc, call.call_id)
                if call.linkedids:
                    _text_array(pc, call.linkedids)
                else:
                    _array_head(pc, 1, 4 + _utf8_length(call.call_id))
                    _text(pc, call.call_id)
                _text(pc, _DIRECTIONS[call.direction])
                _text(pc, _STATUSES[call.status])
                if call.reason == R_NONE:
                    _i32(pc, -1)
                else:
                    _text(pc, _REASONS[call.reason])
                _text(pc, call.caller)
                if call.caller_name is None:
                    _i32(pc, -1)
                else:
                    _text(pc, call.caller_name)
                _text(pc, call.callee)
                if call.external is None:
                    _i32(pc, -1)
                else:
                    _text(pc, call.external)
                _i64(pc, call.start)
                if call.has_answer:
                    _i64(pc, call.answer)
                else:
                    _i32(pc, -1)
                _i64(pc, call.end)
                _numeric(pc, wait if wait > 0 else 0.0)
                _numeric(pc, talk if call.segments else 0.0)
                _numeric(pc, duration if duration > 0 else 0.0)
                _i32(pc, 4)
                _i32(pc, 0 if call.status != ST_ANSWERED else max(1, len(call.segments)))
                _agents_array(pc, call.segments)
                _rang_array(pc, call.rang)
                _i32(pc, 1)
                _raw(pc, b"\x00", 1)
                _text(pc, source)
            _raw(pc, b"\xff\xff", 2)
            calls_data = PyBytes_FromStringAndSize(pc.data, pc.size)
            segments_data = b""
            if ps.size > 19:
                _raw(ps, b"\xff\xff", 2)
                segments_data = PyBytes_FromStringAndSize(ps.data, ps.size)
            rings_data = b""
            if pr.size > 19:
                _raw(pr, b"\xff\xff", 2)
                rings_data = PyBytes_FromStringAndSize(pr.data, pr.size)
        finally:
            if pooled:
                _pool_busy = False
                _release(pc)
                _release(ps)
                _release(pr)
            else:
                free(pc.data)
                free(ps.data)
                free(pr.data)
        return calls_data, segments_data, rings_data

    def seen(self, keep=None):
        """Per extension (agents and extensions that rang): first and last call start and the number of calls."""
        cdef dict counts = {}
        cdef _Seen found
        cdef _Call call
        cdef Py_ssize_t i, ns, n
        cdef str extension
        for call in self._kept(keep):
            ns = len(call.segments)
            n = ns + len(call.rang)
            for i in range(n):
                # Each extension of the call once: {*agents, *rang}.
                if not _first_extension(call, i, ns):
                    continue
                extension = (<_Seg>call.segments[i]).extension if i < ns else (<_Ring>call.rang[i - ns]).extension
                found = counts.get(extension)
                if found is None:
                    found = _Seen.__new__(_Seen)
                    found.first = found.last = call.start
                    found.count = 1
                    counts[extension] = found
                else:
                    if call.start < found.first:
                        found.first = call.start
                    if call.start > found.last:
                        found.last = call.start
                    found.count += 1
        return {extension: (_when(found.first), _when(found.last), found.count)
                for extension, found in counts.items()}

    def records(self):
        """The batch's calls as CallRecords (what CallBuilder.build gives)."""
        cdef _Call call
        return [_record(call, self._system) for call in self._calls]
