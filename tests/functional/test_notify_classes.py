"""Every class of issue 24's holes, through the forms that move messages on RabbitMQ.

The notify-filter service (the machine's RabbitMQ) and the glance-api driver
(oslo.messaging's real rabbit driver) are given, in one stream: event types
off the allow-list, payloads of another shape, repeated envelope keys,
spellings the database equates with a hidden property, and an annotation fed
back in. Nothing hidden reaches a filtered output; what cannot be classified
is dead-lettered (service) or dropped (driver) with a reason that names no
key or value; good messages around them pass, in order. (``--stdin``:
``tests/unit/notifications/test_notify_cli.py``.)
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import oslo_messaging
import pytest
import test_notify_service as svc
from test_notify_driver_glance import TRANSPORT_URL, Tap
from test_notify_service import SECRET, Bus

from propguard.glance.collation import folding
from propguard.notifications import driver as driver_mod
from propguard.notifications import samples, wire
from propguard.notifications.core import ANNOTATION_KEY
from propguard.rules.loading import RulesOptions, open_rules
from propguard.view import ImageView, ViewConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "notifications"))
from test_notify_driver import make_conf  # noqa: E402

bus = svc.bus
rules_file = svc.rules_file
run_service = svc.run_service

#: The rules' hidden name (``[^x_secret]``) as a MariaDB Glance also stores it.
SPELLINGS = {"X_SECRET": SECRET, "x_SÉcret_2": SECRET, "x_secret_3 ": SECRET}


def _stream() -> tuple[list[bytes], list[bytes], list[str]]:
    """(good bodies in order, bodies to refuse, the reasons expected for them)."""
    good = [
        samples.notification("image.update", samples.image_payload({**SPELLINGS, "a": "1"})),
        samples.notification(
            "image.update",
            {
                **samples.image_payload({"x_secret": SECRET, "b": "2"}),
                ANNOTATION_KEY: {"property_read_classes": {"x_secret": ["admin"]}},
            },
        ),
    ]
    task = samples.notification(
        "task.success",
        {**samples.task_payload("task.success"), "input": {"image_properties": SPELLINGS}},
    )
    refused = [
        wire.encode(samples.notification("Image.Update", samples.image_payload(SPELLINGS))),
        wire.encode(samples.notification("image.future", samples.image_payload(SPELLINGS))),
        wire.encode(task),
        wire.encode(samples.notification("image.update", {"id": "i", "properties": SPELLINGS})),
        # a first-copy reader would see a metadef event; orjson keeps the image one
        b'{"event_type": "metadef_tag.create", "payload": '
        + json.dumps(samples.image_payload(SPELLINGS)).encode()
        + b', "event_type": "image.update", "priority": "INFO"}',
    ]
    reasons = [
        "event type not on the allow-list (Glance's and extra_events)",
        "event type not on the allow-list (Glance's and extra_events)",
        "task.success payload has a key Glance never sends",
        "image.update payload lacks a key Glance sends",
        "message repeats a key of the envelope or notification",
    ]
    return [wire.encode(n) for n in good], refused, reasons


def _view() -> ImageView:
    return ImageView(ViewConfig(folding=folding("utf8mb3_general_ci")))


def test_the_service_refuses_what_it_cannot_classify_and_hides_every_spelling(
    bus: Bus, run_service, rules_file, caplog
) -> None:
    holder = open_rules(RulesOptions(rules_file=str(rules_file)))
    config = bus.output_config(("strip",))
    running = run_service(modes=("strip",), nf=config.build(holder.current, _view()))
    good, refused, reasons = _stream()
    bus.publish([("info", good[0]), *(("info", body) for body in refused), ("info", good[1])])
    out = f"{bus.strip}.info"
    bus.wait_for(lambda: bus.depth(out) >= 2, what="the good messages")
    bus.wait_for(lambda: bus.depth(f"{bus.dead}.error") >= len(refused), what="the dead letters")
    outputs = bus.read(out)
    assert [o["payload"]["properties"] for o in outputs] == [{"a": "1"}, {"b": "2"}]
    assert all(ANNOTATION_KEY not in o["payload"] for o in outputs)
    letters = bus.read(f"{bus.dead}.error")
    assert sorted(letter["payload"]["reason"] for letter in letters) == sorted(reasons)
    assert not any(SECRET in letter["payload"]["reason"] for letter in letters)
    assert running.status is None and bus.depth(bus.pool) == 0
    assert SECRET not in caplog.text


@pytest.fixture
def tap():
    tap = Tap()
    yield tap
    tap.close()


def test_the_driver_drops_what_it_cannot_classify_and_hides_every_spelling(
    tap: Tap, tmp_path: Path, caplog
) -> None:
    driver_mod._FILTERS.clear()
    conf = make_conf(tmp_path, DEFAULT={"control_exchange": tap.exchange})
    conf.set_override("name_collation", "utf8mb3_general_ci", "propguard")
    transport = oslo_messaging.get_notification_transport(conf, url=TRANSPORT_URL)
    caplog.set_level(logging.INFO)
    try:
        notifier = oslo_messaging.Notifier(
            transport, publisher_id="image.h", driver="propguard", topics=[tap.topic]
        )
        driver = notifier._driver_mgr.extensions[0].obj
        good, refused, _ = _stream()
        for body in [good[0], *refused[:4], good[1]]:  # the driver gets dicts: no duplicates
            driver.notify({}, wire.decode(body).notification, "INFO", None)
        got = tap.drain()
    finally:
        transport.cleanup()
        driver_mod._FILTERS.clear()
    sent = [wire.decode(body).notification for _, body in got]
    assert [n["payload"]["properties"] for n in sent] == [{"a": "1"}, {"b": "2"}]
    assert all(ANNOTATION_KEY not in n["payload"] for n in sent)
    assert caplog.text.count("cannot be filtered") == 4
    assert SECRET not in caplog.text
