"""Writes relation events: to the store, or to the outbox while the store cannot take them.

Two modes (``relations_synchronous``):

* asynchronous (default): the request thread only appends the events to an
  in-memory queue (microseconds) and Glance's answer goes back at once; one
  writer thread per worker process writes them, in order, in batches (one
  transaction each). A database that is slow or away never delays an
  answer. The cost: events still queued when the process is killed
  (SIGKILL, OOM, power loss) are lost; that is the milliseconds between an
  answer and its write. A clean stop (``atexit``, :meth:`Recorder.close`)
  writes what is queued first.
* synchronous: the request thread writes (or, the store being away, appends
  to the fsynced outbox) before the answer goes back: nothing acknowledged
  is ever lost, and each recorded request waits for one database round trip
  (one statement, autocommitted).

Either way the order of events is kept: once one event is in the outbox,
later ones follow it there until a drain has emptied it, and the outbox is
drained in file order. Draining: at start, then by the writer thread every
``relations_retry_interval`` seconds while the outbox holds events. A
database unreachable at start has its schema checked before the first drain.

Never raises into the request. If the outbox itself cannot be written
(disk full, permissions) while the database is away, the event is lost to
the store: it is logged at ERROR level, in full, as the JSON line the
outbox would have held, and the request still succeeds.
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from propguard import metrics
from propguard.relations.outbox import Outbox, OutboxError
from propguard.relations.store import RelationStore, StoreError, StoreUnavailable, check_current

LOG = logging.getLogger(__name__)


class Recorder:
    def __init__(
        self,
        store: RelationStore,
        outbox: Outbox,
        *,
        retry_interval: float = 5.0,
        schema_checked: bool = True,
        synchronous: bool = False,
    ) -> None:
        self.store = store
        self.outbox = outbox
        metrics.watch_outbox(outbox)  # depth and lag on /metrics, readiness
        self.retry_interval = retry_interval
        self.synchronous = synchronous
        self._schema_checked = schema_checked
        self._drain_lock = threading.Lock()
        self._cond = threading.Condition()
        self._queue: collections.deque[Mapping[str, Any]] = collections.deque()
        self._busy = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._last_drain = 0.0
        self._down_logged = False
        #: Counters, for tests and logs.
        self.written = 0
        self.queued = 0
        self.lost = 0
        ref = weakref.ref(self)
        atexit.register(lambda: (r := ref()) is not None and r.close())
        # a worker forked after the filter was built: fresh locks, no inherited writer
        os.register_at_fork(after_in_child=lambda: (r := ref()) is not None and r._forked())

    # -- the request side ----------------------------------------------------

    def record(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Take ``events`` (in order); never raises."""
        if not events:
            return
        try:
            if self.synchronous:
                self._write(list(events))
                return
            with self._cond:
                self._queue.extend(events)
                self._ensure_thread()
                self._cond.notify()
        except Exception:  # never turn Glance's success into an error
            self._lose(events, "recording failed")

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event taken so far is written (to the store or the outbox)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._busy, timeout)

    # -- writing --------------------------------------------------------------

    def _write(self, events: list[Mapping[str, Any]]) -> None:
        if self._schema_checked and not self.outbox.pending():
            try:
                self._apply(events)
                return
            except StoreUnavailable as exc:
                self._went_down(exc)
        self._queue_in_outbox(events)

    def _apply(self, events: list[Mapping[str, Any]]) -> None:
        try:
            self.store.apply(events)
            self.written += len(events)
            return
        except StoreUnavailable:
            raise
        except Exception:
            if len(events) == 1:
                self._lose(events, "the database refused it")
                return
        for event in events:  # one bad event must not take the others with it
            try:
                self.store.apply([event])
                self.written += 1
            except StoreUnavailable:
                raise
            except Exception:
                self._lose([event], "the database refused it")

    def _queue_in_outbox(self, events: Sequence[Mapping[str, Any]]) -> None:
        try:
            self.outbox.append(events)
        except OutboxError as exc:
            self._lose(events, f"the database is unavailable and {exc}")
            return
        self.queued += len(events)
        if self.synchronous:
            self._ensure_thread()

    def _lose(self, events: Sequence[Mapping[str, Any]], why: str) -> None:
        self.lost += len(events)
        for event in events:
            LOG.error(
                "propguard: relation event LOST (%s): %s",
                why,
                orjson.dumps(event, default=str).decode(),
                exc_info=True,
            )

    def _went_down(self, exc: Exception) -> None:
        self._last_drain = time.monotonic()  # next attempt: retry_interval from now
        if not self._down_logged:
            LOG.warning(
                "propguard: relations database unavailable (%s); queuing relations in %s",
                exc,
                self.outbox.path,
            )
            self._down_logged = True

    # -- draining -------------------------------------------------------------

    def drain(self) -> int:
        """Apply the outbox now; returns how many events were applied.

        Raises :class:`StoreUnavailable` if the database is still away and
        :class:`StoreError` if its schema is not current.
        """
        with self._drain_lock:
            self._last_drain = time.monotonic()
            if not self.outbox.pending():
                return 0
            # Reach the database before taking the outbox's lock: appends by
            # other threads and workers must not wait on a connection attempt.
            self.store.ping()
            if not self._schema_checked:
                check_current(self.store.engine)
                self._schema_checked = True
            applied = self.outbox.drain(self.store.apply, retryable=(StoreUnavailable,))
        if applied:
            metrics.OUTBOX_REPLAYED.inc(applied)
            LOG.info(
                "propguard: %d queued relation event(s) applied from %s", applied, self.outbox.path
            )
        self._down_logged = False
        return applied

    def try_drain(self) -> int:
        try:
            return self.drain()
        except StoreUnavailable as exc:
            self._went_down(exc)
        except StoreError as exc:
            LOG.error("%s; relations stay queued in %s", exc, self.outbox.path)
        except Exception:
            LOG.exception("propguard: draining the relations outbox failed")
        return 0

    # -- the writer thread --------------------------------------------------------

    def _forked(self) -> None:
        self._cond = threading.Condition()
        self._drain_lock = threading.Lock()
        self._busy = False
        self._thread = None

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._thread = threading.Thread(
            target=self._run, name="propguard-relations-writer", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    if self.outbox.pending():
                        wait = self.retry_interval - (time.monotonic() - self._last_drain)
                        if wait <= 0:
                            break
                        self._cond.wait(wait)
                    else:
                        self._cond.wait()
                batch = list(self._queue)
                self._queue.clear()
                self._busy = True
                closing = self._closed
            try:
                if batch:
                    self._write(batch)
                if (
                    self.outbox.pending()
                    and time.monotonic() - self._last_drain >= self.retry_interval
                ):
                    self.try_drain()
            except Exception:
                self._lose(batch, "the writer failed")
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
            if closing:
                with self._cond:
                    if not self._queue:
                        return

    def start(self) -> None:
        """At filter start: drain what an earlier run left (best effort)."""
        if self.outbox.pending():
            self.try_drain()
            if self.outbox.pending():
                with self._cond:
                    self._ensure_thread()

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (to the store or the outbox), then stop the writer."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread() and thread.is_alive():
            thread.join(timeout)
        elif self._queue:  # no writer (never started, or another process's): write here
            batch = list(self._queue)
            self._queue.clear()
            self._write(batch)
