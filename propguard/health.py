"""Readiness: oslo.middleware healthcheck backends that fail when propguard cannot do its job.

Why separate from ``/healthcheck``: liveness must stay cheap (a worker that
answers is alive; ``disable_by_file`` drains it), while readiness says whether
requests sent here can succeed now. Backends (entry points
``oslo.middleware.healthcheck``, and :func:`readiness_app_factory` for a
checkout where they are not installed yet):

* ``propguard_upstream``: the Glance endpoint answers HTTP (any status below
  500) within ``upstream_timeout`` seconds (default 2).
* ``propguard_jwks``: every JWKS of this process has keys no older than its
  ``jwks_max_stale`` (past it every token is refused).
* ``propguard_relations``: the relations outbox holds at most
  ``outbox_max_bytes`` (default 1 MiB) and its oldest event is at most
  ``outbox_max_lag`` seconds old (default 300): beyond that the store has been
  away too long for the relations API's answers to be current.

Each check answers for the worker process that serves the request (the JWKS
keys are per process; the upstream and the outbox are shared).
"""

from __future__ import annotations

import http.client
import os
from typing import Any
from urllib.parse import urlsplit

from oslo_middleware.healthcheck import Healthcheck
from oslo_middleware.healthcheck.pluginbase import HealthcheckBaseExtension, HealthcheckResult

from propguard import metrics


class UpstreamCheck(HealthcheckBaseExtension):
    """The upstream Glance answers HTTP."""

    def healthcheck(self, server_port: int) -> HealthcheckResult:
        from propguard.proxy.server import UPSTREAM_ENV

        url = os.environ.get(UPSTREAM_ENV) or self.conf.get("upstream", "")
        if not url:
            return HealthcheckResult(False, "UPSTREAM NOT CONFIGURED")
        parts = urlsplit(url)
        timeout = float(self.conf.get("upstream_timeout", 2))
        connection_class = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        connection = connection_class(parts.hostname or "", parts.port, timeout=timeout)
        try:
            connection.request("GET", (parts.path.rstrip("/") or "") + "/")
            status = connection.getresponse().status
        except (OSError, http.client.HTTPException) as exc:
            return HealthcheckResult(False, "UPSTREAM UNREACHABLE", f"{type(exc).__name__}")
        finally:
            connection.close()
        if status >= 500:
            return HealthcheckResult(False, "UPSTREAM ERROR", f"status {status}")
        return HealthcheckResult(True, "OK")


class JWKSCheck(HealthcheckBaseExtension):
    """The JWKS keys are fresh enough to verify tokens."""

    def healthcheck(self, server_port: int) -> HealthcheckResult:
        for jwks in metrics.watched_jwks():
            age = jwks.age()
            if age is None:
                return HealthcheckResult(False, "JWKS NEVER FETCHED", jwks.url)
            if age > jwks.max_stale:
                return HealthcheckResult(
                    False, "JWKS STALE", f"{jwks.url}: {age:.0f} s > {jwks.max_stale:.0f} s"
                )
        return HealthcheckResult(True, "OK")


class RelationsCheck(HealthcheckBaseExtension):
    """The relations outbox is below its thresholds (the store keeps up)."""

    def healthcheck(self, server_port: int) -> HealthcheckResult:
        max_bytes = int(self.conf.get("outbox_max_bytes", 1024 * 1024))
        max_lag = float(self.conf.get("outbox_max_lag", 300))
        for outbox in metrics.watched_outboxes():
            size, lag = metrics.outbox_depth(outbox)
            if size > max_bytes or lag > max_lag:
                return HealthcheckResult(
                    False,
                    "RELATIONS OUTBOX BACKLOG",
                    f"{size} bytes, oldest {lag:.0f} s (limits {max_bytes} bytes, {max_lag:.0f} s)",
                )
        return HealthcheckResult(True, "OK")


#: The backends by entry point name (setup.cfg ``oslo.middleware.healthcheck``).
BACKENDS: dict[str, type[HealthcheckBaseExtension]] = {
    "propguard_upstream": UpstreamCheck,
    "propguard_jwks": JWKSCheck,
    "propguard_relations": RelationsCheck,
}


class Readiness(Healthcheck):
    """oslo.middleware's Healthcheck, finding propguard's backends even when not installed."""

    def __init__(self, application: Any, conf: dict[str, Any]) -> None:
        from importlib.metadata import entry_points

        from stevedore.extension import Extension

        names = [n.strip() for n in str(conf.get("backends", "")).split(",") if n.strip()]
        installed = {ep.name for ep in entry_points(group=self.NAMESPACE)}
        ours = [n for n in names if n in BACKENDS and n not in installed]
        conf = {**conf, "backends": ",".join(n for n in names if n not in ours)}
        super().__init__(application, conf)
        for name in ours:  # in a checkout (not installed): the classes themselves
            plugin = BACKENDS[name]
            extension = Extension(name, None, plugin, plugin(self.oslo_conf, self.conf))
            self._backends.extensions.append(extension)


def readiness_app_factory(global_conf: dict[str, Any] | None = None, **local_conf: Any) -> Any:
    """paste: ``paste.app_factory = propguard.health:readiness_app_factory`` (see serve.ini)."""
    conf = dict(global_conf or {})
    conf.update(local_conf)
    return Readiness(None, conf)
