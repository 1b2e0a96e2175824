"""Keep the current rules, reload them when their files change or on SIGHUP.

The first load must succeed (fail closed: the filter does not start). Later,
a broken file is refused with an error log line and the last good rules stay
in force. Checks are cheap (a ``stat`` at most every ``interval`` seconds,
done by one thread while the others keep using the current engine).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable

from oslo_log import log

from propguard.rules.engine import RuleEngine
from propguard.rules.model import RulesError

LOG = log.getLogger(__name__)


Stamp = tuple[int, int, int] | None


def _stamp(path: str) -> Stamp:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _stamps(path: str) -> list[tuple[str, Stamp]]:
    """A file's stamp; for a directory (policy.d), its own and each of its files'."""
    stamps = [(path, _stamp(path))]
    if os.path.isdir(path):
        try:
            names = sorted(os.listdir(path))
        except OSError:
            return stamps
        stamps.extend((os.path.join(path, n), _stamp(os.path.join(path, n))) for n in names)
    return stamps


class RulesHolder:
    """Holds a :class:`RuleEngine` built by ``build`` and swaps it on change.

    ``watched`` are files, or directories whose files are all watched (a file
    added, removed or changed there counts as a change).
    """

    def __init__(
        self,
        build: Callable[[], RuleEngine],
        watched: list[str],
        interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._build = build
        self._watched = [p for p in watched if p]
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._forced = False
        self._stamps = self._read_stamps()
        self.engine = build()  # RulesError propagates: fail closed at start
        self._next_check = clock() + interval

    def _read_stamps(self) -> list[tuple[str, Stamp]]:
        return [stamp for p in self._watched for stamp in _stamps(p)]

    def current(self) -> RuleEngine:
        """The engine to use now, reloading first if a check is due."""
        # A requested reload (SIGHUP) happens even when polling is off (interval < 0).
        if self._forced or (self._interval >= 0 and self._clock() >= self._next_check):
            self.maybe_reload()
        return self.engine

    def request_reload(self) -> None:
        """Ask for a reload at the next request (used by the SIGHUP handler)."""
        self._forced = True

    def maybe_reload(self) -> bool:
        """Reload if a watched file changed (or a reload was requested)."""
        if not self._lock.acquire(blocking=False):
            return False  # another thread is on it; keep serving current rules
        try:
            forced, self._forced = self._forced, False
            self._next_check = self._clock() + self._interval
            stamps = self._read_stamps()
            if not forced and stamps == self._stamps:
                return False
            self._stamps = stamps
            try:
                engine = self._build()
            except RulesError as exc:
                LOG.error("propguard: new rules refused, keeping the last good rules: %s", exc)
                return False
            self.engine = engine
            LOG.info("propguard: rules reloaded from %s", ", ".join(self._watched))
            return True
        finally:
            self._lock.release()

    def install_sighup(self) -> bool:
        """Reload on SIGHUP, chaining any previous handler (main thread only)."""
        if threading.current_thread() is not threading.main_thread() or not hasattr(
            signal, "SIGHUP"
        ):
            return False
        previous = signal.getsignal(signal.SIGHUP)

        def handler(signum, frame):
            self.request_reload()
            if callable(previous):
                previous(signum, frame)

        signal.signal(signal.SIGHUP, handler)
        return True
