"""The journal: append, positions, torn tails, rotation, retention, replay reading."""

from __future__ import annotations

from pathlib import Path

from ingest.journal import Journal, Position

MESSAGE = "Event: Newchannel\r\nChannel: PJSIP/trunk-00000001\r\nCallerIDName: علی رضایی\r\nLinkedid: 1.{n}"


def test_records_come_back_verbatim_with_their_positions(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.open()
    positions = [journal.append(MESSAGE.format(n=n)) for n in range(5)]
    assert positions[0] == Position(1, 0)
    assert positions == sorted(positions)
    records = list(journal.records(positions[2]))
    assert [text for _, text, _ in records] == [MESSAGE.format(n=n) for n in (2, 3, 4)]
    assert records[-1][2] == journal.end
    assert Position.parse(str(positions[3])) == positions[3]
    journal.close()


def test_a_torn_last_record_is_cut_on_open(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.open()
    journal.append(MESSAGE.format(n=1))
    end = journal.end
    journal.close()
    with (tmp_path / "00000001.ami").open("ab") as handle:
        handle.write(MESSAGE.format(n=2).encode()[:30])  # a crash in the middle of a write
    reopened = Journal(tmp_path)
    reopened.open()
    assert reopened.end == end
    assert [text for _, text, _ in reopened.records()] == [MESSAGE.format(n=1)]
    reopened.close()


def test_rotation_and_retention_never_delete_what_a_replay_needs(tmp_path: Path) -> None:
    journal = Journal(tmp_path, segment_bytes=300, max_bytes=700)
    journal.open()
    positions = [journal.append(MESSAGE.format(n=n)) for n in range(12)]
    segments = sorted(p.name for p in tmp_path.glob("*.ami"))
    assert len(segments) > 3
    assert journal.release(positions[0]) == 0  # everything is still needed
    checkpoint = positions[-1]
    deleted = journal.release(checkpoint)
    assert deleted > 0
    assert journal.size_bytes <= 700 + 300
    assert [text for _, text, _ in journal.records(checkpoint)] == [MESSAGE.format(n=11)]
    assert journal.backlog_bytes(checkpoint) == len(MESSAGE.format(n=11).encode()) + 4
    journal.close()
