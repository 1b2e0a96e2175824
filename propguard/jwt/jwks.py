"""A JWKS URL kept fresh in the background: no request waits on the provider while a key is cached.

What PyJWT 2.15.1's ``PyJWKClient`` does instead (reference §A.2, measured):
it refetches synchronously under a process-wide lock once its cache expires
(every in-flight validation stalled for the provider's 2 s), serves no stale
keys when the provider is down (every request fails), and cannot verify a
token without ``kid``. So propguard keeps its own cache:

* a daemon thread fetches the document every ``refresh_interval`` (sooner
  when ``Cache-Control: max-age`` says so, never more often than the
  cooldown) and swaps in a new immutable :class:`~propguard.jwt.keys.KeyIndex`;
  requests only read the current one;
* an unknown ``kid`` causes at most one fetch at a time (single-flight:
  only the request that starts it waits, bounded by the timeout; others
  with unknown kids meanwhile are refused at once), at most once per
  ``cooldown``, and a kid still unknown after a fetch is remembered
  (negative cache) for ten cooldowns, so random kids cannot turn into a
  fetch per request, nor hold threads during a slow fetch;
* when fetching fails, the last good keys stay in use for ``max_stale``
  seconds after their fetch, then the issuer's tokens are refused (fail
  closed) until a fetch succeeds;
* only http(s), no redirects (a redirect is a failed fetch), a 1 MiB cap,
  https required except on loopback; the URL comes from configuration only,
  never from a token's ``jku``/``x5u``;
* one deadline (``timeout``) bounds a whole fetch, connect to last byte
  (:mod:`propguard.jwt.fetch`), and *every* failure (protocol, size, depth,
  time, an unusable document) is a failed fetch: logged, the last good keys
  kept, never an exception out of :meth:`RemoteJWKS.refresh`, so never fatal
  at start and never a 5xx;
* a fetch that returns the same document keeps the same
  :class:`~propguard.jwt.keys.KeyIndex` object: the validator's cache ties a
  verified token to that object, so only a change of keys (or staleness)
  invalidates cached tokens.

The thread is restarted lazily in a forked worker (glance-api and uWSGI load
the pipeline before forking; threads do not survive a fork).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from propguard import metrics
from propguard.jwt.fetch import (
    LOOPBACK_HOSTS,
    MAX_DOCUMENT_BYTES,
    Fetch,
    FetchFailed,
    check_url,
    describe,
    http_fetcher,
)
from propguard.jwt.keys import KeyIndex, keys_from_jwks

LOG = logging.getLogger(__name__)

NEGATIVE_CACHE_SIZE = 1024

__all__ = ["LOOPBACK_HOSTS", "MAX_DOCUMENT_BYTES", "RemoteJWKS", "check_url", "http_fetcher"]


class RemoteJWKS:
    """The keys at a JWKS URL, refreshed in the background (see the module docstring)."""

    def __init__(
        self,
        url: str,
        algorithms: Iterable[str],
        *,
        refresh_interval: float = 300,
        cooldown: float = 30,
        max_stale: float = 86400,
        timeout: float = 5,
        cafile: str | None = None,
        fetch: Fetch | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.algorithms = tuple(algorithms)
        self.refresh_interval = float(refresh_interval)
        self.cooldown = float(cooldown)
        self.max_stale = float(max_stale)
        self.timeout = float(timeout)
        self._fetch = fetch or http_fetcher(url, timeout, cafile)
        self.clock = clock
        self._keys = KeyIndex()
        self._document: Any = None  # the document self._keys came from
        self._fetched_at: float | None = None  # clock() of the last successful fetch
        self._last_attempt: float | None = None
        self._next_delay = self.refresh_interval
        self._negative: OrderedDict[str, float] = OrderedDict()
        self._fetching = threading.Lock()  # single flight
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._thread_pid: int | None = None
        self._background = False
        #: Counters for tests and operators (fetches attempted, failed).
        self.fetches = 0
        self.failures = 0
        metrics.watch_jwks(self)  # age on /metrics, readiness

    # -- reading (request path: never blocks) ------------------------------

    def current(self) -> KeyIndex:
        """The cached keys, or none once they are older than ``max_stale``."""
        if self._background and self._thread_pid != os.getpid():
            self.start_thread()  # a forked worker: the parent's thread did not come along
        fetched_at = self._fetched_at
        if fetched_at is None or self.clock() - fetched_at > self.max_stale:
            return _EMPTY
        return self._keys

    def age(self) -> float | None:
        """Seconds since the last successful fetch (None: never)."""
        return None if self._fetched_at is None else self.clock() - self._fetched_at

    # -- unknown kid --------------------------------------------------------

    def refetch_for(self, kid: str) -> bool:
        """One refetch for an unknown ``kid``, if allowed now; True if keys may have changed.

        Only a request whose kid is not cached comes here, and only the one
        that starts the fetch waits for it (bounded by the timeout): while a
        fetch is under way, other unknown kids are refused at once, so a flood
        of them cannot hold the server's threads during a slow fetch.
        """
        now = self.clock()
        if self._fetching.locked():
            return False
        expiry = self._negative.get(kid)
        if expiry is not None and expiry > now:
            return False
        if self._last_attempt is not None and now - self._last_attempt < self.cooldown:
            return False
        if not self._fetching.acquire(blocking=False):
            return False  # another request or the refresher is fetching
        try:
            if self._last_attempt is not None and self.clock() - self._last_attempt < self.cooldown:
                return False  # another thread fetched between our check and the lock
            self._refresh_locked()
            if kid not in self._keys.kids:
                self._remember_unknown(kid)
        finally:
            self._fetching.release()
        return True

    def _remember_unknown(self, kid: str) -> None:
        self._negative[kid] = self.clock() + 10 * max(self.cooldown, 1.0)
        self._negative.move_to_end(kid)
        while len(self._negative) > NEGATIVE_CACHE_SIZE:
            self._negative.popitem(last=False)

    # -- fetching -------------------------------------------------------------

    def refresh(self) -> bool:
        """Fetch now (waiting for a fetch under way instead of starting a second one)."""
        with self._fetching:
            return self._refresh_locked()

    def _refresh_locked(self) -> bool:
        self._last_attempt = self.clock()
        self.fetches += 1
        try:
            document, max_age = self._fetch()
            if self._fetched_at is not None and document == self._document:
                keys = self._keys  # unchanged: cached verifications stay valid
            else:
                keys = KeyIndex(keys_from_jwks(document, self.algorithms, self.url))
            if max_age is not None and not 0 <= max_age < 1e9:
                max_age = None
        except Exception as exc:  # noqa: BLE001 - every failure is a failed fetch
            failed_at = self.clock()
            self.failures += 1
            metrics.jwks_fetched(False)
            self._next_delay = max(1.0, min(self.cooldown, self.refresh_interval))
            age = None if self._fetched_at is None else failed_at - self._fetched_at
            LOG.warning(
                "JWKS %s: fetch failed (%s); %s",
                self.url,
                str(exc) if isinstance(exc, FetchFailed) else describe(exc),
                "no keys yet"
                if age is None
                else f"keeping keys fetched {age:.0f} s ago (max_stale {self.max_stale:.0f} s)",
            )
            return False
        if not len(keys):
            LOG.warning("JWKS %s: no usable signature keys in the document", self.url)
        self._keys = keys
        self._document = document
        self._fetched_at = self.clock()
        metrics.jwks_fetched(True)
        for kid in keys.kids:
            self._negative.pop(kid, None)
        delay = self.refresh_interval if max_age is None else max_age
        self._next_delay = min(self.refresh_interval, max(delay, self.cooldown, 1.0))
        return True

    # -- background thread ----------------------------------------------------

    def start(self) -> None:
        """First fetch (bounded by the timeout; a failure is logged, not fatal), then the thread."""
        self.refresh()
        self.start_thread()

    def start_thread(self) -> None:
        self._background = True
        self._thread_pid = os.getpid()
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"propguard-jwks {self.url}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._background = False
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=self.timeout + 1)

    def _run(self) -> None:
        while not self._stop.wait(self._next_delay):
            try:
                self.refresh()
            except Exception:  # pragma: no cover - keep the refresher alive whatever happens
                LOG.exception("JWKS %s: refresh failed", self.url)


_EMPTY = KeyIndex()
