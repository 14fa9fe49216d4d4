"""The pipeline's hand-off: reads arrive as lists, are journaled in order, noise is dropped, TCP pauses."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from daemon_kit import TRACES

from ingest.config import SystemConfig
from ingest.journal import Journal, Position
from ingest.pipeline import QUEUE_HIGH, SystemPipeline
from ingest.testing.trace_stream import read_blocks

pytestmark = pytest.mark.asyncio
TRACE = TRACES / "01_inbound_answered" / "ami.log"


def pipeline(tmp_path: Path) -> SystemPipeline:
    """A live pipeline journaling under `tmp_path`."""
    journal = Journal(tmp_path / "journal")
    journal.open()
    made = SystemPipeline(SystemConfig(name="pbx1"), journal)
    made.live = True
    return made


async def test_reads_are_journaled_in_wire_order_and_finish_the_call(tmp_path: Path) -> None:
    blocks = [b for b in read_blocks(TRACE) if "\r\nTimestamp: " in b]
    kept = [b for b in blocks if b.startswith(("Event: Newchannel\r", "Event: Hangup\r", "Event: BridgeEnter\r"))]
    one = pipeline(tmp_path)
    task = asyncio.create_task(one.run())
    # Reads of uneven sizes, as a socket delivers them.
    for start in range(0, len(blocks), 7):
        one.sink_many(blocks[start:start + 7])
        await asyncio.sleep(0)
    await asyncio.wait_for(one.records_ready.wait(), 5)
    task.cancel()
    journaled = [text for _, text, _ in one.journal.records()]
    assert journaled == [b for b in blocks if b in set(journaled)]  # a subsequence, in wire order
    assert set(journaled) >= {b for b in kept if not b.startswith(("Event: DeviceStateChange\r", "Event: Cdr\r"))}
    assert not any(t.startswith(("Event: VarSet\r", "Event: CEL\r")) for t in journaled)
    assert one.stats.received == len(blocks)
    assert one.stats.journaled == len(journaled)
    assert one.stats.ignored == len(blocks) - len(journaled)
    assert [r.call_id for r in one.pending] == ["1795687196.106"]
    assert one.queued == 0
    # Every open Linkedid was seen, so the checkpoint is the journal's end once the call is over.
    assert one.low_water() == one.journal.end
    one.journal.close()


async def test_a_backlog_pauses_the_socket_and_resumes_it_once_drained(tmp_path: Path) -> None:
    one = pipeline(tmp_path)
    calls: list[bool] = []
    one.pause_reading = calls.append
    noise = "Event: VarSet\r\nPrivilege: dialplan,all\r\nVariable: X\r\nValue: 1"
    one.sink_many([noise] * (QUEUE_HIGH // 2))
    assert calls == []
    one.sink_many([noise] * (QUEUE_HIGH // 2))
    assert calls == [True]  # paused before the consumer even ran
    task = asyncio.create_task(one.run())
    for _ in range(100):
        await asyncio.sleep(0)
        if calls == [True, False]:
            break
    task.cancel()
    assert calls == [True, False]
    assert one.queued == 0
    assert one.stats.ignored == QUEUE_HIGH // 2 * 2
    one.journal.close()


class FailingPipeline(SystemPipeline):
    """A pipeline whose assembling step has a bug on one message."""

    def apply(self, position: Position, block: str) -> None:
        """Raise on the poisoned message."""
        if "Poison" in block:
            raise RuntimeError("assembler bug")


async def test_a_failing_message_leaves_the_rest_of_its_read_queued(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal")
    journal.open()
    one = FailingPipeline(SystemConfig(name="pbx1"), journal)
    one.live = True
    read = [f"Event: Newchannel\r\nTimestamp: 1.{n}\r\nLinkedid: 1.{n}" for n in range(5)]
    read[2] += "\r\nPoison: 1"
    one.sink_many(read)
    with pytest.raises(RuntimeError):
        one.drain()
    assert [text for _, text, _ in journal.records()] == read[:3]
    assert list(one.queue) == [read[3:]]
    assert one.queued == 2
    one.live = False  # at shutdown: journal what is left
    one.drain()
    assert [text for _, text, _ in journal.records()] == read
    assert one.stats.journaled == 5
    journal.close()
