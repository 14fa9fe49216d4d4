# One Master.csv row as the compiled importer holds it (ingest/_cdrgroup reads, ingest/_cdrbuild builds).
# Times are microseconds since 2000-01-01 00:00 UTC (PostgreSQL's epoch), already in UTC.

cdef class Row:
    cdef public Py_ssize_t line
    cdef public str src, dst, dcontext, clid, channel, dstchannel, lastapp, lastdata
    cdef public str disposition, uniqueid, linkedid, accountcode
    cdef public long long start, end, answer    # answer is meaningful only when has_answer
    cdef public bint has_answer
    cdef public long billsec
