"""The ``propguard`` driver, over oslo.messaging's real rabbit driver and the machine's RabbitMQ,
given notifications the filter refuses or the transport cannot encode (issue 24, point 4).

Each is dropped and logged by message id and event type (never the payload),
``notify`` never raises into Glance (its ``Notifier`` would log the raw
payload), and the next notification goes out as usual.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import oslo_messaging
import pytest
from test_notify_driver_glance import TRANSPORT_URL, Tap

from propguard.notifications import driver as driver_mod
from propguard.notifications import samples, wire

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "notifications"))
from test_notify_driver import SECRET, make_conf  # noqa: E402


@pytest.fixture
def tap() -> Iterator[Tap]:
    tap = Tap()
    yield tap
    tap.close()


def _nested(depth: int) -> object:
    value: object = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def test_unencodable_and_refused_are_dropped_never_raised(tap: Tap, tmp_path: Path, caplog) -> None:
    driver_mod._FILTERS.clear()
    conf = make_conf(tmp_path, DEFAULT={"control_exchange": tap.exchange})
    transport = oslo_messaging.get_notification_transport(conf, url=TRANSPORT_URL)
    try:
        notifier = oslo_messaging.Notifier(
            transport, publisher_id="image.h", driver="propguard", topics=[tap.topic]
        )
        driver = notifier._driver_mgr.extensions[0].obj
        caplog.set_level(logging.DEBUG)
        # Glance's own shape, nested past what any encoder writes (a metadef property's
        # JSON-schema items); an image payload of another shape is refused.
        deep = samples.notification(
            "metadef_property.update",
            {**samples.metadef_payload("metadef_property.update"), "items": _nested(5000)},
        )
        refused = samples.notification("image.update", {"id": "i1", "properties": [SECRET]})
        for message in (deep, refused):
            driver.notify({}, message, "INFO", None)  # never raises
        good = samples.notification("image.update", samples.image_payload({"x_secret": SECRET}))
        driver.notify({}, good, "INFO", None)
        got = tap.drain()
    finally:
        transport.cleanup()
        driver_mod._FILTERS.clear()
    assert [wire.decode(body).notification["message_id"] for _, body in got] == [good["message_id"]]
    assert SECRET not in caplog.text
    assert "RecursionError" in caplog.text
    assert "cannot be filtered (FilterError)" in caplog.text
