"""oslo.config options of the notification filter, and ``list_opts()`` for the generator.

Two groups, next to ``[propguard]`` (whose rules options, ``rules_file``,
``rule_format``, ``policy_file``..., ``reload_interval`` and
``reload_on_sighup``, both the driver and the service read, so the API and
the notifications obey one rules file):

``[propguard_notifications]``
    what is produced, for the glance-api driver and the service alike: the
    modes, the ``strip`` audience, the reader classes, the output topics.
``[propguard_notify_filter]``
    the standalone service only: broker, input topics, pool queue, delivery.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from oslo_config import cfg

from propguard.notifications.core import (
    DivergenceSink,
    Mode,
    NotificationFilter,
    ReaderClass,
    audience,
)
from propguard.notifications.shapes import Shape
from propguard.view import ImageView

OUTPUT_GROUP = "propguard_notifications"
SERVICE_GROUP = "propguard_notify_filter"

#: Placeholder of ``views_topic`` replaced by the reader class's name.
VIEW_PLACEHOLDER = "{view}"

OUTPUT_OPTS: list[cfg.Opt] = [
    cfg.ListOpt(
        "modes",
        default=["strip"],
        item_type=cfg.types.String(choices=[m.value for m in Mode]),
        help="Outputs produced for each notification: 'strip' (properties the audience may "
        "not read removed), 'views' (one stripped copy per reader class, tagged with the "
        "class name in the top-level key 'propguard_view'), 'annotate' (every property, "
        "plus payload['propguard'] naming who may read each one: only for a trusted "
        "indexer on a private topic).",
    ),
    cfg.ListOpt(
        "audience_roles",
        default=[],
        help="User roles of the 'strip' audience, as a Keystone token would carry them "
        "(e.g. member,reader). Empty: an authenticated caller without roles, who reads only "
        "what the rules give to everyone ('@').",
    ),
    cfg.ListOpt(
        "audience_service_roles",
        default=[],
        help="Roles of a confirmed service token the 'strip' audience also has (rules "
        "'service:<role>', policies 'service_roles:<role>'). Usually empty.",
    ),
    cfg.DictOpt(
        "reader_classes",
        default={},
        help="Reader classes for 'views' and 'annotate', as name:roles pairs; roles joined "
        "by '+', a service-token role as service:<role>. Example: "
        "member:member+reader,billing:member+billing,admin:admin",
    ),
    cfg.ListOpt(
        "strip_topics",
        default=[],
        help="Topics of the 'strip' output. The glance-api driver uses "
        "[oslo_messaging_notifications] topics when this is empty (the filtered stream "
        "replaces the raw one); the service requires it.",
    ),
    cfg.StrOpt(
        "views_topic",
        default="notifications_view_{view}",
        help="Topic of the 'views' outputs; '{view}' is replaced by the reader class name "
        "(one topic per class). Without '{view}' every view goes to this one topic, told "
        "apart by the 'propguard_view' key.",
    ),
    cfg.StrOpt(
        "annotate_topic",
        default="notifications_annotated",
        help="Topic of the 'annotate' output. It carries every property value: make it "
        "readable by the trusted indexer only (broker permissions).",
    ),
    cfg.DictOpt(
        "extra_event_types",
        default={},
        help="Event types to pass beyond the ones Glance 33 sends, each with the payload "
        "shape to check and filter it as (image, member, send, task, metadef_namespace, "
        "metadef_object, metadef_property, metadef_resource_type, metadef_tag). Example: "
        "image.future_event:image. Every other event type is refused (dead-lettered).",
    ),
]

SERVICE_OPTS: list[cfg.Opt] = [
    cfg.StrOpt(
        "transport_url",
        secret=True,
        help="The broker, as oslo.messaging's transport_url (rabbit://user:pass@host:port/"
        "vhost, several hosts comma-separated). Unset: [oslo_messaging_notifications] "
        "transport_url, then [DEFAULT] transport_url.",
    ),
    cfg.StrOpt(
        "exchange",
        default="glance",
        help="Exchange Glance publishes to (its control_exchange) and the outputs go to.",
    ),
    cfg.ListOpt(
        "topics",
        default=["notifications"],
        help="Topics to consume (Glance's [oslo_messaging_notifications] topics); every "
        "priority of each is bound.",
    ),
    cfg.StrOpt(
        "pool",
        default="propguard",
        help="Listener pool: the name of the queue this service consumes (as an "
        "oslo.messaging listener pool). Several instances with one pool share its work and "
        "lose the order, unless single_active_consumer is set.",
    ),
    cfg.BoolOpt(
        "single_active_consumer",
        default=False,
        help="Declare the pool queue with RabbitMQ's x-single-active-consumer argument: of "
        "several instances on one pool, one consumes and the others stand by; when it "
        "stops or dies, the broker hands its unacknowledged messages and the queue to a "
        "standby at once, in order. An existing pool queue keeps its arguments: to turn "
        "this on for one, delete the queue (once drained) or use a new pool name.",
    ),
    cfg.StrOpt(
        "queue_type",
        default="classic",
        choices=[
            ("classic", "a durable classic queue"),
            ("quorum", "a quorum queue (durable, replicated; RabbitMQ 3.8+)"),
        ],
        help="Type of the pool queue and of the output queues this service declares.",
    ),
    cfg.IntOpt(
        "partitions",
        default=0,
        min=0,
        help="Partition by image id over this many queues, for N instances that keep each "
        "image's events in order (0: no partitioning). An instance without 'partition' is "
        "the router: it consumes the pool queue and forwards each message unchanged to the "
        "queue <pool>.partition.<k>, k chosen by the image id (CRC-32 modulo partitions); an "
        "instance with 'partition = k' filters that queue. Change it only with the "
        "partition queues drained.",
    ),
    cfg.IntOpt(
        "partition",
        min=0,
        help="With 'partitions': the partition this instance filters (0 to partitions-1). "
        "Unset: this instance is the router.",
    ),
    cfg.BoolOpt(
        "accept_loss_on_broker_restart",
        default=False,
        help="Start even when the pool queue exists as a non-durable queue or the exchange "
        "is not durable (oslo.messaging's defaults). A broker restart then drops the backlog "
        "(or the bindings, so notifications published before this service re-binds are "
        "lost). Without this option the service refuses to start on them.",
    ),
    cfg.BoolOpt(
        "declare_output_queues",
        default=True,
        help="Declare a durable queue named after each output routing key "
        "(<topic>.<priority>), as oslo.messaging's messagingv2 publisher does, so outputs "
        "are kept until an indexer consumes them. With false, an output nobody's queue is "
        "bound to is returned by the broker and retried, never dropped.",
    ),
    cfg.StrOpt(
        "dead_letter_topic",
        default="propguard_dead_letter",
        help="Topic of poison messages (undecodable, wrong envelope, not filterable): the "
        "original message with the reason, at priority ERROR. It holds unfiltered data: "
        "readable by admins only.",
    ),
    cfg.IntOpt(
        "max_attempts",
        default=3,
        min=1,
        help="Attempts to filter a message before it goes to the dead-letter topic "
        "(counted by the quorum queue's x-delivery-count, otherwise by message id in this "
        "process). A message that cannot be decoded goes there at once.",
    ),
    cfg.IntOpt(
        "prefetch",
        default=200,
        min=1,
        help="Most unacknowledged messages held by this service (AMQP prefetch count).",
    ),
    cfg.IntOpt(
        "batch_size",
        default=100,
        min=1,
        help="Most messages filtered and published under one wait for publisher "
        "confirms; each is acknowledged only after all its outputs are confirmed.",
    ),
    cfg.FloatOpt(
        "confirm_timeout",
        default=30.0,
        min=0.1,
        help="Seconds to wait for publisher confirms before the connection is considered "
        "broken (nothing is acknowledged; the broker redelivers).",
    ),
    cfg.FloatOpt(
        "retry_interval_max",
        default=30.0,
        min=0.1,
        help="Longest pause between reconnection attempts (the pause doubles from 1 s).",
    ),
    cfg.IntOpt(
        "heartbeat",
        default=60,
        min=0,
        help="AMQP heartbeat in seconds (0: none).",
    ),
    cfg.StrOpt(
        "metrics_bind",
        default="",
        help="HOST:PORT of the service's own Prometheus /metrics listener (its message counts, "
        "dead letters and unacknowledged backlog); empty: none. Served to loopback clients "
        "only unless metrics_allowed_source_ranges says otherwise.",
    ),
    cfg.ListOpt(
        "metrics_allowed_source_ranges",
        default=["127.0.0.0/8", "::1/128"],
        help="Networks whose clients may read /metrics.",
    ),
]


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """For ``oslo-config-generator --namespace propguard`` (added to ``propguard.opts``)."""
    return [(OUTPUT_GROUP, list(OUTPUT_OPTS)), (SERVICE_GROUP, list(SERVICE_OPTS))]


def register_opts(conf: cfg.ConfigOpts, service: bool = False) -> None:
    conf.register_opts(OUTPUT_OPTS, group=OUTPUT_GROUP)
    if service:
        conf.register_opts(SERVICE_OPTS, group=SERVICE_GROUP)


@dataclass(frozen=True)
class OutputConfig:
    """What to produce, resolved from ``[propguard_notifications]``."""

    modes: tuple[Mode, ...]
    audience_roles: tuple[str, ...]
    audience_service_roles: tuple[str, ...]
    reader_classes: tuple[ReaderClass, ...]
    strip_topics: tuple[str, ...]
    views_topic: str
    annotate_topic: str
    extra_events: tuple[tuple[str, Shape], ...] = ()

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> OutputConfig:
        """From option values (missing ones: the defaults); ``ValueError`` naming the
        option on a bad one."""
        values = {**{opt.dest: opt.default for opt in OUTPUT_OPTS}, **values}
        classes = []
        for name, spec in dict(values.get("reader_classes") or {}).items():
            try:
                classes.append(ReaderClass.parse(name, spec or ""))
            except ValueError as exc:
                raise ValueError(f"[{OUTPUT_GROUP}] reader_classes: {exc}") from None
        modes = tuple(Mode(m) for m in values.get("modes") or ())
        extra: list[tuple[str, Shape]] = []
        for event_type, shape in dict(values.get("extra_event_types") or {}).items():
            try:
                extra.append((event_type.strip(), Shape(str(shape).strip())))
            except ValueError:
                raise ValueError(
                    f"[{OUTPUT_GROUP}] extra_event_types: {event_type}: unknown shape "
                    f"{shape!r} (one of {', '.join(s.value for s in Shape)})"
                ) from None
        config = cls(
            modes=modes,
            audience_roles=tuple(values.get("audience_roles") or ()),
            audience_service_roles=tuple(values.get("audience_service_roles") or ()),
            reader_classes=tuple(classes),
            strip_topics=tuple(values.get("strip_topics") or ()),
            views_topic=values.get("views_topic") or "",
            annotate_topic=values.get("annotate_topic") or "",
            extra_events=tuple(extra),
        )
        config.check()
        return config

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts) -> OutputConfig:
        register_opts(conf)
        group = conf[OUTPUT_GROUP]
        try:
            values = {opt.dest: getattr(group, opt.dest) for opt in OUTPUT_OPTS}
        except (cfg.Error, ValueError) as exc:
            raise ValueError(f"[{OUTPUT_GROUP}]: {exc}") from None
        return cls.from_values(values)

    def check(self) -> None:
        if not self.modes:
            raise ValueError(f"[{OUTPUT_GROUP}] modes: no output mode configured")
        if Mode.VIEWS in self.modes and not self.reader_classes:
            raise ValueError(f"[{OUTPUT_GROUP}] modes: 'views' needs reader_classes")
        if Mode.VIEWS in self.modes and not self.views_topic:
            raise ValueError(f"[{OUTPUT_GROUP}] views_topic is empty")
        if Mode.ANNOTATE in self.modes and not self.annotate_topic:
            raise ValueError(f"[{OUTPUT_GROUP}] annotate_topic is empty")

    def build(
        self,
        rules,
        view: ImageView | None = None,
        *,
        shadow=None,
        on_divergence: DivergenceSink | None = None,
    ) -> NotificationFilter:
        """The filter core over ``rules`` (an engine or ``RulesHolder.current``), seeing
        images through ``view`` (the API filter's: from the same ``[propguard]`` options);
        ``shadow``: ``shadow_rules_file``'s (never applied; differences to ``on_divergence``)."""
        return NotificationFilter(
            rules,
            modes=self.modes,
            audience=audience(self.audience_roles, self.audience_service_roles),
            reader_classes=self.reader_classes,
            view=view,
            extra_events=dict(self.extra_events),
            shadow=shadow,
            on_divergence=on_divergence,
        )

    def topics_for(self, mode: Mode, view: str | None, strip_topics: tuple[str, ...]) -> list[str]:
        """The topics an output goes to (``strip_topics``: the resolved strip topics)."""
        if mode is Mode.STRIP:
            return list(strip_topics)
        if mode is Mode.VIEWS:
            return [self.views_topic.replace(VIEW_PLACEHOLDER, view or "")]
        return [self.annotate_topic]
