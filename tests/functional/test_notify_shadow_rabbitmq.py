"""Shadow rules for notifications, on the real RabbitMQ: what an indexer would stop (or start) receiving.

The rules in force hide ``x_secret*`` from members. The shadow rules would
let members read ``x_secret*`` (one more property shown) and make ``hw_*``
admin-only (one more hidden). Both placements, the ``propguard notify-filter``
service (a child process, its own ``/metrics``) and the ``propguard`` driver
inside a real Glance 33, must publish exactly what the rules in force give
(the shadow rules are never applied) and name, per output, audience, event
type and section, what the shadow rules would change: in the
``propguard.decisions`` records and in
``propguard_notify_shadow_divergences_total``. Never a value anywhere.

RabbitMQ must be running at 127.0.0.1:5672: the tests fail (never skip) when it is not.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import test_notify_driver_glance as drv
import test_notify_service as svc
from prometheus_client.parser import text_string_to_metric_families
from test_notify_driver_glance import TRANSPORT_URL, Tap, _inner, _register_options
from test_notify_metrics import _free_port, _scrape
from test_notify_service import SECRET, Bus, Subprocess

from propguard import metrics
from propguard.notifications import samples, wire
from propguard.notifications.service import PRIORITIES

bus = svc.bus
rules_file = svc.rules_file
children = svc.children
tap = drv.tap
transports = drv.transports

#: svc.RULES with members reading x_secret* (line 7) and hw_* admin-only (line 1).
SHADOW = """\
[^hw_]
create = admin
read = admin
update = admin
delete = admin

[^x_secret]
create = admin
read = admin,member
update = admin
delete = admin

[.*]
create = @
read = @
update = @
delete = @
"""
PREFIX = "propguard decision "


def _records(text: str) -> list[dict]:
    """The decision records in a log (one per line, after the prefix)."""
    found = []
    for line in text.splitlines():
        if PREFIX in line:
            found.append(json.loads(line.split(PREFIX, 1)[1]))
    return found


def _divergences(text: str) -> dict[tuple, dict]:
    """Prometheus samples of the divergence counter, by their labels."""
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "propguard_notify_shadow_divergences_total":
                labels = s.labels
                key = tuple(
                    labels[k]
                    for k in (
                        "mode",
                        "audience",
                        "event_type",
                        "enforced_section",
                        "shadow_section",
                        "change",
                    )
                )
                found[key] = s.value
    return found


def _expected(rules: Path, shadow: Path, modes: dict[str, list[str]], event: str, n: float):
    """Every divergence key the member audience of each output has, ``n`` times each."""
    return {
        (mode, audience, event, *sections): n
        for mode, audiences in modes.items()
        for audience in audiences
        for sections in (
            (f"{rules}:1", f"{shadow}:7", "would_show"),  # x_secret: shadow shows it
            (f"{rules}:7", f"{shadow}:1", "would_hide"),  # hw_disk_bus: shadow hides it
        )
    }


def test_the_service_publishes_the_rules_in_force_and_names_what_shadow_rules_change(
    bus: Bus, children, tmp_path: Path, rules_file: Path, allow_loopback_port
) -> None:
    shadow = tmp_path / "next.conf"
    shadow.write_text(SHADOW)
    port = _free_port()
    allow_loopback_port(port)
    url = f"rabbit://guest:guest@{svc.BROKER}/"
    config = bus.config_file(tmp_path / "nf.conf", rules_file, url, modes=("strip", "views"))
    text = config.read_text().replace(
        "[propguard]\n", f"[propguard]\nshadow_rules_file = {shadow}\n", 1
    )
    config.write_text(f"{text}metrics_bind = 127.0.0.1:{port}\n")
    child = Subprocess(config)
    children.append(child)
    props = {"x_secret": SECRET, "hw_disk_bus": "virtio", "colour": "red"}
    notes = [
        samples.notification("image.update", samples.image_payload(props)) for _ in range(3)
    ]
    bus.wait_for(lambda: bus.consumers(bus.pool) == 1, 60, "the service to consume")
    bus.publish([("info", wire.encode(n)) for n in notes])
    member_topic = bus.views.format(view="member") + ".info"
    admin_topic = bus.views.format(view="admin") + ".info"
    bus.wait_for(lambda: bus.depth(admin_topic) == 3, what="the outputs")

    def counted() -> str:
        text = _scrape(port)
        return text if sum(_divergences(text).values()) >= 12 else ""

    bus.wait_for(lambda: bool(counted()), 30, "the divergences on /metrics")
    scraped = counted()
    assert child.kill(signal.SIGTERM) == 0
    log = child.output()

    # Published: what the rules in force give, and nothing else.
    enforced = {"hw_disk_bus": "virtio", "colour": "red"}
    for queue, wanted in (
        (f"{bus.strip}.info", enforced),
        (member_topic, enforced),
        (admin_topic, props),
    ):
        outputs = bus.read(queue)
        assert [o["message_id"] for o in outputs] == [n["message_id"] for n in notes], queue
        assert all(o["payload"]["properties"] == wanted for o in outputs), queue

    # Counted: per output (strip's audience is named by its roles, a view by its class),
    # event type and pair of sections; admins read both alike.
    modes = {"strip": ["member"], "views": ["member"]}
    assert _divergences(scraped) == _expected(rules_file, shadow, modes, "image.update", 3)
    # Logged: one record per notification, output and pair of sections; no names, no values.
    records = [r for r in _records(log) if r["outcome"] == "shadow_divergence"]
    assert len(records) == 12
    assert {r["message_id"] for r in records} == {n["message_id"] for n in notes}
    assert {
        (r["mode"], r["audience"], r["enforced"], r["shadow"], r["shadow_section"])
        for r in records
    } == {
        (mode, "member", "deny", "allow", f"{shadow}:7") for mode in modes
    } | {(mode, "member", "allow", "deny", f"{shadow}:1") for mode in modes}
    assert all(r["event_type"] == "image.update" and r["count"] == 1 for r in records)
    assert all(r["roles"] == ["member"] and "properties" not in r for r in records)
    for text in (log, scraped):
        assert SECRET not in text and "x_secret" not in text and "hw_disk_bus" not in text


@pytest.mark.glance
def test_the_glance_driver_publishes_the_rules_in_force_and_names_what_shadow_rules_change(
    guarded_glance, tap: Tap, transports, rules_path, tmp_path: Path, caplog
) -> None:
    caplog.set_level("INFO", logger="propguard.decisions")
    rules = rules_path(svc.RULES)
    shadow = tmp_path / "next.conf"
    shadow.write_text(SHADOW)
    views = f"{tap.topic}_view_{{view}}"
    _register_options()
    glance = guarded_glance(
        rules,
        glance_options={
            "control_exchange": tap.exchange,
            "default_publisher_id": "image.pgtest",
            "oslo_messaging_notifications.driver": ["propguard"],
            "oslo_messaging_notifications.transport_url": TRANSPORT_URL,
            "oslo_messaging_notifications.topics": [tap.topic],
            "propguard.rules_file": str(rules),
            "propguard.shadow_rules_file": str(shadow),
            "propguard.reload_on_sighup": False,
            "propguard_notifications.modes": ["strip", "views"],
            "propguard_notifications.audience_roles": ["member"],
            "propguard_notifications.reader_classes": {"member": "member", "admin": "admin"},
            "propguard_notifications.views_topic": views,
        },
    )
    try:
        before = _divergences(metrics.render().decode())
        app = glance.webtest_app()
        admin = glance.headers(glance.user_token(["admin", "member"], user_id="root"))
        props = {"x_secret_code": SECRET, "hw_disk_bus": "virtio"}
        image = {"name": "shadowed", "disk_format": "raw", "container_format": "bare"}
        app.post_json("/v2/images", {**image, **props}, headers=admin, status=201)
        messages = tap.drain()
        after = _divergences(metrics.render().decode())
    finally:
        channel = tap.conn.channel()
        for view in ("member", "admin"):
            for priority in PRIORITIES:
                channel.queue_delete(f"{views.format(view=view)}.{priority}")

    # Published: the rules in force (the create notification: strip and both views).
    by_key: dict[str, list[dict]] = {}
    for key, body in messages:
        by_key.setdefault(key, []).append(_inner(body))
    strip, member, admin_view = (
        by_key[f"{tap.topic}.info"],
        by_key[f"{views.format(view='member')}.info"],
        by_key[f"{views.format(view='admin')}.info"],
    )
    assert [n["event_type"] for n in strip] == ["image.create"]
    assert strip[0]["payload"]["properties"] == {"hw_disk_bus": "virtio"}
    assert member[0]["payload"]["properties"] == {"hw_disk_bus": "virtio"}
    assert admin_view[0]["payload"]["properties"] == props
    for key, body in messages:
        if key != f"{views.format(view='admin')}.info":
            assert SECRET.encode() not in body

    # Recorded: the member audience of both outputs, the create event, both sections.
    records = [
        json.loads(r.getMessage().split(PREFIX, 1)[1])
        for r in caplog.records
        if r.name == "propguard.decisions" and r.getMessage().startswith(PREFIX)
    ]
    divergences = [r for r in records if r["outcome"] == "shadow_divergence" and "mode" in r]
    assert {
        (r["mode"], r["audience"], r["event_type"], r["enforced_section"], r["shadow_section"])
        for r in divergences
    } == {
        (mode, "member", "image.create", enforced, shadowed)
        for mode in ("strip", "views")
        for enforced, shadowed in ((f"{rules}:1", f"{shadow}:7"), (f"{rules}:7", f"{shadow}:1"))
    }
    assert all(r["message_id"] == strip[0]["message_id"] for r in divergences)
    modes = {"strip": ["member"], "views": ["member"]}
    counted = {k: v - before.get(k, 0) for k, v in after.items()}
    assert counted == _expected(rules, shadow, modes, "image.create", 1)
    assert SECRET not in caplog.text and "x_secret" not in caplog.text
