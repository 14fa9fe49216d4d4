# cython: language_level=3
"""The compiled Master.csv reader and grouper: rows -> calls, as cdr_import.group_rows does it in Python.

`Groups(path, zone, window_seconds, parse)` reads the file in 1 MiB binary chunks, splits it into
records as csv.reader does (default dialect, strict=False, the file opened with newline='' and
errors='replace'), turns each record into an ingest._cdrrow.Row as cdr_csv._row does, and joins the
rows into calls exactly as cdr_import.Grouper/group_rows do. Iterating yields lists of finished
calls (each the list of its rows), one list per expiry check that finished any; the order of calls
and of rows is the Python path's. The Python code stays the reference: tests/test_cdrcore_group.py
compares the two.

Byte-level CSV: the delimiter, quote and line ends are ASCII, so a record can be split on bytes; a
field is decoded on its own with errors='replace', which gives the stream decoder's U+FFFD, except
where a closing quote that csv drops (`"ab"c`) separated two bytes: such a field is decoded in two
parts. Times: 'YYYY-MM-DD HH:MM:SS' is converted here (the zone's offset cached per hour, taken as
cdr_csv.LocalTimes takes it); every other form goes to the Python `parse`.
"""

cimport cython

import csv
from collections import OrderedDict
from datetime import UTC, datetime, timedelta

from cpython.bytearray cimport PyByteArray_AS_STRING
from cpython.dict cimport PyDict_DelItem, PyDict_GetItem, PyDict_SetItem
from cpython.list cimport PyList_GET_SIZE
from cpython.ref cimport Py_DECREF, Py_INCREF, PyObject
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memchr, memcmp, memcpy

from ingest._cdrrow cimport Row

from ingest import cdr_csv
from ingest.errors import InputFileError


cdef extern from "Python.h":
    Py_ssize_t PyUnicode_FindChar(object s, Py_UCS4 ch, Py_ssize_t start, Py_ssize_t end, int direction) except -2
    Py_UCS4 PyUnicode_READ_CHAR(object s, Py_ssize_t index)
    Py_ssize_t PyUnicode_GET_LENGTH(object s)
    bint PyUnicode_IS_COMPACT_ASCII(object s)
    void* PyUnicode_DATA(object s)


cdef enum:
    CHUNK = 1 << 20
    HOUR_SLOTS = 1024
    SLACK = 1000000           # cdr_import._SLACK, in microseconds
    EXPIRY_EVERY = 1000       # group_rows checks for finished calls every 1000 rows
    INLINE_KEYS = 4
    CACHE_SLOTS = 64          # per column, for the columns whose values repeat (contexts, apps...)
    CACHED_COLUMNS = 6

# csv.reader's states, as far as the default dialect reaches them (S_EAT_LF: a '\r' ended the record).
cdef enum:
    S_START_RECORD = 0
    S_START_FIELD = 1
    S_IN_FIELD = 2
    S_IN_QUOTED = 3
    S_QUOTE_IN_QUOTED = 4
    S_EAT_LF = 5

# Key kinds (cdr_import.Grouper's "L", "U" and "C" prefixes): one index dict each.
cdef enum:
    K_LINKED = 0
    K_UNIQUE = 1
    K_CHANNEL = 2

# Positions in cdr_csv.CDR_COLUMNS.
cdef enum:
    C_ACCOUNTCODE = 0
    C_SRC = 1
    C_DST = 2
    C_DCONTEXT = 3
    C_CLID = 4
    C_CHANNEL = 5
    C_DSTCHANNEL = 6
    C_LASTAPP = 7
    C_LASTDATA = 8
    C_START = 9
    C_ANSWER = 10
    C_END = 11
    C_BILLSEC = 13
    C_DISPOSITION = 14
    C_UNIQUEID = 16
    C_LINKEDID = 19
    N_COLUMNS = 21

# parse_time's results
cdef enum:
    T_NONE = 0
    T_OK = 1
    T_BAD = 2

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_LATE = "late leg of a call already stored (raise --window)"
_EMPTY = ""


cdef struct HeapItem:
    long long end
    long long seq
    PyObject* group


@cython.no_gc
@cython.final
cdef class _Group:
    """An open call: cdr_import._Group. Its keys (in the order Python's list has them) are a C array of
    (kind, key); no reference cycle can go through a group, so the garbage collector need not track it."""
    cdef list rows
    cdef PyObject** keys
    cdef unsigned char* kinds
    cdef Py_ssize_t nkeys, kcap
    cdef PyObject* inline_keys[INLINE_KEYS]
    cdef unsigned char inline_kinds[INLINE_KEYS]
    cdef long long max_end
    cdef bint alive

    def __cinit__(self) -> None:
        self.keys = self.inline_keys
        self.kinds = self.inline_kinds
        self.kcap = INLINE_KEYS

    def __dealloc__(self) -> None:
        cdef Py_ssize_t k
        for k in range(self.nkeys):
            Py_DECREF(<object>self.keys[k])
        if self.keys != self.inline_keys:
            free(self.keys)
            free(self.kinds)

    cdef int add_key(self, int kind, PyObject* key) except -1:
        cdef PyObject** keys
        cdef unsigned char* kinds
        cdef Py_ssize_t cap
        if self.nkeys == self.kcap:
            cap = 2 * self.kcap
            keys = <PyObject**>malloc(cap * sizeof(PyObject*))
            kinds = <unsigned char*>malloc(cap)
            if keys == NULL or kinds == NULL:
                free(keys)
                free(kinds)
                raise MemoryError()
            memcpy(keys, self.keys, self.nkeys * sizeof(PyObject*))
            memcpy(kinds, self.kinds, self.nkeys)
            if self.keys != self.inline_keys:
                free(self.keys)
                free(self.kinds)
            self.keys = keys
            self.kinds = kinds
            self.kcap = cap
        Py_INCREF(<object>key)
        self.keys[self.nkeys] = key
        self.kinds[self.nkeys] = kind
        self.nkeys += 1
        return 0


cdef inline bint _is_hex(Py_UCS4 c) noexcept:
    return (48 <= c <= 57) or (97 <= c <= 102) or (65 <= c <= 70)


cdef object _channel_key(str channel):
    """cdr_import._channel_key without the "C" prefix (channel keys have a dict of their own)."""
    cdef Py_ssize_t n, cut, dash, k
    if channel.startswith("Local/"):
        cut = PyUnicode_FindChar(channel, 59, 0, PyUnicode_GET_LENGTH(channel), -1)   # ';'
        if cut > 0:
            channel = channel[:cut]
    n = PyUnicode_GET_LENGTH(channel)
    dash = PyUnicode_FindChar(channel, 45, 0, n, -1)   # '-'
    if n - (dash + 1) < 4:
        return None
    for k in range(dash + 1, n):
        if not _is_hex(PyUnicode_READ_CHAR(channel, k)):
            return None
    return channel


cdef inline long long _days_from_civil(long long y, long long m, long long d) noexcept:
    """Days since 1970-01-01 of a proleptic Gregorian date (y >= 1)."""
    cdef long long era, yoe, doy, doe
    if m <= 2:
        y -= 1
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


cdef inline int _two(const unsigned char* p) noexcept:
    """The number of two ASCII digits, -1 when they are not digits."""
    if p[0] < 48 or p[0] > 57 or p[1] < 48 or p[1] > 57:
        return -1
    return (p[0] - 48) * 10 + (p[1] - 48)


cdef class Groups:
    """Iterating yields lists of finished calls (lists of Rows) in cdr_import.group_rows' order."""

    cdef readonly Py_ssize_t rows_read
    cdef readonly dict skipped
    cdef readonly list late
    cdef readonly long long bytes_read

    cdef str path
    cdef object zone, parse, fh
    cdef bytearray chunk
    cdef const unsigned char* data
    cdef Py_ssize_t pos, n
    cdef bint eof, started, done

    # the record being read: its fields' bytes one after another in fb, field i ends at fe[i]
    cdef int state
    cdef unsigned char* fb
    cdef Py_ssize_t fb_len, fb_cap, fstart
    cdef Py_ssize_t* fe
    cdef Py_ssize_t* fsplit
    cdef Py_ssize_t nf, fcap, cur_split
    cdef Py_ssize_t field_limit, field_bytes_limit
    cdef Py_ssize_t record_no

    cdef Py_ssize_t width
    cdef Py_ssize_t pick[N_COLUMNS]

    cdef long long hour_key[HOUR_SLOTS]
    cdef long long hour_offset[HOUR_SLOTS]
    cdef PyObject* text_cache[CACHED_COLUMNS * CACHE_SLOTS]

    # the grouper
    cdef long long window, clock
    cdef bint has_clock
    cdef Py_ssize_t since_expiry
    cdef dict idx_linked, idx_unique, idx_channel
    cdef PyObject* idx[3]
    cdef object finished
    cdef HeapItem* heap
    cdef Py_ssize_t heap_n, heap_cap
    cdef long long seq
    cdef readonly Py_ssize_t open_rows
    cdef list out

    def __cinit__(self) -> None:
        self.fb = NULL
        self.fe = NULL
        self.fsplit = NULL
        self.heap = NULL

    def __init__(self, path: str, zone: object, window_seconds: float, parse: object, *,
                 chunk_size: int = CHUNK) -> None:
        cdef Py_ssize_t i
        self.path = path
        self.zone = zone
        self.parse = parse
        self.window = timedelta(seconds=window_seconds) // _US
        self.rows_read = 0
        self.skipped = {}
        self.late = []
        self.bytes_read = 0
        self.field_limit = csv.field_size_limit()
        # A field of more bytes than this has more characters than the limit (a character is at most 4 bytes).
        self.field_bytes_limit = 4 * self.field_limit + 4
        self.fb_cap = 4096
        self.fb = <unsigned char*>malloc(self.fb_cap)
        self.fcap = 64
        self.fe = <Py_ssize_t*>malloc(self.fcap * sizeof(Py_ssize_t))
        self.fsplit = <Py_ssize_t*>malloc(self.fcap * sizeof(Py_ssize_t))
        self.heap_cap = 1024
        self.heap = <HeapItem*>malloc(self.heap_cap * sizeof(HeapItem))
        if self.fb == NULL or self.fe == NULL or self.fsplit == NULL or self.heap == NULL:
            raise MemoryError()
        for i in range(HOUR_SLOTS):
            self.hour_key[i] = -(1 << 62)
        self.idx_linked, self.idx_unique, self.idx_channel = {}, {}, {}
        self.idx[K_LINKED] = <PyObject*>self.idx_linked
        self.idx[K_UNIQUE] = <PyObject*>self.idx_unique
        self.idx[K_CHANNEL] = <PyObject*>self.idx_channel
        self.finished = OrderedDict()
        self.out = []
        if chunk_size < 1:
            raise ValueError("chunk_size must be positive")
        self.chunk = bytearray(chunk_size)
        self.data = <const unsigned char*>PyByteArray_AS_STRING(self.chunk)
        try:
            self.fh = open(path, "rb", buffering=0)
        except OSError as exc:
            raise InputFileError(f"cannot read: {exc.strerror}", path=str(path)) from exc

    def __dealloc__(self) -> None:
        cdef Py_ssize_t i
        if self.heap != NULL:
            for i in range(self.heap_n):
                Py_DECREF(<object>self.heap[i].group)
            free(self.heap)
        for i in range(CACHED_COLUMNS * CACHE_SLOTS):
            if self.text_cache[i] != NULL:
                Py_DECREF(<object>self.text_cache[i])
        free(self.fb)
        free(self.fe)
        free(self.fsplit)

    def close(self) -> None:
        """Close the file (done by itself at the end of the file or on an error)."""
        self.done = True
        if self.fh is not None:
            self.fh.close()
            self.fh = None

    def __iter__(self) -> "Groups":
        return self

    def __next__(self) -> list:
        cdef list chunk
        if self.done:
            raise StopIteration
        try:
            while True:
                if not self.started:
                    self.started = True
                    if not self._start():
                        continue
                elif self._next_record():
                    self.record_no += 1
                    self._record()
                else:
                    self._expire(True, 0)
                    self.close()
                    if not self.out:
                        raise StopIteration
                if self.out:
                    chunk = self.out
                    self.out = []
                    return chunk
        except BaseException:
            self.close()
            raise

    # -- reading records -------------------------------------------------------------------------------

    cdef int _fill(self) except -1:
        got = self.fh.readinto(self.chunk)
        if not got:
            self.eof = True
            self.n = 0
        else:
            self.n = got
            self.bytes_read += self.n
        self.pos = 0
        return 0

    cdef int _grow_fb(self, Py_ssize_t need) except -1:
        cdef Py_ssize_t cap = self.fb_cap
        cdef unsigned char* grown
        while cap < need:
            cap *= 2
        grown = <unsigned char*>realloc(self.fb, cap)
        if grown == NULL:
            raise MemoryError()
        self.fb = grown
        self.fb_cap = cap
        return 0

    cdef inline int _append(self, const unsigned char* p, Py_ssize_t count) except -1:
        if self.fb_len + count > self.fb_cap:
            self._grow_fb(self.fb_len + count)
        memcpy(self.fb + self.fb_len, p, count)
        self.fb_len += count
        if self.fb_len - self.fstart > self.field_bytes_limit:
            self._field_too_large()
        return 0

    cdef int _field_too_large(self) except -1:
        # cdr_csv.read_cdr turns csv.reader's csv.Error into this, naming the record being read.
        raise InputFileError(f"unreadable CSV: field larger than field limit ({self.field_limit})",
                             path=self.path, line=self.record_no + 1)

    cdef int _save_field(self) except -1:
        cdef Py_ssize_t* grown
        if self.nf == self.fcap:
            grown = <Py_ssize_t*>realloc(self.fe, 2 * self.fcap * sizeof(Py_ssize_t))
            if grown == NULL:
                raise MemoryError()
            self.fe = grown
            grown = <Py_ssize_t*>realloc(self.fsplit, 2 * self.fcap * sizeof(Py_ssize_t))
            if grown == NULL:
                raise MemoryError()
            self.fsplit = grown
            self.fcap *= 2
        self.fe[self.nf] = self.fb_len
        self.fsplit[self.nf] = self.cur_split
        self.nf += 1
        if self.fb_len - self.fstart > self.field_limit:
            # Maybe more characters than csv.field_size_limit(): csv.reader refuses such a field.
            if PyUnicode_GET_LENGTH(self._field(self.nf - 1)) > self.field_limit:
                self._field_too_large()
        self.fstart = self.fb_len
        self.cur_split = -1
        return 0

    cdef int _scan(self) except -1:
        """Continue the record from the chunk; 1 when it is complete, 0 when the chunk is used up."""
        cdef const unsigned char* d = self.data
        cdef const unsigned char* hit
        cdef Py_ssize_t p = self.pos, n = self.n, q
        cdef int st = self.state
        cdef unsigned char c
        while p < n:
            c = d[p]
            if st == S_IN_QUOTED:
                hit = <const unsigned char*>memchr(d + p, 34, n - p)
                if hit == NULL:
                    self._append(d + p, n - p)
                    p = n
                    break
                q = hit - d
                if q > p:
                    self._append(d + p, q - p)
                p = q + 1
                st = S_QUOTE_IN_QUOTED
            elif st == S_IN_FIELD:
                q = p
                while q < n:
                    c = d[q]
                    if c == 44 or c == 13 or c == 10:
                        break
                    q += 1
                if q > p:
                    self._append(d + p, q - p)
                p = q
                if p == n:
                    break
                self._save_field()
                p += 1
                if c == 44:
                    st = S_START_FIELD
                else:
                    self.pos = p
                    self.state = S_EAT_LF if c == 13 else S_START_RECORD
                    return 1
            elif st == S_START_FIELD or st == S_START_RECORD:
                if c == 10 or c == 13:
                    if st == S_START_FIELD:
                        self._save_field()
                    self.pos = p + 1
                    self.state = S_EAT_LF if c == 13 else S_START_RECORD
                    return 1
                if c == 34:
                    st = S_IN_QUOTED
                    p += 1
                elif c == 44:
                    self._save_field()
                    st = S_START_FIELD
                    p += 1
                else:
                    st = S_IN_FIELD
            elif st == S_QUOTE_IN_QUOTED:
                if c == 34:
                    self._append(d + p, 1)
                    st = S_IN_QUOTED
                    p += 1
                elif c == 44:
                    self._save_field()
                    st = S_START_FIELD
                    p += 1
                elif c == 10 or c == 13:
                    self._save_field()
                    self.pos = p + 1
                    self.state = S_EAT_LF if c == 13 else S_START_RECORD
                    return 1
                else:
                    # strict=False: the field goes on unquoted after its closing quote.
                    self.cur_split = self.fb_len
                    st = S_IN_FIELD
            else:  # S_EAT_LF
                if c == 10:
                    p += 1
                st = S_START_RECORD
        self.pos = p
        self.state = st
        return 0

    cdef int _next_record(self) except -1:
        """Read the next record into the field arrays: 1, or 0 at the end of the file."""
        self.nf = 0
        self.fb_len = 0
        self.fstart = 0
        self.cur_split = -1
        while True:
            if self.pos < self.n:
                if self._scan():
                    return 1
            if self.eof:
                if self.state == S_START_FIELD or self.state == S_IN_FIELD or self.state == S_IN_QUOTED \
                        or self.state == S_QUOTE_IN_QUOTED:
                    self._save_field()
                    self.state = S_START_RECORD
                    return 1
                return 0
            self._fill()

    cdef str _field(self, Py_ssize_t i):
        """Field i of the record as csv.reader gives it."""
        cdef Py_ssize_t start = self.fe[i - 1] if i > 0 else 0
        cdef Py_ssize_t end = self.fe[i], split = self.fsplit[i], k
        if end == start:
            return _EMPTY
        if split > start and split < end:
            for k in range(start, end):
                if self.fb[k] >= 128:
                    return (<str>PyUnicode_DecodeUTF8(<char*>self.fb + start, split - start, "replace")
                            + <str>PyUnicode_DecodeUTF8(<char*>self.fb + split, end - split, "replace"))
        return <str>PyUnicode_DecodeUTF8(<char*>self.fb + start, end - start, "replace")

    cdef inline str _cell(self, int column):
        cdef Py_ssize_t i = self.pick[column]
        if i >= self.width:
            return _EMPTY
        return self._field(i)

    cdef str _cached_cell(self, int column, int cache):
        """_cell for a column whose values repeat: an ASCII value read before is that str again."""
        cdef Py_ssize_t i = self.pick[column], start, length, k
        cdef const unsigned char* p
        cdef unsigned int h
        cdef PyObject** slot
        if i >= self.width:
            return _EMPTY
        start = self.fe[i - 1] if i > 0 else 0
        length = self.fe[i] - start
        if length == 0 or self.fsplit[i] >= 0:
            return self._field(i)
        p = self.fb + start
        h = <unsigned int>length
        for k in range(length):
            h = h * 31 + p[k]
        slot = &self.text_cache[cache * CACHE_SLOTS + (h & (CACHE_SLOTS - 1))]
        if slot[0] != NULL and PyUnicode_GET_LENGTH(<object>slot[0]) == length \
                and memcmp(PyUnicode_DATA(<object>slot[0]), p, length) == 0:
            return <str>slot[0]
        text = <str>PyUnicode_DecodeUTF8(<char*>p, length, "replace")
        if PyUnicode_IS_COMPACT_ASCII(text):
            if slot[0] != NULL:
                Py_DECREF(<object>slot[0])
            Py_INCREF(text)
            slot[0] = <PyObject*>text
        return text

    cdef inline Py_ssize_t _cell_len(self, int column) noexcept:
        cdef Py_ssize_t i = self.pick[column]
        if i >= self.width:
            return 0
        return self.fe[i] - (self.fe[i - 1] if i > 0 else 0)

    cdef inline const unsigned char* _cell_bytes(self, int column) noexcept:
        cdef Py_ssize_t i = self.pick[column]
        return self.fb + (self.fe[i - 1] if i > 0 else 0)

    # -- rows ------------------------------------------------------------------------------------------

    cdef bint _start(self) except -1:
        """The first record: columns and header (cdr_csv.read_cdr); False for an empty file."""
        cdef Py_ssize_t i
        if not self._next_record():
            return False
        first = [self._field(i) for i in range(self.nf)]
        names, has_header = cdr_csv._columns(first, self.path)
        index = {name: i for i, name in enumerate(names)}
        missing = [n for n in ("channel", "start", "end") if n not in index]
        if missing:
            raise InputFileError(f"no {', '.join(missing)} column", path=self.path, line=1)
        self.width = len(names)
        for i, name in enumerate(cdr_csv.CDR_COLUMNS):
            self.pick[i] = index.get(name, self.width)
        self.record_no = 1
        if not has_header:
            self._record()
        return True

    cdef int _error(self, str reason) except -1:
        self.rows_read += 1
        if self.rows_read == 1 and reason != "empty line":
            raise InputFileError(f"not an Asterisk CDR line: {reason}", path=self.path, line=1)
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        return 0

    cdef long long _offset(self, long long y, long long m, long long d, long long h, long long key) except? -1:
        """The zone's UTC offset at this local hour (as LocalTimes._parse takes it), in microseconds."""
        cdef Py_ssize_t slot = key & (HOUR_SLOTS - 1)
        cdef long long offset
        if self.hour_key[slot] == key:
            return self.hour_offset[slot]
        found = datetime(y, m, d, h, tzinfo=self.zone).utcoffset()
        offset = 0 if found is None else found // _US
        self.hour_key[slot] = key
        self.hour_offset[slot] = offset
        return offset

    cdef int _time(self, int column, long long* out) except -1:
        """The UTC time of a cell: T_NONE (empty), T_OK (in *out) or T_BAD (parse raised ValueError)."""
        cdef Py_ssize_t length = self._cell_len(column)
        cdef const unsigned char* p
        cdef int year_hi, year_lo, month, day, hour, minute, second, dim
        cdef long long year, days
        if length == 0:
            return T_NONE
        if length == 19:
            p = self._cell_bytes(column)
            if p[4] == 45 and p[7] == 45 and p[10] == 32 and p[13] == 58 and p[16] == 58:
                year_hi = _two(p)
                year_lo = _two(p + 2)
                month = _two(p + 5)
                day = _two(p + 8)
                hour = _two(p + 11)
                minute = _two(p + 14)
                second = _two(p + 17)
                if (19 <= year_hi <= 21 and year_lo >= 0 and 1 <= month <= 12 and day >= 1 and 0 <= hour <= 23
                        and 0 <= minute <= 59 and 0 <= second <= 59):
                    year = year_hi * 100 + year_lo
                    if month == 2:
                        dim = 29 if (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)) else 28
                    elif month == 4 or month == 6 or month == 9 or month == 11:
                        dim = 30
                    else:
                        dim = 31
                    if day <= dim:
                        days = _days_from_civil(year, month, day) - 10957
                        out[0] = ((days * 86400 + hour * 3600 + minute * 60 + second) * 1000000
                                  - self._offset(year, month, day, hour, days * 24 + hour))
                        return T_OK
        text = self._cell(column)
        try:
            when = self.parse(text)
        except ValueError:
            return T_BAD
        if when is None:
            return T_NONE
        out[0] = (when - _EPOCH) // _US
        return T_OK

    cdef long _billsec(self) except? -1:
        """cdr_csv._billsec: int of up to 18 ASCII digits, else 0."""
        cdef Py_ssize_t length = self._cell_len(C_BILLSEC), k
        cdef const unsigned char* p
        cdef long value = 0
        cdef bint digits = True
        if length == 0:
            return 0
        p = self._cell_bytes(C_BILLSEC)
        for k in range(length):
            if p[k] >= 128:
                return 0  # not ASCII digits: cdr_csv's rule
            if p[k] < 48 or p[k] > 57:
                digits = False
        if not digits:
            return 0
        if length > 18:
            return 0  # absurd (more than 30 billion years): cdr_csv's rule
        for k in range(length):
            value = value * 10 + (p[k] - 48)
        return value

    cdef str _disposition(self):
        """disposition.upper()."""
        cdef Py_ssize_t length = self._cell_len(C_DISPOSITION), k
        cdef const unsigned char* p
        if length == 0:
            return _EMPTY
        p = self._cell_bytes(C_DISPOSITION)
        for k in range(length):
            if p[k] >= 128 or (97 <= p[k] <= 122):
                return self._cell(C_DISPOSITION).upper()
        return self._cached_cell(C_DISPOSITION, 4)

    cdef int _record(self) except -1:
        """cdr_csv._row and group_rows' loop body for the record just read (line self.record_no)."""
        cdef long long start = 0, end = 0, answer = 0
        cdef int found_start, found_end, found_answer
        cdef Row row
        if self.nf < self.width:
            if self.nf == 0:
                return self._error("empty line")
            return self._error(f"{self.nf} columns instead of {self.width}")
        if self._cell_len(C_CHANNEL) == 0:
            return self._error("no channel")
        found_start = self._time(C_START, &start)
        if found_start == T_BAD:
            return self._error("bad start/answer/end time")
        found_end = self._time(C_END, &end)
        if found_end == T_BAD:
            return self._error("bad start/answer/end time")
        found_answer = self._time(C_ANSWER, &answer)
        if found_answer == T_BAD:
            return self._error("bad start/answer/end time")
        if found_start == T_NONE:
            return self._error("no start time")
        if found_end == T_NONE or end < start:
            end = start
        if found_answer == T_OK:
            if answer < start:
                answer = start
            elif answer > end:
                answer = end
        row = Row.__new__(Row)
        row.line = self.record_no
        row.src = self._cell(C_SRC)
        row.dst = self._cached_cell(C_DST, 0)
        row.dcontext = self._cached_cell(C_DCONTEXT, 1)
        row.clid = self._cell(C_CLID)
        row.channel = self._cell(C_CHANNEL)
        row.dstchannel = self._cell(C_DSTCHANNEL)
        row.lastapp = self._cached_cell(C_LASTAPP, 2)
        row.lastdata = self._cached_cell(C_LASTDATA, 3)
        row.start = start
        row.answer = answer if found_answer == T_OK else 0
        row.has_answer = found_answer == T_OK
        row.end = end
        row.billsec = self._billsec()
        row.disposition = self._disposition()
        row.uniqueid = self._cell(C_UNIQUEID)
        row.linkedid = self._cell(C_LINKEDID)
        row.accountcode = self._cached_cell(C_ACCOUNTCODE, 5)
        # group_rows (which counts a row once cdr_csv._row has made it)
        self.rows_read += 1
        if not self.has_clock or end > self.clock:
            self.clock = end
            self.has_clock = True
        if not self._add(row):
            self.skipped[_LATE] = self.skipped.get(_LATE, 0) + 1
            self.late.append(row.line)
        self.since_expiry += 1
        if self.since_expiry >= EXPIRY_EVERY:
            self.since_expiry = 0
            self._expire(False, self.clock - self.window)
        return 0

    # -- grouping (cdr_import.Grouper) -----------------------------------------------------------------

    cdef int _push(self, _Group group) except -1:
        cdef HeapItem* grown
        cdef Py_ssize_t i, parent
        cdef long long end = group.max_end, seq = self.seq
        if self.heap_n == self.heap_cap:
            grown = <HeapItem*>realloc(self.heap, 2 * self.heap_cap * sizeof(HeapItem))
            if grown == NULL:
                raise MemoryError()
            self.heap = grown
            self.heap_cap *= 2
        self.seq += 1
        Py_INCREF(group)
        i = self.heap_n
        self.heap_n += 1
        while i > 0:
            parent = (i - 1) >> 1
            if self.heap[parent].end > end or (self.heap[parent].end == end and self.heap[parent].seq > seq):
                self.heap[i] = self.heap[parent]
                i = parent
            else:
                break
        self.heap[i].end = end
        self.heap[i].seq = seq
        self.heap[i].group = <PyObject*>group
        return 0

    cdef HeapItem _pop(self) noexcept:
        """The smallest entry (its reference passes to the caller)."""
        cdef HeapItem top = self.heap[0], last
        cdef Py_ssize_t i = 0, child, n
        self.heap_n -= 1
        n = self.heap_n
        if n > 0:
            last = self.heap[n]
            while True:
                child = 2 * i + 1
                if child >= n:
                    break
                if child + 1 < n and (self.heap[child + 1].end < self.heap[child].end or (
                        self.heap[child + 1].end == self.heap[child].end
                        and self.heap[child + 1].seq < self.heap[child].seq)):
                    child += 1
                if self.heap[child].end < last.end or (self.heap[child].end == last.end
                                                       and self.heap[child].seq < last.seq):
                    self.heap[i] = self.heap[child]
                    i = child
                else:
                    break
            self.heap[i] = last
        return top

    cdef bint _add(self, Row row) except -1:
        """Grouper.add: put `row` into its call; False when its call was already finished (a late row)."""
        cdef int kinds[4]
        cdef PyObject* keys[4]
        cdef int nk = 0, k
        cdef Py_ssize_t a, b, length
        cdef PyObject* hit
        cdef _Group target = None, group, other
        cdef list groups = None
        cdef long long before
        cdef object channel_key = None, dst_key = None
        if row.linkedid:
            kinds[nk] = K_LINKED
            keys[nk] = <PyObject*>row.linkedid
            nk += 1
        if row.uniqueid:
            kinds[nk] = K_UNIQUE
            keys[nk] = <PyObject*>row.uniqueid
            nk += 1
        if row.channel:
            channel_key = _channel_key(row.channel)
            if channel_key is not None:
                kinds[nk] = K_CHANNEL
                keys[nk] = <PyObject*>channel_key
                nk += 1
        if row.dstchannel:
            dst_key = _channel_key(row.dstchannel)
            if dst_key is not None:
                kinds[nk] = K_CHANNEL
                keys[nk] = <PyObject*>dst_key
                nk += 1
        for k in range(nk):
            hit = PyDict_GetItem(<object>self.idx[kinds[k]], <object>keys[k])
            if hit == NULL:
                continue
            group = <_Group>hit
            # A channel name joins rows only while that channel lives: names repeat after a restart.
            if kinds[k] == K_CHANNEL and row.start > group.max_end + SLACK:
                continue
            if target is None:
                target = group
            elif group is not target:
                if groups is None:
                    groups = [target]
                if group not in groups:
                    groups.append(group)
        if target is None:
            if self.finished:
                for k in range(nk):
                    if kinds[k] == K_LINKED:
                        if (<object>keys[k],) in self.finished:
                            return False
                    elif kinds[k] == K_UNIQUE:
                        if <object>keys[k] in self.finished:
                            return False
            target = _Group.__new__(_Group)
            target.rows = [row]
            target.max_end = row.end
            target.alive = True
            for k in range(nk):
                PyDict_SetItem(<object>self.idx[kinds[k]], <object>keys[k], target)
                target.add_key(kinds[k], keys[k])
            self.open_rows += 1
            self._push(target)
            return True
        if groups is not None:
            # Sorted by size, largest first, stable (list.sort(key=len, reverse=True) keeps ties in order).
            for a in range(1, PyList_GET_SIZE(groups)):
                group = <_Group>groups[a]
                length = PyList_GET_SIZE(group.rows)
                b = a - 1
                while b >= 0 and PyList_GET_SIZE((<_Group>groups[b]).rows) < length:
                    groups[b + 1] = groups[b]
                    b -= 1
                groups[b + 1] = group
            target = <_Group>groups[0]
            before = target.max_end
            for a in range(1, PyList_GET_SIZE(groups)):
                other = <_Group>groups[a]
                target.rows.extend(other.rows)
                for b in range(other.nkeys):
                    PyDict_SetItem(<object>self.idx[other.kinds[b]], <object>other.keys[b], target)
                for b in range(other.nkeys):
                    target.add_key(other.kinds[b], other.keys[b])
                if other.max_end > target.max_end:
                    target.max_end = other.max_end
                other.alive = False
        else:
            before = target.max_end
        target.rows.append(row)
        self.open_rows += 1
        for k in range(nk):
            PyDict_SetItem(<object>self.idx[kinds[k]], <object>keys[k], target)
        for k in range(nk):
            target.add_key(kinds[k], keys[k])
        if row.end > target.max_end:
            target.max_end = row.end
        if target.max_end != before:
            # The call's older heap entries are now stale; this one stands for it.
            self._push(target)
        return True

    cdef int _expire(self, bint everything, long long limit) except -1:
        """Grouper.expired: the calls whose last row ended before `limit` (all when `everything`) go to out."""
        cdef HeapItem item
        cdef _Group group
        cdef Py_ssize_t b
        cdef int kind
        cdef PyObject* hit
        cdef long long oldest
        finished = self.finished
        while self.heap_n > 0 and (everything or self.heap[0].end < limit):
            item = self._pop()
            group = <_Group>item.group
            Py_DECREF(group)  # the heap's reference; `group` holds its own
            if not group.alive or item.end != group.max_end:
                continue  # merged into another call, or extended: a newer entry stands for it
            group.alive = False
            end = item.end
            for b in range(group.nkeys):
                kind = group.kinds[b]
                key = <object>group.keys[b]
                index = <object>self.idx[kind]
                hit = PyDict_GetItem(index, key)
                if hit == <PyObject*>group:
                    PyDict_DelItem(index, key)
                if kind == K_LINKED:
                    finished[(key,)] = end
                elif kind == K_UNIQUE:
                    finished[key] = end
            self.open_rows -= PyList_GET_SIZE(group.rows)
            self.out.append(group.rows)
        if not everything:
            oldest = limit - self.window
            while finished and next(iter(finished.values())) < oldest:
                finished.popitem(last=False)
        return 0
