"""Prometheus metrics of every adapter (``prometheus_client``), correct under several processes.

Why this shape:

* **Several processes.** glance-api under uWSGI and ``propguard serve``
  (gunicorn) run several worker processes, each counting on its own. With
  ``PROMETHEUS_MULTIPROC_DIR`` set (before the process imports
  ``prometheus_client``), each process writes its counters to files there and
  :func:`render` sums them (``prometheus_client.multiprocess``). ``propguard
  serve`` sets it itself (a fresh directory per run, see
  :mod:`propguard.proxy.server`); for glance-api set it in uWSGI's
  environment and scrape ``python -m propguard.metrics --multiproc-dir DIR``.
* **Bounded labels.** Route template (``images``, ``image``, ...), method
  (the checked ones, else ``other``), outcome, error kind: never a name or
  value a caller chose (docs/operations.md lists them).
* **Cheap on the request path.** One counter increment per decision (label
  children cached: no ``labels()`` lookup per request), a second only when
  something was hidden. Gauges that describe state (JWKS age, outbox depth,
  notification counts) are read at scrape time by :class:`_Live`, from the
  objects the adapters registered with :func:`watch_jwks`,
  :func:`watch_outbox`, :func:`watch_notifications`.
"""

from __future__ import annotations

import ipaddress
import os
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: The methods the filter checks; any other (caller-chosen) method is counted as ``other``.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})

DECISIONS = Counter(
    "propguard_decisions_total",
    "Requests on a checked Glance route, by route template, method and outcome "
    "(passed, hidden, refused, invalid, error, upstream, unchecked).",
    ["route", "method", "outcome"],
)
HIDDEN = Counter(
    "propguard_hidden_properties_total",
    "Properties removed from answers, by route template.",
    ["route"],
)
UPSTREAM_ERRORS = Counter(
    "propguard_upstream_errors_total",
    "Upstream failures of propguard serve's proxy: unreachable (502), timeout (504), "
    "aborted (failed after the answer started).",
    ["kind"],
)
UPSTREAM_LATENCY = Histogram(
    "propguard_upstream_response_seconds",
    "Time from sending a request upstream to its answer's head, by method and status class.",
    ["method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
JWKS_FETCHES = Counter(
    "propguard_jwks_fetches_total", "JWKS fetches, by result (ok, failed).", ["result"]
)
OUTBOX_REPLAYED = Counter(
    "propguard_relations_outbox_replayed_total",
    "Relation events applied to the store from the outbox (replayed after an outage).",
)

NOTIFY_SHADOW = Counter(
    "propguard_notify_shadow_divergences_total",
    "Properties of notifications that shadow_rules_file decides otherwise than the rules in "
    "force, by output mode, audience (reader class, or the strip audience's roles), event "
    "type, both deciding sections (file:line) and change (would_hide: shown now, the shadow "
    "rules would hide it; would_show: the reverse).",
    ["mode", "audience", "event_type", "enforced_section", "shadow_section", "change"],
)

SHADOW = Counter(
    "propguard_shadow_divergences_total",
    "Decisions of the API filter that shadow_rules_file takes otherwise than the rules in "
    "force, by route template, operation, both deciding sections (file:line) and change "
    "(would_hide/would_show for reads, would_refuse/would_allow for changes).",
    ["route", "operation", "enforced_section", "shadow_section", "change"],
)

_decisions: dict[tuple[str, str, str], Any] = {}
_shadow: dict[tuple[str, ...], Any] = {}
_notify_shadow: dict[tuple[str, ...], Any] = {}
_hidden: dict[str, Any] = {}
_latency: dict[tuple[str, str], Any] = {}
_upstream_errors = {
    kind: UPSTREAM_ERRORS.labels(kind) for kind in ("unreachable", "timeout", "aborted")
}
_jwks = {result: JWKS_FETCHES.labels(result) for result in ("ok", "failed")}
_STATUS_CLASS = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}
#: Where :func:`note_hidden` leaves the number of properties hidden in a request.
HIDDEN_KEY = "propguard.hidden"


# -- the filter (propguard/middleware.py) -----------------------------------------


def note_hidden(environ: dict[str, Any], count: int) -> None:
    """Leave in ``environ`` how many properties the request's reader hid (its trail's count)."""
    if count:
        environ[HIDDEN_KEY] = environ.get(HIDDEN_KEY, 0) + count


def outcome_of(response: Any, refused: bool) -> str:
    """The outcome label of a checked request: its answer's status, and where it came from."""
    status = getattr(response, "status_code", None)
    if status is None:  # webob.exc.HTTPException: the answer it carries
        status = getattr(getattr(response, "wsgi_response", None), "status_code", None)
    if not isinstance(status, int):
        return "unchecked"  # passed to the next app without a check (no handler)
    if refused:
        return "refused" if status in (403, 409) else ("error" if status >= 500 else "invalid")
    if status >= 400:
        return "upstream"  # Glance's own answer, relayed
    return "passed"


def decided(route: str, environ: dict[str, Any], response: Any, refused: bool) -> None:
    """Count one request of the filter (called where ``_dispatch`` returned or raised)."""
    method = environ.get("REQUEST_METHOD", "")
    if method not in METHODS:
        method = "other"
    hidden = environ.get(HIDDEN_KEY, 0)
    outcome = "hidden" if hidden and not refused else outcome_of(response, refused)
    key = (route, method, outcome)
    child = _decisions.get(key)
    if child is None:
        child = _decisions[key] = DECISIONS.labels(*key)
    child.inc()
    if hidden:
        counter = _hidden.get(route)
        if counter is None:
            counter = _hidden[route] = HIDDEN.labels(route)
        counter.inc(hidden)


def shadow_diverged(
    route: str, operation: str, enforced_section: str, shadow_section: str, enforced: bool
) -> None:
    """Count one decision the shadow rules take otherwise (a ``shadow_divergence`` record).

    Labels come from the route table, the four operations and the rules
    files: never from a request's property names.
    """
    if operation == "read":
        change = "would_hide" if enforced else "would_show"
    else:
        change = "would_refuse" if enforced else "would_allow"
    key = (route, operation, enforced_section, shadow_section, change)
    child = _shadow.get(key)
    if child is None:
        child = _shadow[key] = SHADOW.labels(*key)
    child.inc()


# -- the notification filter (propguard/notifications/shadow.py) --------------------


def notify_shadow_diverged(labels: tuple[str, str, str, str, str, str], count: int) -> None:
    """Count ``count`` properties of one notification output decided otherwise by the
    shadow rules. Labels (see :data:`NOTIFY_SHADOW`) come from the configuration, the
    event-type allow-list and the rules files: never from a notification's names."""
    child = _notify_shadow.get(labels)
    if child is None:
        child = _notify_shadow[labels] = NOTIFY_SHADOW.labels(*labels)
    child.inc(count)


# -- the proxy (propguard/proxy/app.py) --------------------------------------------


def upstream_answered(method: str, status: int, seconds: float) -> None:
    key = (method if method in METHODS else "other", _STATUS_CLASS.get(status // 100, "other"))
    child = _latency.get(key)
    if child is None:  # label children cached, as for decisions: no labels() per request
        child = _latency[key] = UPSTREAM_LATENCY.labels(*key)
    child.observe(seconds)


def upstream_failed(status_or_kind: int | str) -> None:
    """502 (unreachable), 504 (timeout) or ``"aborted"`` (after the answer started)."""
    kind = {502: "unreachable", 504: "timeout"}.get(status_or_kind, status_or_kind)  # type: ignore[call-overload]
    _upstream_errors.get(str(kind), _upstream_errors["unreachable"]).inc()


# -- state read at scrape time ------------------------------------------------------

_watched_jwks: weakref.WeakSet[Any] = weakref.WeakSet()
_watched_outboxes: weakref.WeakSet[Any] = weakref.WeakSet()
_watched_services: weakref.WeakSet[Any] = weakref.WeakSet()


def jwks_fetched(ok: bool) -> None:
    _jwks["ok" if ok else "failed"].inc()


def watch_jwks(jwks: Any) -> None:
    """A :class:`~propguard.jwt.jwks.RemoteJWKS` of this process (age, readiness)."""
    _watched_jwks.add(jwks)


def watch_outbox(outbox: Any) -> None:
    """A relations :class:`~propguard.relations.outbox.Outbox` of this process (depth, lag)."""
    _watched_outboxes.add(outbox)


def watch_notifications(service: Any) -> None:
    """A notify-filter service whose ``counts`` are exported."""
    _watched_services.add(service)


def watched_jwks() -> list[Any]:
    return list(_watched_jwks)


def watched_outboxes() -> list[Any]:
    return list(_watched_outboxes)


def outbox_depth(outbox: Any) -> tuple[int, float]:
    """Bytes waiting in ``outbox`` and the age in seconds of its oldest event (0: empty)."""
    try:
        with open(outbox.path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            first = handle.readline(65536) if size else b""
    except FileNotFoundError:
        return 0, 0.0
    if not first:
        return size, 0.0
    from propguard.relations.outbox import parse_line  # the outbox's own framing

    event = parse_line(first)
    try:
        import datetime as dt

        at = event["at"] if event is not None else None
        when = dt.datetime.fromisoformat(at).replace(tzinfo=dt.UTC).timestamp()
    except (KeyError, TypeError, ValueError):
        return size, 0.0
    return size, max(0.0, time.time() - when)


class _Live:
    """Gauges read from the watched objects of the process answering the scrape."""

    def collect(self) -> Iterator[Any]:
        age = GaugeMetricFamily(
            "propguard_jwks_age_seconds",
            "Seconds since this process last fetched its JWKS (absent: never fetched).",
        )
        stale = GaugeMetricFamily(
            "propguard_jwks_max_stale_seconds", "The JWKS keys are refused past this age."
        )
        for jwks in watched_jwks():
            seconds = jwks.age()
            if seconds is not None:
                age.add_metric([], seconds)
            stale.add_metric([], jwks.max_stale)
        yield age
        yield stale
        depth = GaugeMetricFamily(
            "propguard_relations_outbox_bytes", "Bytes of relation events waiting in the outbox."
        )
        lag = GaugeMetricFamily(
            "propguard_relations_outbox_lag_seconds",
            "Age of the oldest relation event waiting in the outbox (0: empty).",
        )
        for outbox in {o.path: o for o in watched_outboxes()}.values():
            size, seconds = outbox_depth(outbox)
            depth.add_metric([], size)
            lag.add_metric([], seconds)
        yield depth
        yield lag
        services = list(_watched_services)
        if services:
            messages = CounterMetricFamily(
                "propguard_notify_messages",
                "Notifications of the notify-filter service, by event (consumed, published, "
                "acked, requeued, dead_lettered, reconnects).",
                labels=["event"],
            )
            for event in (
                "consumed",
                "published",
                "acked",
                "requeued",
                "dead_lettered",
                "reconnects",
            ):
                messages.add_metric([event], sum(s.counts.get(event, 0) for s in services))
            yield messages
            backlog = GaugeMetricFamily(
                "propguard_notify_unacked", "Notifications consumed and not yet acknowledged."
            )
            backlog.add_metric([], sum(len(getattr(s, "_pending", ())) for s in services))
            yield backlog


def registry() -> CollectorRegistry:
    """What a scrape shows: every process's counters (multiprocess) or this one's, and _Live."""
    scrape = CollectorRegistry(auto_describe=False)
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(scrape, path=directory)
    else:
        scrape.register(_Default())
    scrape.register(_Live())
    return scrape


class _Default:
    def collect(self) -> Iterator[Any]:
        yield from REGISTRY.collect()


def render() -> bytes:
    return generate_latest(registry())


def forget_process(pid: int | None = None) -> None:
    """A worker ended (or the serve master built its test pipeline): drop its live gauges."""
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid(), directory)


# -- the /metrics app -----------------------------------------------------------------


class MetricsApp:
    """``GET /metrics``: the exposition, to clients in ``allowed_source_ranges`` only.

    No token: Prometheus does not carry one. Restricted by source address
    instead (default: loopback), or served on its own listener by
    ``python -m propguard.metrics`` (docs/operations.md).
    """

    def __init__(self, allowed: Iterable[str]) -> None:
        self.allowed = [ipaddress.ip_network(r.strip()) for r in allowed if r.strip()]

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> list[bytes]:
        if not self._allowed(environ.get("REMOTE_ADDR", "")):
            body = b'{"error": {"code": 403, "title": "Forbidden", "message": "Forbidden."}}'
            start_response("403 Forbidden", [("Content-Type", "application/json"),
                                             ("Content-Length", str(len(body)))])  # fmt: skip
            return [body]
        data = render()
        start_response(
            "200 OK", [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(data)))]
        )
        return [data] if environ.get("REQUEST_METHOD") != "HEAD" else []

    def _allowed(self, address: str) -> bool:
        if not self.allowed:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip.version == net.version and ip in net for net in self.allowed)


def app_factory(global_conf: dict[str, Any] | None = None, **local_conf: Any) -> MetricsApp:
    """paste: ``paste.app_factory = propguard.metrics:app_factory``; option
    ``allowed_source_ranges`` (comma-separated networks; default loopback; ``0.0.0.0/0, ::/0``
    for anyone who can reach the listener)."""
    ranges = str(local_conf.get("allowed_source_ranges", "127.0.0.0/8, ::1/128"))
    return MetricsApp(ranges.split(","))


# -- listeners: the notify-filter service's, and the exporter of a multiprocess dir ----


def serve_in_background(bind: str, allowed: list[str]) -> Any:
    """Serve :class:`MetricsApp` on ``HOST:PORT`` from a daemon thread; returns the server."""
    import threading
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    class _Quiet(WSGIRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    host, _, port = bind.rpartition(":")
    server = make_server(host or "127.0.0.1", int(port), MetricsApp(allowed), handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, name="propguard-metrics", daemon=True).start()
    return server



def main(argv: list[str] | None = None, prog: str = "python -m propguard.metrics") -> int:
    """``propguard metrics-exporter --multiproc-dir DIR [--bind HOST:PORT]``: serve DIR's sums."""
    import argparse
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    parser = argparse.ArgumentParser(
        prog=prog,
        description="Serve on /metrics the sums of a prometheus_client multiprocess directory "
        "(glance-api's workers with PROMETHEUS_MULTIPROC_DIR set): docs/operations.md.",
    )
    parser.add_argument("--multiproc-dir", required=True, metavar="DIR")
    parser.add_argument("--bind", default="127.0.0.1:9294", metavar="HOST:PORT")
    parser.add_argument("--allow", default="0.0.0.0/0, ::/0", metavar="NETWORKS")
    args = parser.parse_args(argv)
    os.environ[MULTIPROC_ENV] = args.multiproc_dir
    host, _, port = args.bind.rpartition(":")

    class _Quiet(WSGIRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    app = MetricsApp(args.allow.split(","))
    with make_server(host or "127.0.0.1", int(port), app, handler_class=_Quiet) as server:
        print(f"propguard metrics exporter on http://{args.bind}/metrics", flush=True)
        server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
