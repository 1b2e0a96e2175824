"""``decision_notifications = cadf``: one CADF event per refusal, on the real RabbitMQ.

A real Glance 33 (in process, behind auth_token) with propguard in its
pipeline sends, for a member's refused PATCH, one CADF event through
oslo.messaging's ``messagingv2`` driver to the machine's RabbitMQ, on an
exchange and topic of the test's own; a queue bound with ``#`` sees
everything published there. The event carries the decision record (request
id, caller, route, section) and never the value the member tried to write;
an allowed request sends nothing.

RabbitMQ must be running at 127.0.0.1:5672: the test fails (never skips) when it is not.
"""

from __future__ import annotations

import json
import time

import pytest
import test_notify_driver_glance as drv
from glance_api import IMAGE, JSON_PATCH, admin, member
from test_notify_driver_glance import TRANSPORT_URL, Tap, _inner, _register_options

from propguard.audit import EVENT_TYPE

pytestmark = pytest.mark.glance

tap = drv.tap
transports = drv.transports

RULES = """\
[^x_secret_]
create = admin
read = admin
update = admin
delete = admin

[.*]
create = admin,member
read = admin,member,reader
update = admin,member
delete = admin,member
"""
ATTEMPTED = "n3w-s3cr3t-attempt"


def _wait_for_messages(tap: Tap, count: int, timeout: float = 30) -> list[tuple[str, bytes]]:
    got: list[tuple[str, bytes]] = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        assert time.monotonic() < deadline, f"{len(got)} of {count} message(s) arrived"
        got += tap.drain(quiet=0.2)
    return got + tap.drain(quiet=1.0)  # and nothing more


def test_a_refusal_is_one_cadf_event_on_the_bus(guarded_glance, tap: Tap, transports) -> None:
    _register_options()
    glance = guarded_glance(
        RULES,
        decision_notifications="cadf",
        decision_notifications_transport_url=TRANSPORT_URL,
        decision_notifications_topics=tap.topic,
        glance_options={
            "control_exchange": tap.exchange,
            "oslo_messaging_notifications.driver": ["noop"],  # Glance's own: not here
        },
    )
    app = glance.webtest_app()
    created = app.post_json(
        "/v2/images", {**IMAGE, "x_secret_code": "old"}, headers=glance.headers(admin(glance))
    )
    image_id = created.json["id"]
    ops = [{"op": "add", "path": "/x_secret_new", "value": ATTEMPTED}]
    refused = app.patch(
        f"/v2/images/{image_id}",
        json.dumps(ops),
        headers={**glance.headers(member(glance)), "Content-Type": JSON_PATCH},
        status=403,
    )
    request_id = refused.headers["X-OpenStack-Request-ID"]

    ((routing_key, body),) = _wait_for_messages(tap, 1)
    assert routing_key == f"{tap.topic}.info"
    notification = _inner(body)
    assert notification["event_type"] == EVENT_TYPE
    assert notification["publisher_id"] == "propguard"
    event = notification["payload"]
    assert event["typeURI"] == "http://schemas.dmtf.org/cloud/audit/1.0/event"
    assert (event["eventType"], event["action"], event["outcome"]) == (
        "activity",
        "create",
        "failure",
    )
    assert event["reason"] == {"reasonType": "HTTP", "reasonCode": "403"}
    assert event["initiator"]["typeURI"] == "service/security/account/user"
    assert event["target"]["name"] == "image" and event["observer"]["name"] == "propguard"
    (attachment,) = event["attachments"]
    record = attachment["content"]
    assert attachment["name"] == "propguard_decision"
    assert record["outcome"] == "refused" and record["request_id"] == request_id
    assert record["operations"] == ["create", "read"] and record["route"] == "image"
    assert event["initiator"]["id"] == record["user_id"]
    assert event["initiator"]["project_id"] == record["project_id"]
    assert list(record["sections"].values()) == [1]
    assert next(iter(record["sections"])).endswith(":1")  # [^x_secret_]
    assert "properties" not in record  # names only with log_property_names
    assert ATTEMPTED.encode() not in body and b"x_secret_new" not in body
    # oslo.messaging no longer sends a notification's context: the ids are in the record.
    assert not [key for key in notification if key.startswith("_context_")]

    # An allowed change sends nothing.
    ops = [{"op": "add", "path": "/colour", "value": "red"}]
    app.patch(
        f"/v2/images/{image_id}",
        json.dumps(ops),
        headers={**glance.headers(member(glance)), "Content-Type": JSON_PATCH},
        status=200,
    )
    assert tap.drain(quiet=1.5) == []
