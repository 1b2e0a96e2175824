"""The outbox file: order, fsync'd appends from many threads, idempotent drains, torn lines."""

from __future__ import annotations

import threading

import pytest

from propguard.relations.outbox import Outbox, OutboxError


class Down(Exception):
    pass


def event(n: int) -> dict:
    return {"event": "deleted", "image_id": f"img-{n}", "n": n}


def test_append_read_drain_in_order(tmp_path):
    outbox = Outbox(str(tmp_path / "o"))
    assert not outbox.pending() and outbox.read() == []
    outbox.append([event(1), event(2)])
    outbox.append([event(3)])
    assert outbox.pending()
    seen = []
    assert outbox.drain(seen.extend) == 3
    assert [e["n"] for e in seen] == [1, 2, 3]
    assert not outbox.pending()
    assert outbox.drain(seen.extend) == 0


def test_a_failed_drain_keeps_everything(tmp_path):
    outbox = Outbox(str(tmp_path / "o"))
    outbox.append([event(n) for n in range(1200)])
    batches = []

    def apply(batch):
        if len(batches) == 1:
            raise Down
        batches.append(list(batch))

    with pytest.raises(Down):
        outbox.drain(apply, retryable=(Down,))
    assert len(outbox.read()) == 1200  # the first batch will be applied again: idempotent
    applied = []
    assert outbox.drain(applied.extend) == 1200
    assert [e["n"] for e in applied] == list(range(1200))


def test_a_bad_event_is_set_aside_not_retried_forever(tmp_path):
    outbox = Outbox(str(tmp_path / "o"))
    outbox.append([event(1), {**event(2), "poison": True}, event(3)])
    with open(outbox.path, "ab") as handle:
        handle.write(b'{"event": "created", "image_id": "torn')  # a write cut by a crash
    applied = []

    def apply(batch):
        if any(e.get("poison") for e in batch):
            raise ValueError("bad row")
        applied.extend(batch)

    assert outbox.drain(apply, retryable=(Down,)) == 2
    assert [e["n"] for e in applied] == [1, 3]
    rejected = (tmp_path / "o.rejected").read_bytes().splitlines()
    assert len(rejected) == 2 and b"torn" in rejected[0] and b"poison" in rejected[1]
    assert not outbox.pending()


def test_concurrent_appends_keep_whole_lines(tmp_path):
    outbox = Outbox(str(tmp_path / "o"))
    threads = [
        threading.Thread(
            target=lambda k=k: [outbox.append([event(k * 100 + i)]) for i in range(100)]
        )
        for k in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(e["n"] for e in outbox.read()) == list(range(800))


def test_unwritable_outbox(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    outbox = Outbox(str(blocker / "outbox"))
    with pytest.raises(OutboxError, match="cannot be written"):
        outbox.ensure_writable()
    with pytest.raises(OutboxError):
        outbox.append([event(1)])


@pytest.mark.parametrize("cut", [1, 9, 20, -2])
def test_a_torn_last_record_never_swallows_the_next(tmp_path, cut):
    """A crash mid-append leaves part of a record; the next append starts a fresh line
    and replay rejects exactly the fragment (before: the next record was appended onto
    it and both were lost)."""
    path = tmp_path / "o"
    outbox = Outbox(str(path))
    outbox.append([event(1)])
    whole = path.read_bytes()
    outbox.append([event(2)])
    data = path.read_bytes()
    path.write_bytes(data[: len(whole) + (cut if cut > 0 else len(data) - len(whole) + cut)])
    outbox.append([event(3)])
    outbox.append([event(4)])
    seen = []
    assert outbox.drain(seen.extend) == 3
    assert [e["n"] for e in seen] == [1, 3, 4]
    rejected = (tmp_path / "o.rejected").read_bytes().splitlines()
    assert len(rejected) == 1 and data.startswith(whole + rejected[0])


def test_a_fragment_that_parses_is_still_rejected_by_its_checksum(tmp_path):
    path = tmp_path / "o"
    outbox = Outbox(str(path))
    outbox.append([{"event": "deleted", "image_id": "img-1", "reason": "abc"}])
    line = path.read_bytes()
    # the same record with a byte flipped inside the JSON: parses, checksum differs
    path.write_bytes(line.replace(b"abc", b"abd"))
    seen = []
    assert outbox.drain(seen.extend) == 0


def test_records_of_an_earlier_propguard_without_checksum_are_read(tmp_path):
    path = tmp_path / "o"
    path.write_bytes(b'{"event":"deleted","image_id":"img-7","n":7}\n')
    outbox = Outbox(str(path))
    outbox.append([event(8)])
    seen = []
    assert outbox.drain(seen.extend) == 2
    assert [e["n"] for e in seen] == [7, 8]
