"""The recorder: asynchronous by default (the request never waits), ordered, outbox on outage."""

from __future__ import annotations

import threading
import time

import pytest

from propguard.relations.outbox import Outbox
from propguard.relations.recorder import Recorder
from propguard.relations.store import StoreUnavailable


class FakeStore:
    def __init__(self, delay=0.0):
        self.delay = delay
        self.applied: list[dict] = []
        self.down = False
        self.poison = set()
        self.engine = None
        #: set: apply() blocks (after ``entered`` is set) until the test sets ``release``
        self.gate: tuple[threading.Event, threading.Event] | None = None

    def apply(self, events):
        if self.down:
            raise StoreUnavailable("down")
        if any(e["image_id"] in self.poison for e in events):
            raise ValueError("bad row")
        if self.gate is not None:
            entered, release = self.gate
            entered.set()
            assert release.wait(10), "the test never released the store"
        time.sleep(self.delay)
        self.applied.extend(events)

    def ping(self):
        if self.down:
            raise StoreUnavailable("down")


def ev(n):
    return {"event": "deleted", "image_id": f"i{n}", "n": n}


@pytest.fixture
def make(tmp_path):
    made = []

    def build(store, **kwargs):
        recorder = Recorder(store, Outbox(str(tmp_path / f"outbox{len(made)}")), **kwargs)
        made.append(recorder)
        return recorder

    yield build
    for recorder in made:
        recorder.close()


def test_the_request_does_not_wait_for_a_slow_database(make):
    """Event-based, no clock: the store blocks until released; record() returns meanwhile."""
    store = FakeStore()
    entered, release = threading.Event(), threading.Event()
    store.gate = (entered, release)
    recorder = make(store)
    recorder.record([ev(1)])
    assert entered.wait(10), "the writer never reached the store"
    recorder.record([ev(2)])  # returns while the writer is still blocked in apply()
    assert not release.is_set() and store.applied == []
    release.set()
    assert recorder.flush(5)
    assert [e["n"] for e in store.applied] == [1, 2]


def test_order_is_kept_across_threads_and_batches(make):
    store = FakeStore(delay=0.001)
    recorder = make(store)
    threads = [
        threading.Thread(
            target=lambda k=k: [recorder.record([ev(k * 1000 + i)]) for i in range(200)]
        )
        for k in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert recorder.flush(10)
    assert len(store.applied) == 800
    for k in range(4):
        mine = [e["n"] for e in store.applied if e["n"] // 1000 == k]
        assert mine == sorted(mine)


def test_outage_goes_to_the_outbox_and_is_drained_later(make):
    store = FakeStore()
    recorder = make(store, retry_interval=0.1)
    store.down = True
    recorder.record([ev(1)])
    recorder.record([ev(2)])
    assert recorder.flush(5)
    assert [e["n"] for e in recorder.outbox.read()] == [1, 2]
    store.down = False
    recorder.record([ev(3)])  # follows the queued ones, through the outbox
    deadline = time.monotonic() + 5
    while recorder.outbox.pending() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert recorder.flush(5)
    assert [e["n"] for e in store.applied] == [1, 2, 3]
    assert recorder.lost == 0


def test_one_bad_event_does_not_lose_its_batch(make):
    store = FakeStore()
    store.poison = {"i2"}
    recorder = make(store, synchronous=True)
    recorder.record([ev(1), ev(2), ev(3)])
    assert [e["n"] for e in store.applied] == [1, 3]
    assert recorder.lost == 1


def test_close_writes_what_is_queued(make):
    store = FakeStore(delay=0.05)
    recorder = make(store)
    for n in range(5):
        recorder.record([ev(n)])
    recorder.close()
    assert [e["n"] for e in store.applied] == list(range(5))


def test_start_drains_what_an_earlier_run_left(make, tmp_path):
    store = FakeStore()
    earlier = Outbox(str(tmp_path / "outbox0"))
    earlier.append([ev(7), ev(8)])
    recorder = make(store)
    recorder.start()
    assert [e["n"] for e in store.applied] == [7, 8]
    assert not recorder.outbox.pending()


def test_synchronous_mode_writes_before_returning(make):
    store = FakeStore(delay=0.05)
    recorder = make(store, synchronous=True)
    recorder.record([ev(1)])
    assert [e["n"] for e in store.applied] == [1]
