"""Shadow rules, dry runs and the decision log: see what the rules do before and while they act.

The anchors let operators try rules before enforcing them: Envoy's RBAC
filter evaluates ``shadow_rules`` beside the enforced ones, OPA runs in dry
run and writes decision logs. Here:

* ``shadow_rules_file`` (any format the filter reads, ``shadow_rule_format``):
  evaluated beside the enforced rules on every decision the reader's view
  makes; a divergence (this caller, this operation, the deciding section of
  each, enforced says X, shadow says Y) is counted and logged, never enforced;
* ``enforce = false``: every decision of the rules is taken and recorded,
  none is applied (nothing hidden, nothing refused by the rules), so propguard
  can sit in front of a Glance that still enforces its own protections;
* the decision log: one structured record per refusal, per response in which
  something was hidden (or, with ``enforce = false``, would have been), and
  per shadow divergence, through oslo.log's ``propguard.decisions`` logger:
  request and global request ids, the caller's ids, the confirmed service
  identity, route, operation, the deciding sections as ``file:line``,
  outcome and counts. Never a property value; property names only with
  ``log_property_names = true``.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from oslo_config import cfg
from oslo_log import log

from propguard.credentials import Credentials

LOG = log.getLogger("propguard.decisions")

OPTS: list[cfg.Opt] = [
    cfg.BoolOpt(
        "enforce",
        default=True,
        help="Apply the rules' decisions. false: decide and record every decision in the "
        "decision log (outcomes would_hide and would_refuse) but hide and refuse nothing, to "
        "introduce propguard beside Glance's own protections. Glance-compatibility screens "
        "that no rule decides (reserved names, malformed patches) stay on.",
    ),
    cfg.StrOpt(
        "shadow_rules_file",
        help="A second rules file evaluated beside rules_file on every decision, never "
        "enforced: each decision on which the two differ is counted and logged "
        "(shadow_divergence). For trying new rules, or Glance's own file, before switching.",
    ),
    cfg.StrOpt(
        "shadow_rule_format",
        choices=[("roles", "as rule_format"), ("policies", "as rule_format")],
        help="Format of shadow_rules_file (default: rule_format).",
    ),
    cfg.BoolOpt(
        "decision_log",
        default=True,
        help="Write one record per refusal, per response in which something was hidden, and "
        "per shadow divergence to the propguard.decisions logger (INFO).",
    ),
    cfg.StrOpt(
        "decision_notifications",
        default="none",
        choices=[
            ("none", "decision records go to the log only"),
            ("cadf", "also one CADF event per refusal through oslo.messaging"),
        ],
        help="Send each refusal (outcome refused, or would_refuse with enforce = false) as a "
        "CADF event (pycadf) on the notification bus, as keystonemiddleware's audit "
        "middleware sends its events: event type audit.propguard.refusal, the decision "
        "record as its attachment. Sent from a background thread; never delays a request.",
    ),
    cfg.StrOpt(
        "decision_notifications_driver",
        default="messagingv2",
        help="oslo.messaging notification driver of the CADF events (not 'propguard': the "
        "notification filter passes Glance's event types only).",
    ),
    cfg.ListOpt(
        "decision_notifications_topics",
        default=[],
        help="Topics of the CADF events (empty: [oslo_messaging_notifications] topics). Make "
        "them readable by auditors only.",
    ),
    cfg.StrOpt(
        "decision_notifications_transport_url",
        secret=True,
        help="Broker of the CADF events (unset: [oslo_messaging_notifications] "
        "transport_url, then [DEFAULT] transport_url).",
    ),
    cfg.BoolOpt(
        "log_property_names",
        default=False,
        help="Name the properties in decision records. Off: names can themselves be what a "
        "caller must not learn (and what the log's readers must not); values are never logged.",
    ),
]


#: Outcomes sent as CADF events with ``decision_notifications = cadf``.
REFUSALS = frozenset({"refused", "would_refuse"})


@dataclass
class Trail:
    """What one caller's reader decided during one request (filled by :class:`~propguard.view.Reader`)."""

    #: Property names hidden (or, not enforcing, that would have been), with how often.
    hidden: Counter[str] = field(default_factory=Counter)
    #: ``(op, name)`` the rules denied a change of (refused, or would have been).
    denied: list[tuple[str, str]] = field(default_factory=list)
    #: ``(op, name, enforced, shadow)`` where the shadow rules decided otherwise.
    divergences: list[tuple[str, str, bool, bool]] = field(default_factory=list)


class DecisionLog:
    """Writes decision records and keeps process-wide counts (for metrics and tests)."""

    def __init__(
        self, *, enabled: bool = True, property_names: bool = False, notifier: Any = None
    ) -> None:
        self.enabled = enabled
        self.property_names = property_names
        #: :class:`~propguard.audit.CadfNotifier` (``decision_notifications = cadf``) or None.
        self.notifier = notifier
        self._lock = threading.Lock()
        #: ``refused``, ``hidden``, ``would_refuse``, ``would_hide``, ``shadow_divergence``.
        self.counts: Counter[str] = Counter()

    def request(
        self,
        trail: Trail,
        environ: Mapping[str, Any],
        creds: Credentials,
        route: str,
        *,
        status: int,
        refused: bool,
        enforce: bool,
        where: Any,
        shadow_where: Any = None,
    ) -> None:
        """The records of one request: its outcome and its divergences.

        ``refused``: propguard answered 403/409 itself. ``where(name) ->
        "file:line"`` names the enforced section deciding a name,
        ``shadow_where`` the shadow one.
        """
        if not (trail.hidden or trail.divergences or trail.denied or refused):
            return  # nothing to record: build nothing (most requests)
        records: list[dict[str, Any]] = []
        base = _base(environ, creds, route)
        if (refused and enforce) or (trail.denied and not enforce):
            # Not enforcing, a 403/409 of propguard's is Glance's own semantics (a
            # property absent as the caller sees it), never a rule's refusal.
            outcome = "refused" if enforce else "would_refuse"
            names = list(dict.fromkeys(name for _, name in trail.denied))
            records.append(
                {
                    **base,
                    "outcome": outcome,
                    "status": status,
                    "operations": sorted({op for op, _ in trail.denied}),
                    "sections": _sections(names, where),
                    **self._names(names),
                }
            )
        if trail.hidden:
            outcome = "hidden" if enforce else "would_hide"
            records.append(
                {
                    **base,
                    "outcome": outcome,
                    "operations": ["read"],
                    "count": sum(trail.hidden.values()),
                    "sections": _sections(trail.hidden, where),
                    **self._names(trail.hidden),
                }
            )
        if trail.divergences:
            # Not at module level: propguard serve imports this module before it
            # sets PROMETHEUS_MULTIPROC_DIR (prometheus_client reads it at import).
            from propguard import metrics
        for op, name, enforced, shadow in trail.divergences:
            enforced_section = where(name)
            shadow_section = shadow_where(name) if shadow_where else None
            metrics.shadow_diverged(route, op, enforced_section, shadow_section or "", enforced)
            records.append(
                {
                    **base,
                    "outcome": "shadow_divergence",
                    "operations": [op],
                    "enforced": "allow" if enforced else "deny",
                    "enforced_section": enforced_section,
                    "shadow": "allow" if shadow else "deny",
                    "shadow_section": shadow_section,
                    **self._names([name]),
                }
            )
        self.write(records)

    def write(self, records: list[dict[str, Any]]) -> None:
        """Count ``records`` by outcome and log each (when enabled): the API's and the
        notification filter's (:mod:`propguard.notifications.shadow`) alike."""
        if not records:
            return
        with self._lock:
            self.counts.update(r["outcome"] for r in records)
        if self.enabled and LOG.isEnabledFor(logging.INFO):
            for record in records:
                LOG.info("propguard decision %s", orjson.dumps(record).decode())
        if self.notifier is not None:
            for record in records:
                if record["outcome"] in REFUSALS:
                    self.notifier.emit(record)

    def names(self, names: Any) -> dict[str, Any]:
        """``{"properties": [...]}`` with ``log_property_names``, else nothing."""
        return self._names(names)

    def _names(self, names: Any) -> dict[str, Any]:
        return {"properties": sorted(set(names))} if self.property_names else {}


def _base(environ: Mapping[str, Any], creds: Credentials, route: str) -> dict[str, Any]:
    record: dict[str, Any] = {
        "request_id": environ.get("openstack.request_id")
        or environ.get("HTTP_X_OPENSTACK_REQUEST_ID"),
        "global_request_id": environ.get("openstack.global_request_id"),
        "method": environ.get("REQUEST_METHOD"),
        "route": route,
        "user_id": creds.user_id,
        "project_id": creds.project_id,
        "domain_id": creds.domain_id,
        "roles": sorted(creds.roles),
    }
    if creds.service_roles:
        record["service_user_id"] = creds.service_user_id
        record["service_roles"] = sorted(creds.service_roles)
    return record


def _sections(names: Any, where: Any) -> dict[str, int]:
    """How many of ``names`` each section decided (``file:line``): bounded by the rules."""
    counts: Counter[str] = Counter()
    for name in names:
        counts[where(name)] += names[name] if isinstance(names, Mapping) else 1
    return dict(counts)


def open_shadow_rules(rules: Any, options: Mapping[str, Any]) -> Any:
    """The holder of ``shadow_rules_file`` (loaded, checked and reloaded as the enforced
    rules are), or None. A shadow file that does not load stops the filter too."""
    from dataclasses import replace

    from propguard.rules.loading import open_rules

    path = options.get("shadow_rules_file")
    if not path:
        return None
    shadow = replace(
        rules, rules_file=path, rule_format=options.get("shadow_rule_format") or rules.rule_format
    )
    return open_rules(
        shadow,
        reload_interval=float(options["reload_interval"]),
        reload_on_sighup=bool(options["reload_on_sighup"]),
    )
