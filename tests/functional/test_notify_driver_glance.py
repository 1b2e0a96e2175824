"""The ``propguard`` notification driver inside a real Glance, publishing to the real RabbitMQ.

A real in-process Glance 33 (behind auth_token and the propguard filter) runs
with ``[oslo_messaging_notifications] driver = propguard`` and a transport to
the machine's RabbitMQ (127.0.0.1:5672, guest/guest), on an exchange and
topics of its own. A queue bound with ``#`` to that exchange sees *everything*
that reaches the broker: no property hidden from the audience may be in any
message but those of the annotate topic, which must carry it.

RabbitMQ must be running: the test fails (never skips) when it is not.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import amqp
import oslo_messaging
import pytest
from glance_api import IMAGE, JSON_PATCH
from oslo_config import cfg
from oslo_messaging import opts as om_opts

from propguard import opts as propguard_opts
from propguard.inprocess import InProcessGlance
from propguard.notifications import driver as driver_mod
from propguard.notifications import opts as notify_opts

pytestmark = pytest.mark.glance

BROKER = "127.0.0.1:5672"
TRANSPORT_URL = f"rabbit://guest:guest@{BROKER}/"
SECRET = "s3cr3t-billing-value"
OTHER_SECRET = "0ther-s3cr3t"
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


def broker_connection() -> amqp.Connection:
    """A connection to the machine's RabbitMQ; fails the test loudly when it is down."""
    conn = amqp.Connection(host=BROKER, userid="guest", password="guest", connect_timeout=5)
    try:
        conn.connect()
    except Exception as exc:  # noqa: BLE001 - any reason: say how to fix it
        pytest.fail(
            f"RabbitMQ at {BROKER} (guest/guest) is not reachable ({exc!r}); these tests need "
            "it: apt-get install rabbitmq-server && service rabbitmq-server start "
            "(or RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 rabbitmq-server -detached)"
        )
    return conn


class Tap:
    """A private exchange with a queue that receives every message published to it."""

    def __init__(self) -> None:
        self.suffix = uuid.uuid4().hex[:10]
        self.exchange = f"pgtest-glance-{self.suffix}"
        self.topic = f"pgtest_{self.suffix}"
        self.conn = broker_connection()
        self.channel = self.conn.channel()
        self.channel.auto_decode = False  # bodies as the bytes on the wire
        # As oslo.messaging declares it with its defaults (amqp_durable_queues=False).
        self.channel.exchange_declare(self.exchange, "topic", durable=False, auto_delete=False)
        self.queue, _, _ = self.channel.queue_declare("", exclusive=True, auto_delete=True)
        self.channel.queue_bind(self.queue, self.exchange, "#")

    def drain(self, quiet: float = 1.0) -> list[tuple[str, bytes]]:
        """Every message so far, as (routing key, body), once nothing came for ``quiet`` s."""
        got: list[tuple[str, bytes]] = []
        idle_since = time.monotonic()
        while time.monotonic() - idle_since < quiet:
            message = self.channel.basic_get(self.queue, no_ack=True)
            if message is None:
                time.sleep(0.05)
                continue
            got.append((message.delivery_info["routing_key"], bytes(message.body)))
            idle_since = time.monotonic()
        return got

    def close(self) -> None:
        channel = self.conn.channel()
        # The default queues oslo.messaging's publisher declared, named after routing keys.
        for topic in (self.topic, f"{self.topic}_annotated"):
            for priority in ("audit", "debug", "info", "warn", "error", "critical", "sample"):
                channel.queue_delete(f"{topic}.{priority}")
        channel.exchange_delete(self.exchange)
        self.conn.close()


@pytest.fixture
def tap() -> Iterator[Tap]:
    tap = Tap()
    yield tap
    tap.close()


@pytest.fixture
def transports(monkeypatch: pytest.MonkeyPatch) -> Iterator[list]:
    """The notification transports Glance builds, cleaned up (connections closed) at the end."""
    made: list = []
    real = oslo_messaging.get_notification_transport

    def recording(*args, **kwargs):
        transport = real(*args, **kwargs)
        made.append(transport)
        return transport

    monkeypatch.setattr(oslo_messaging, "get_notification_transport", recording)
    yield made
    for transport in made:
        transport.cleanup()
    driver_mod._FILTERS.clear()


def _register_options() -> None:
    """Glance registers these lazily; its overrides need them first."""
    for group, options in om_opts.list_opts():
        cfg.CONF.register_opts(options, group=group)
    propguard_opts.register_opts(cfg.CONF)
    notify_opts.register_opts(cfg.CONF)


def _start(guarded_glance, tap: Tap, rules_file: Path, driver: str) -> InProcessGlance:
    _register_options()
    return guarded_glance(
        rules_file,
        glance_options={
            "control_exchange": tap.exchange,
            "default_publisher_id": "image.pgtest",
            "oslo_messaging_notifications.driver": [driver],
            "oslo_messaging_notifications.transport_url": TRANSPORT_URL,
            "oslo_messaging_notifications.topics": [tap.topic],
            "propguard.rules_file": str(rules_file),
            "propguard.reload_on_sighup": False,
            "propguard_notifications.modes": ["strip", "annotate"],
            "propguard_notifications.audience_roles": ["member", "reader"],
            "propguard_notifications.reader_classes": {"member": "member", "admin": "admin"},
            "propguard_notifications.annotate_topic": f"{tap.topic}_annotated",
        },
    )


def _image_life(glance: InProcessGlance) -> str:
    """What an admin does to images: create, patch, upload, share, stage, delete."""
    app = glance.webtest_app()
    admin = glance.user_token(["admin", "member", "reader"], user_id="root")
    headers = glance.headers(admin)
    body = {**IMAGE, "x_secret_billing": SECRET, "hw_disk_bus": "virtio"}
    image_id = app.post_json("/v2/images", body, headers=headers, status=201).json["id"]
    ops = [{"op": "add", "path": "/x_secret_other", "value": OTHER_SECRET}]
    app.patch(
        f"/v2/images/{image_id}",
        json.dumps(ops),
        headers={**headers, "Content-Type": JSON_PATCH},
        status=200,
    )
    data_headers = {**headers, "Content-Type": "application/octet-stream"}
    app.put(f"/v2/images/{image_id}/file", os.urandom(4096), headers=data_headers, status=204)
    app.patch(
        f"/v2/images/{image_id}",
        json.dumps([{"op": "replace", "path": "/visibility", "value": "shared"}]),
        headers={**headers, "Content-Type": JSON_PATCH},
        status=200,
    )
    app.post_json(
        f"/v2/images/{image_id}/members", {"member": "another-project"}, headers=headers, status=200
    )
    # Staged data: Glance records os_glance_stage_host on the image (its API hides
    # it; its notifications carry it). No import: its task thread races the
    # requests on sqlite; the stage is what sets the property.
    staged = app.post_json(
        "/v2/images", {**IMAGE, "x_secret_billing": SECRET}, headers=headers, status=201
    ).json["id"]
    app.put(f"/v2/images/{staged}/stage", os.urandom(2048), headers=data_headers, status=204)
    assert app.get(f"/v2/images/{staged}", headers=headers).json["status"] == "uploading"
    app.delete(f"/v2/images/{staged}", headers=headers, status=204)
    app.delete(f"/v2/images/{image_id}", headers=headers, status=204)
    return image_id


def _inner(body: bytes) -> dict:
    envelope = json.loads(body)
    assert envelope["oslo.version"] == "2.0"
    return json.loads(envelope["oslo.message"])


def test_no_hidden_property_reaches_the_broker(guarded_glance, tap, transports, rules_path) -> None:
    failed_before = driver_mod.STATS.values.get("send_failed", 0)
    glance = _start(guarded_glance, tap, rules_path(RULES), "propguard")
    _image_life(glance)
    messages = tap.drain()
    strip_key, annotate_key = f"{tap.topic}.info", f"{tap.topic}_annotated.info"
    assert {key for key, _ in messages} == {strip_key, annotate_key}
    stripped = [_inner(body) for key, body in messages if key == strip_key]
    annotated = [_inner(body) for key, body in messages if key == annotate_key]

    # Nothing on the broker but the annotate topic holds a hidden name or value,
    # and the stage host Glance's API hides is nowhere.
    for key, body in messages:
        assert b"os_glance_stage_host" not in body
        if key == strip_key:
            assert SECRET.encode() not in body and OTHER_SECRET.encode() not in body
            assert b"x_secret_" not in body

    events = [n["event_type"] for n in stripped]
    for event in (
        "image.create",
        "image.update",
        "image.prepare",
        "image.upload",
        "image.activate",
        "image.member.create",
        "image.delete",
    ):
        assert event in events, (event, events)
    # One annotate output per notification, with the original id and timestamp.
    assert [(n["message_id"], n["timestamp"], n["event_type"]) for n in stripped] == [
        (n["message_id"], n["timestamp"], n["event_type"]) for n in annotated
    ]
    assert all(n["publisher_id"] == "image.pgtest" for n in stripped + annotated)
    staged, deleted = [n for n in annotated if n["event_type"] == "image.delete"]
    assert deleted["payload"]["properties"]["x_secret_billing"] == SECRET
    assert deleted["payload"]["properties"]["x_secret_other"] == OTHER_SECRET
    annotation = deleted["payload"]["propguard"]
    assert annotation["property_read_classes"]["x_secret_billing"] == ["admin"]
    assert annotation["property_read_classes"]["hw_disk_bus"] == ["member", "admin"]
    assert annotation["property_read_roles"]["x_secret_billing"] == ["admin"]
    stripped_staged, stripped_delete = [n for n in stripped if n["event_type"] == "image.delete"]
    assert stripped_delete["payload"]["properties"] == {"hw_disk_bus": "virtio"}
    assert stripped_delete["payload"]["deleted"] is True
    # The staged image: its notifications carried os_glance_stage_host (see the
    # messagingv2 test below); no output does, not even the annotated one.
    assert stripped_staged["payload"]["properties"] == {}
    assert staged["payload"]["properties"] == {"x_secret_billing": SECRET}
    assert driver_mod.STATS.values.get("send_failed", 0) == failed_before


def test_messagingv2_alone_leaks_them(guarded_glance, tap, transports, rules_path) -> None:
    """The same life with Glance's usual driver: the broker sees the hidden values and the stage host."""
    glance = _start(guarded_glance, tap, rules_path(RULES), "messagingv2")
    _image_life(glance)
    bodies = b"".join(body for _, body in tap.drain())
    assert SECRET.encode() in bodies and OTHER_SECRET.encode() in bodies
    assert b"os_glance_stage_host" in bodies
