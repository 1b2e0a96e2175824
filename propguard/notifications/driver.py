"""The ``propguard`` oslo.messaging notification driver, for glance-api.

In glance-api.conf::

    [oslo_messaging_notifications]
    driver = propguard

    [propguard]
    rules_file = /etc/glance/property-protections.conf

    [propguard_notifications]
    audience_roles = member,reader

Each notification Glance emits is filtered by the core
(:class:`~propguard.notifications.core.NotificationFilter`) *before* anything
reaches the broker, and each output is handed to oslo.messaging's
``messagingv2`` driver (the v2 envelope, the same transport call, the
original ``message_id`` and ``timestamp``): ``strip`` to
``[propguard_notifications] strip_topics`` (default: the notifier's own
``topics``, so the filtered stream replaces the raw one), ``views`` and
``annotate`` to their topics. A notification the filter cannot handle is not
sent at all (fail closed), with an error log line that names its event type
and message id only.

``[propguard] shadow_rules_file`` is decided beside the rules and never
applied (:mod:`propguard.notifications.shadow`); ``enforce = false`` stops
the driver from loading.

Two places of oslo.messaging log a payload when a send fails (the
``messagingv2`` driver, and the ``Notifier`` when a driver raises). Here the
outputs go through a ``messagingv2`` driver whose failure log names the topic
and message id only, and :meth:`PropguardDriver.notify` never raises.
"""

from __future__ import annotations

import functools
import logging
import threading
from typing import Any

import oslo_messaging
from oslo_messaging.notify import notifier
from oslo_messaging.notify.messaging import MessagingV2Driver

from propguard.notifications.core import FilterError, Mode, NotificationFilter
from propguard.notifications.opts import OutputConfig

LOG = logging.getLogger(__name__)


class ScrubbedMessagingV2Driver(MessagingV2Driver):
    """``messagingv2``, but a failed send is logged without the payload."""

    def notify(self, ctxt: Any, message: dict[str, Any], priority: str, retry: Any) -> None:
        priority = priority.lower()
        for topic in self.topics:
            target = _target(f"{topic}.{priority}")
            try:
                self.transport._send_notification(
                    target, ctxt, message, version=self.version, retry=retry
                )
            except Exception as exc:
                STATS.count("send_failed")
                LOG.error(
                    "propguard: could not send notification %(id)s (%(event)s) to %(topic)s: "
                    "%(error)s",
                    {
                        "id": message.get("message_id"),
                        "event": message.get("event_type"),
                        "topic": topic,
                        "error": type(exc).__name__,
                    },
                )


@functools.lru_cache(maxsize=256)
def _target(topic: str) -> oslo_messaging.Target:
    """One ``Target`` per routing key (the driver only reads it)."""
    return oslo_messaging.Target(topic=topic)


class _Stats:
    """Process-wide counters of the driver (``filtered``, ``not_sent``, ``send_failed``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.values: dict[str, int] = {}

    def count(self, key: str) -> None:
        with self._lock:
            self.values[key] = self.values.get(key, 0) + 1


STATS = _Stats()

#: One filter (and one rules holder: one reload watcher, one set of caches)
#: per configuration, shared by every Notifier glance-api builds.
_FILTERS: dict[tuple, tuple[NotificationFilter, OutputConfig]] = {}
_FILTERS_LOCK = threading.Lock()


def _rules_values(conf: Any) -> dict[str, Any]:
    from propguard import opts as propguard_opts

    return propguard_opts.resolve({}, conf)


def filter_for(conf: Any) -> tuple[NotificationFilter, OutputConfig]:
    """The filter for ``conf``'s ``[propguard]`` and ``[propguard_notifications]``, built once.

    Raises ``ValueError`` (bad option, ``enforce = false``) or ``RulesError``
    (rules or shadow rules that do not load): the driver then does not load,
    and oslo.messaging sends nothing.
    """
    from propguard.notifications.shadow import open_shadow, refuse_dry_run
    from propguard.rules.loading import RulesOptions, open_rules
    from propguard.view import view_from_options

    values = _rules_values(conf)
    refuse_dry_run(values)
    if values["name_collation"] == "auto":
        # Glance's database as *this* configuration (glance-api's) names it.
        from propguard.glance.database import name_folding

        values["name_collation"] = name_folding("auto", conf).name
    options = RulesOptions.from_options(values)
    if not options.rules_file:
        raise ValueError("propguard notification driver: [propguard] rules_file is not set")
    config = OutputConfig.from_conf(conf)
    key = (
        id(conf),
        options,
        values["reload_interval"],
        values["reload_on_sighup"],
        config,
        values["name_collation"],
        tuple(values["protect_core_attributes"]),
        values["shadow_rules_file"],
        values["shadow_rule_format"],
        values["decision_log"],
        values["log_property_names"],
    )
    with _FILTERS_LOCK:
        built = _FILTERS.get(key)
        if built is None:
            holder = open_rules(
                options,
                reload_interval=values["reload_interval"],
                reload_on_sighup=values["reload_on_sighup"],
            )
            shadow, recorder = open_shadow(values, options)
            view = view_from_options(values)  # the API filter's view, from the same options
            built = _FILTERS[key] = (
                config.build(
                    holder.current,
                    view,
                    shadow=shadow.current if shadow is not None else None,
                    on_divergence=recorder,
                ),
                config,
            )
        return built


#: Drivers that send or log the raw payload next to ``propguard``.
RAW_DRIVERS = frozenset({"messaging", "messagingv2", "routing", "log"})


def warn_about_raw_drivers(conf: Any) -> list[str]:
    """Log an error if another driver configured next to ``propguard`` sends the raw payload."""
    try:
        names = list(conf.oslo_messaging_notifications.driver)
    except Exception:  # not registered on this conf: nothing to check
        return []
    raw = sorted(set(names) & RAW_DRIVERS)
    if raw:
        LOG.error(
            "propguard: [oslo_messaging_notifications] driver also lists %s, which send(s) or "
            "log(s) every notification unfiltered: list only 'propguard'",
            ", ".join(raw),
        )
    return raw


class PropguardDriver(notifier.Driver):
    """Filter, then ``messagingv2``: raw payloads never reach the broker."""

    def __init__(self, conf: Any, topics: list[str], transport: Any) -> None:
        super().__init__(conf, topics, transport)
        self.filter, self.config = filter_for(conf)
        warn_about_raw_drivers(conf)
        self._strip_topics = self.config.strip_topics or tuple(topics)
        self._senders: dict[tuple[Mode, str | None], ScrubbedMessagingV2Driver] = {}
        for mode in self.filter.modes:
            views = [rc.name for rc in self.filter.reader_classes] if mode is Mode.VIEWS else [None]
            for view in views:
                self._senders[(mode, view)] = ScrubbedMessagingV2Driver(
                    conf,
                    topics=self.config.topics_for(mode, view, self._strip_topics),
                    transport=transport,
                )

    def notify(self, ctxt: Any, message: dict[str, Any], priority: str, retry: Any) -> None:
        """Never raises: the ``Notifier`` would log the raw payload of what a driver raised."""
        try:
            self._notify(ctxt, message, priority, retry)
        except Exception as exc:  # a bug here must not reach Glance, nor a payload the log
            STATS.count("not_sent")
            LOG.error(
                "propguard: notification %(id)s (%(event)s) not sent (%(error)s)",
                {
                    "id": _get(message, "message_id"),
                    "event": _get(message, "event_type"),
                    "error": type(exc).__name__,
                },
            )

    def _notify(self, ctxt: Any, message: dict[str, Any], priority: str, retry: Any) -> None:
        try:
            outputs = self.filter.outputs(message)
        except Exception as exc:  # fail closed, and never into the Notifier's payload log
            STATS.count("not_sent")
            # A FilterError's reason names what is wrong, never what the message holds.
            reason = f": {exc}" if isinstance(exc, FilterError) else ""
            LOG.error(
                "propguard: notification %(id)s (%(event)s) not sent: it cannot be filtered "
                "(%(error)s)%(reason)s",
                {
                    "id": message.get("message_id"),
                    "event": message.get("event_type"),
                    "error": type(exc).__name__,
                    "reason": reason,
                },
            )
            return
        STATS.count("filtered")
        for output in outputs:
            self._senders[(output.mode, output.view)].notify(
                ctxt, output.notification, priority, retry
            )


def _get(message: Any, key: str) -> Any:
    return message.get(key) if isinstance(message, dict) else None
