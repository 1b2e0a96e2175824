"""CADF events of refusals (``decision_notifications = cadf``): shape, what is sent, never blocking."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import oslo_messaging
from oslo_config import cfg
from oslo_messaging import opts as om_opts
from pycadf import event as cadf_event_mod

from propguard import opts
from propguard.audit import EVENT_TYPE, CadfNotifier, cadf_event
from propguard.decisions import DecisionLog
from propguard.middleware import PropertyProtectionFilter

RECORD = {
    "request_id": "req-1",
    "global_request_id": None,
    "method": "PATCH",
    "route": "image",
    "user_id": "alice",
    "project_id": "p1",
    "domain_id": "default",
    "roles": ["member"],
    "outcome": "refused",
    "status": 403,
    "operations": ["create", "read"],
    "sections": {"/etc/glance/rules.conf:1": 1},
}


def test_the_event_is_valid_cadf_with_the_record_attached() -> None:
    event = cadf_event(RECORD)
    assert cadf_event_mod.Event  # the schema checked by pycadf itself:
    rebuilt = cadf_event_mod.Event(
        eventType=event["eventType"],
        id=event["id"],
        eventTime=event["eventTime"],
        action=event["action"],
        outcome=event["outcome"],
        initiatorId=event["initiator"]["id"],
        targetId=event["target"]["id"],
        observerId=event["observer"]["id"],
    )
    assert rebuilt.is_valid()
    assert (event["action"], event["outcome"]) == ("create", "failure")
    assert event["initiator"]["id"] == "alice" and event["initiator"]["project_id"] == "p1"
    assert event["reason"] == {"reasonType": "HTTP", "reasonCode": "403"}
    (attachment,) = event["attachments"]
    assert attachment["content"] == RECORD and attachment["name"] == "propguard_decision"
    # The same route is the same target, whatever the image (an id is no caller's name).
    assert cadf_event({**RECORD, "request_id": "req-2"})["target"]["id"] == event["target"]["id"]


def test_actions_and_a_would_be_refusal() -> None:
    assert cadf_event({**RECORD, "operations": ["read"]})["action"] == "read"
    assert cadf_event({**RECORD, "operations": ["delete"]})["action"] == "delete"
    assert cadf_event({**RECORD, "operations": ["create", "delete"]})["action"] == "update"
    dry = cadf_event({**RECORD, "outcome": "would_refuse", "status": 200})
    assert dry["outcome"] == "success"  # let through (enforce = false); the record says why


class Collect:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def emit(self, record: dict[str, Any]) -> None:
        self.records.append(record)


def test_only_refusals_are_sent() -> None:
    notifier = Collect()
    log = DecisionLog(enabled=False, notifier=notifier)
    log.write(
        [
            {**RECORD, "outcome": "hidden"},
            {**RECORD, "outcome": "shadow_divergence"},
            RECORD,
            {**RECORD, "outcome": "would_refuse"},
        ]
    )
    assert [r["outcome"] for r in notifier.records] == ["refused", "would_refuse"]


def _fake_notifier(sent: list) -> oslo_messaging.Notifier:
    conf = cfg.ConfigOpts()
    for group, options in om_opts.list_opts():
        conf.register_opts(options, group=group)
    conf([], project="propguard-test", default_config_files=[], default_config_dirs=[])
    transport = oslo_messaging.get_notification_transport(conf, url="fake:/")
    transport._send_notification = lambda target, ctxt, message, version, retry=None: sent.append(
        (target.topic, json.loads(json.dumps(message)))
    )
    return oslo_messaging.Notifier(
        transport, "propguard", driver="messagingv2", topics=["audit_topic"]
    )


def test_sent_from_a_thread_through_oslo_messaging() -> None:
    sent: list = []
    notifier = CadfNotifier()
    notifier._start()
    notifier._notifier = _fake_notifier(sent)
    notifier.emit(RECORD)
    assert notifier.flush(10)
    ((topic, message),) = sent
    assert topic == "audit_topic.info"
    assert message["event_type"] == EVENT_TYPE and message["publisher_id"] == "propguard"
    assert message["payload"]["attachments"][0]["content"]["request_id"] == "req-1"
    assert notifier.counts["sent"] == 1
    notifier.close()


def test_a_full_queue_drops_never_blocks() -> None:
    import threading

    notifier = CadfNotifier(queue_size=1)
    release = threading.Event()

    class Stuck:  # a broker that never confirms
        def info(self, *args: Any) -> None:
            release.wait(60)

    notifier._start()
    notifier._notifier = Stuck()
    for _ in range(5):
        notifier.emit(RECORD)  # returns at once
    assert notifier.counts["dropped"] >= 3
    release.set()
    notifier.close()


def test_the_filter_reads_the_options(tmp_path: Path) -> None:
    rules = tmp_path / "rules.conf"
    rules.write_text("[.*]\ncreate = @\nread = @\nupdate = @\ndelete = @\n")
    base = {"rules_file": str(rules), "reload_on_sighup": "false", "name_collation": "binary"}
    conf = cfg.ConfigOpts()
    values = opts.resolve(base, conf)
    assert PropertyProtectionFilter(None, values).decisions.notifier is None
    values = opts.resolve(
        {
            **base,
            "decision_notifications": "cadf",
            "decision_notifications_topics": "audit,audit2",
            "decision_notifications_transport_url": "rabbit://u:p@h:5672/",
        },
        conf,
    )
    notifier = PropertyProtectionFilter(None, values).decisions.notifier
    assert isinstance(notifier, CadfNotifier)
    assert notifier.topics == ["audit", "audit2"] and notifier.driver == "messagingv2"
    assert notifier.transport_url == "rabbit://u:p@h:5672/"
