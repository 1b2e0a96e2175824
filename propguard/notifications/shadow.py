"""Shadow rules for the notification filter: what an indexer would stop (or start) receiving.

The API filter's ``shadow_rules_file`` (``[propguard]``, with
``shadow_rule_format``) is read by the notification driver and the
notify-filter service too: for every image payload, each output's audience
(the ``strip`` audience, each reader class of ``views`` and ``annotate``) is
decided by the shadow rules beside the rules in force. The outputs are the
enforced rules' alone; each difference is a ``shadow_divergence`` record on
the ``propguard.decisions`` logger, one per output, event and pair of
deciding sections, and a count in ``propguard_notify_shadow_divergences_total``.
Never a value; property names only with ``log_property_names``.

``enforce = false`` is refused: the API's dry run passes answers Glance
itself still protects, but a notification filter that does not filter sends
every property to the indexers, and what reached an index cannot be taken
back. Shadow rules are the way to try rules on notifications.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from propguard import metrics
from propguard.decisions import DecisionLog, open_shadow_rules
from propguard.notifications.core import Divergence

DRY_RUN_REFUSED = (
    "[propguard] enforce = false is not supported by the notification filter: a filter that "
    "does not filter would send every property to the indexers, and what reached an index "
    "cannot be taken back. Try rules on notifications with shadow_rules_file; for the API "
    "filter's dry run inside glance-api, set enforce = false in its paste section "
    "(glance-api-paste.ini) rather than in [propguard]"
)


def refuse_dry_run(values: Mapping[str, Any]) -> None:
    """``ValueError`` (the driver does not load, the service does not start) on ``enforce = false``."""
    if not values.get("enforce", True):
        raise ValueError(DRY_RUN_REFUSED)


def open_shadow(values: Mapping[str, Any], rules: Any) -> tuple[Any, DivergenceRecorder | None]:
    """``(holder of shadow_rules_file, recorder)`` for ``[propguard]`` ``values`` and the
    enforced rules' :class:`~propguard.rules.loading.RulesOptions`; ``(None, None)``
    without a shadow file. The shadow file loads, is checked and reloads as the API
    filter's (a broken one stops the adapter: ``RulesError``)."""
    refuse_dry_run(values)
    holder = open_shadow_rules(rules, values)
    if holder is None:
        return None, None
    log = DecisionLog(
        enabled=bool(values.get("decision_log", True)),
        property_names=bool(values.get("log_property_names", False)),
    )
    return holder, DivergenceRecorder(log)


class DivergenceRecorder:
    """The :data:`~propguard.notifications.core.DivergenceSink` of the adapters: decision
    records (the API's ``shadow_divergence`` schema, a notification's ids for the request's)
    and counters."""

    def __init__(self, log: DecisionLog) -> None:
        self.log = log

    def __call__(self, notification: Mapping[str, Any], found: list[Divergence]) -> None:
        event_type = str(notification.get("event_type"))
        records = []
        for d in found:
            change = "would_hide" if d.shown else "would_show"
            metrics.notify_shadow_diverged(
                (
                    d.mode.value,
                    d.audience,
                    event_type,
                    d.enforced_section,
                    d.shadow_section,
                    change,
                ),
                len(d.names),
            )
            record: dict[str, Any] = {
                "message_id": notification.get("message_id"),
                "event_type": event_type,
                "publisher_id": notification.get("publisher_id"),
                "mode": d.mode.value,
                "audience": d.audience,
                "roles": sorted(d.credentials.roles),
            }
            if d.credentials.service_roles:
                record["service_roles"] = sorted(d.credentials.service_roles)
            record.update(
                {
                    "outcome": "shadow_divergence",
                    "operations": ["read"],
                    "enforced": "allow" if d.shown else "deny",
                    "enforced_section": d.enforced_section,
                    "shadow": "deny" if d.shown else "allow",
                    "shadow_section": d.shadow_section,
                    "count": len(d.names),
                    **self.log.names(d.names),
                }
            )
            records.append(record)
        self.log.write(records)
