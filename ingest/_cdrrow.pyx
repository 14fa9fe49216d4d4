# cython: language_level=3
"""One Master.csv row of the compiled importer (the fields are declared in _cdrrow.pxd)."""


cdef class Row:
    def __repr__(self) -> str:
        return (f"Row(line={self.line}, channel={self.channel!r}, dstchannel={self.dstchannel!r}, "
                f"start={self.start}, answer={self.answer if self.has_answer else None}, end={self.end})")
