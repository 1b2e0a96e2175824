"""CADF events of refusals through oslo.messaging, as keystonemiddleware's audit middleware sends them.

OpenStack's audit trail is CADF (pycadf) events on the notification bus;
keystonemiddleware's ``audit`` middleware emits one per API request. With
``decision_notifications = cadf`` propguard emits one per **refusal** (the
decision records of outcome ``refused``, or ``would_refuse`` with
``enforce = false``): an ``activity`` event whose initiator is the caller
(user, project, domain), target the image route, observer propguard, reason
the HTTP status, outcome ``failure`` (``success`` for a would-be refusal that
was let through), and the decision record itself as the attachment
``propguard_decision``: the same fields, never a value, names only with
``log_property_names``.

Sending never delays or fails a request: events are queued (bounded) and a
background thread of the worker process sends them with oslo.messaging's
``Notifier`` (``decision_notifications_driver``, ``_topics``,
``_transport_url``); a full queue or a failed send drops the event and logs
its id, never its content.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import uuid
import warnings
from collections.abc import Mapping
from typing import Any

LOG = logging.getLogger(__name__)

#: oslo.messaging event type of a refusal's CADF event (keystonemiddleware: ``audit.http.*``).
EVENT_TYPE = "audit.propguard.refusal"
PUBLISHER_ID = "propguard"
#: CADF typeURI of the target (an image route of Glance's v2 API).
TARGET_TYPE = "service/storage/image"
QUEUE_SIZE = 1000

# Keystone ids are UUIDs; JWT subjects may not be. pycadf accepts any string but warns.
warnings.filterwarnings("ignore", message="Invalid uuid", module="pycadf.identifier")


def cadf_event(record: Mapping[str, Any]) -> dict[str, Any]:
    """The CADF event (as a dict) of one refusal's decision record."""
    from pycadf import attachment, cadftaxonomy, cadftype, eventfactory, reason, resource

    initiator = resource.Resource(
        typeURI=cadftaxonomy.ACCOUNT_USER,
        id=record.get("user_id") or cadftaxonomy.UNKNOWN,
    )
    for key in ("project_id", "domain_id"):
        if record.get(key):
            setattr(initiator, key, record[key])
    route = str(record.get("route"))
    target = resource.Resource(
        typeURI=TARGET_TYPE,
        id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"propguard:route:{route}")),
        name=route,
    )
    observer = resource.Resource(
        typeURI=cadftaxonomy.SERVICE_SECURITY,
        id=str(uuid.uuid5(uuid.NAMESPACE_URL, "propguard")),
        name="propguard",
    )
    refused = record.get("outcome") == "refused"
    operations = list(record.get("operations") or ())
    event = eventfactory.EventFactory().new_event(
        eventType=cadftype.EVENTTYPE_ACTIVITY,
        action=_action(operations),
        outcome=cadftaxonomy.OUTCOME_FAILURE if refused else cadftaxonomy.OUTCOME_SUCCESS,
        initiator=initiator,
        target=target,
        observer=observer,
        reason=reason.Reason(reasonType="HTTP", reasonCode=str(record.get("status"))),
        name=f"propguard {record.get('outcome')}",
    )
    event.add_attachment(
        attachment.Attachment(
            typeURI="mime:application/json", content=dict(record), name="propguard_decision"
        )
    )
    return event.as_dict()


def _action(operations: list[str]) -> str:
    """CADF action of the refused operations: the one write among them (a PATCH adding a
    property also reads whether it exists), ``read`` for reads only, else ``update``."""
    from pycadf import cadftaxonomy

    kinds = {
        "create": cadftaxonomy.ACTION_CREATE,
        "read": cadftaxonomy.ACTION_READ,
        "update": cadftaxonomy.ACTION_UPDATE,
        "delete": cadftaxonomy.ACTION_DELETE,
    }
    actions = {kinds.get(op, cadftaxonomy.ACTION_UPDATE) for op in operations}
    writes = actions - {cadftaxonomy.ACTION_READ}
    if not writes:
        return cadftaxonomy.ACTION_READ if actions else cadftaxonomy.ACTION_UPDATE
    return writes.pop() if len(writes) == 1 else cadftaxonomy.ACTION_UPDATE


class CadfNotifier:
    """Queues CADF events of refusals and sends them from a thread of this process."""

    def __init__(
        self,
        *,
        driver: str = "messagingv2",
        topics: list[str] | None = None,
        transport_url: str | None = None,
        conf: Any = None,
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        self.driver = driver
        self.topics = list(topics or [])
        self.transport_url = transport_url
        self.conf = conf
        self._queue: queue.Queue[tuple[dict[str, Any], dict[str, Any]] | None] = queue.Queue(
            queue_size
        )
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._notifier: Any = None
        #: ``sent``, ``dropped`` (queue full), ``failed`` (the send raised).
        self.counts: dict[str, int] = {"sent": 0, "dropped": 0, "failed": 0}

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> CadfNotifier | None:
        if options.get("decision_notifications", "none") != "cadf":
            return None
        return cls(
            driver=options.get("decision_notifications_driver") or "messagingv2",
            topics=list(options.get("decision_notifications_topics") or []),
            transport_url=options.get("decision_notifications_transport_url") or None,
        )

    def emit(self, record: Mapping[str, Any]) -> None:
        """Queue the CADF event of ``record`` (never blocks, never raises)."""
        try:
            event = cadf_event(record)
        except Exception as exc:  # noqa: BLE001 - an audit failure must not fail the request
            LOG.error("propguard: CADF event not built (%s)", type(exc).__name__)
            return
        context = {
            key: record.get(key)
            for key in ("request_id", "global_request_id", "user_id", "project_id")
        }
        self._start()
        try:
            self._queue.put_nowait((context, event))
        except queue.Full:
            self.counts["dropped"] += 1
            LOG.warning("propguard: CADF event %s dropped (queue full)", event.get("id"))

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued event was handed to oslo.messaging (tests)."""
        done = threading.Event()
        self._start()
        self._queue.put(({"_flush": done}, {}))
        return done.wait(timeout)

    def _start(self) -> None:
        """The sender thread of this process (a forked worker starts its own)."""
        if self._thread is not None and self._pid == os.getpid():
            return
        with self._lock:
            if self._thread is None or self._pid != os.getpid():
                self._pid = os.getpid()
                self._notifier = None  # a parent's transport is not this process's
                self._thread = threading.Thread(
                    target=self._run, name="propguard-cadf", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            context, event = item
            flush = context.get("_flush") if isinstance(context, dict) else None
            if flush is not None:
                flush.set()
                continue
            try:
                self._get_notifier().info(context, EVENT_TYPE, event)
                self.counts["sent"] += 1
            except Exception as exc:  # noqa: BLE001 - keep sending the next ones
                self.counts["failed"] += 1
                LOG.error(
                    "propguard: CADF event %s not sent (%s)", event.get("id"), type(exc).__name__
                )

    def _get_notifier(self) -> Any:
        if self._notifier is None:
            import oslo_messaging
            from oslo_config import cfg

            conf = self.conf if self.conf is not None else cfg.CONF
            transport = oslo_messaging.get_notification_transport(conf, url=self.transport_url)
            kwargs: dict[str, Any] = {"driver": self.driver}
            if self.topics:
                kwargs["topics"] = self.topics
            self._notifier = oslo_messaging.Notifier(transport, PUBLISHER_ID, **kwargs)
        return self._notifier

    def close(self) -> None:
        if self._thread is not None and self._pid == os.getpid():
            self._queue.put(None)
            self._thread.join(5)
