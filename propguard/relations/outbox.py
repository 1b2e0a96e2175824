"""The durable local outbox: relation events the database could not take, in order.

A file of one record per line, ``<crc32 of the JSON, 8 hex digits> <JSON>``,
appended under an exclusive ``flock`` and fsynced before
the request that produced the event is answered, so several glance-api
worker processes can share it. It is drained in file order, whole
transactions of up to :data:`BATCH` events, and emptied only once every
event in it has been applied; events are idempotent (see
:mod:`propguard.relations.store`), so a drain cut short by a crash or a new
outage is simply repeated. A line that is not an event (a write torn by a
crash) is set aside in ``<outbox>.rejected``, never retried forever.

Crash safety: a crash or a full disk can leave the last line half written.
Every append therefore starts on a fresh line (a newline first when the file
does not end with one), so the next record never joins the torn fragment,
and each record carries the checksum of its JSON, so a fragment that happens
to parse is still recognised as torn. Replay rejects exactly the fragment.
Lines without a checksum (written by an earlier propguard) are read as
plain JSON.

While the outbox holds anything, new events are appended to it rather than
written to the database, so events are applied in the order they happened.
"""

from __future__ import annotations

import fcntl
import logging
import os
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import orjson

LOG = logging.getLogger(__name__)
BATCH = 500


class OutboxError(OSError):
    """The outbox file cannot be written."""


class Outbox:
    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)

    def ensure_writable(self) -> None:
        """Create the file (and its directory) now, so a bad path stops the filter at start."""
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            os.close(fd)
        except OSError as exc:
            raise OutboxError(
                exc.errno, f"relations outbox {self.path} cannot be written: {exc.strerror}"
            ) from None

    def pending(self) -> bool:
        try:
            return os.stat(self.path).st_size > 0
        except FileNotFoundError:
            return False

    def append(self, events: Iterable[Mapping[str, Any]]) -> None:
        """Append and fsync; raises :class:`OutboxError` if that fails."""
        data = b"".join(frame(event) for event in events)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    data = b"\n" + data  # a torn last line stays a line of its own
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)  # releases the lock
        except OSError as exc:
            raise OutboxError(exc.errno, f"relations outbox {self.path}: {exc.strerror}") from exc

    def read(self) -> list[dict[str, Any]]:
        """The events waiting (for tests and ``propguard relations`` tooling)."""
        try:
            with open(self.path, "rb") as handle:
                return [e for e in map(parse_line, handle.read().splitlines()) if e is not None]
        except FileNotFoundError:
            return []

    def drain(
        self,
        apply: Callable[[Sequence[Mapping[str, Any]]], None],
        retryable: tuple[type[BaseException], ...] = (),
    ) -> int:
        """Apply every waiting event with ``apply`` (one call per batch), then empty the file.

        Holds the lock throughout, so no worker appends in between. If
        ``apply`` raises one of ``retryable`` (the database went away), the
        file is left as it was (batches already applied are applied again next
        time, harmlessly) and the error propagates. Any other error fails the
        batch, which is then applied event by event; an event that still
        fails is set aside in ``<outbox>.rejected`` (logged), so one bad event
        never blocks the others. Returns the number of events applied.
        """
        try:
            fd = os.open(self.path, os.O_RDWR)
        except FileNotFoundError:
            return 0
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with os.fdopen(os.dup(fd), "rb") as handle:
                lines = handle.read().splitlines()
            events: list[dict[str, Any]] = []
            rejected: list[bytes] = []
            for line in lines:
                if not line.strip():
                    continue
                event = parse_line(line)
                if event is None:
                    rejected.append(line)
                else:
                    events.append(event)
            if rejected:
                self._reject(rejected)
            applied = 0
            for start in range(0, len(events), BATCH):
                applied += self._apply_batch(apply, events[start : start + BATCH], retryable)
            os.ftruncate(fd, 0)
            os.fsync(fd)
            return applied
        finally:
            os.close(fd)

    def _apply_batch(self, apply, batch, retryable) -> int:
        try:
            apply(batch)
            return len(batch)
        except retryable:
            raise
        except Exception:
            LOG.exception("propguard: a batch of the relations outbox failed; applying one by one")
        applied = 0
        for event in batch:
            try:
                apply([event])
                applied += 1
            except retryable:
                raise
            except Exception as exc:
                LOG.error("propguard: relation event %s rejected: %s", orjson.dumps(event), exc)
                self._reject([orjson.dumps(event)])
        return applied

    def _reject(self, lines: list[bytes]) -> None:
        LOG.error(
            "propguard: %d unreadable line(s) in the relations outbox %s set aside in %s.rejected",
            len(lines),
            self.path,
            self.path,
        )
        with open(self.path + ".rejected", "ab") as handle:
            handle.write(b"".join(line + b"\n" for line in lines))
            handle.flush()
            os.fsync(handle.fileno())


def frame(event: Mapping[str, Any]) -> bytes:
    """One outbox line: the checksum of the JSON, a space, the JSON, a newline."""
    data = orjson.dumps(event)
    return b"%08x %s\n" % (zlib.crc32(data), data)


def parse_line(line: bytes) -> dict[str, Any] | None:
    """The event of one line, or None for anything else (a torn or corrupt record)."""
    line = line.strip()
    if line[:1] != b"{":
        checksum, _, data = line.partition(b" ")
        try:
            if len(checksum) != 8 or int(checksum, 16) != zlib.crc32(data):
                return None
        except ValueError:
            return None
        line = data
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(event, dict) or not isinstance(event.get("event"), str):
        return None
    if not isinstance(event.get("image_id"), str):
        return None
    return event
