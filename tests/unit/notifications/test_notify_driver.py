"""The ``propguard`` oslo.messaging notification driver, loaded by a real ``Notifier``.

Fast tests: the transport's send is recorded (``fake:/``), or the real rabbit
driver code runs over kombu's in-memory broker (``kombu+memory:////``). The
real-RabbitMQ, real-Glance test is ``tests/functional/test_notify_driver_glance.py``.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from pathlib import Path

import oslo_messaging
import pytest
from oslo_config import cfg
from oslo_messaging import opts as om_opts

from propguard import opts as propguard_opts
from propguard.notifications import driver as driver_mod
from propguard.notifications import opts as notify_opts
from propguard.notifications import samples

RULES = "[^x_secret]\ncreate = admin\nread = admin\nupdate = admin\ndelete = admin\n\n[.*]\ncreate = @\nread = @\nupdate = @\ndelete = @\n"
SECRET = "s3cr3t-value"
PROPS = {"x_secret": SECRET, "hw_disk_bus": "virtio", "os_glance_stage_host": "http://g1"}


def make_conf(tmp_path: Path, project: str = "propguard-test", **groups: dict) -> cfg.ConfigOpts:
    rules = tmp_path / "rules.conf"
    rules.write_text(RULES)
    conf = cfg.ConfigOpts()
    for group, options in om_opts.list_opts():
        conf.register_opts(options, group=group)
    propguard_opts.register_opts(conf)
    notify_opts.register_opts(conf)
    conf([], project=project, default_config_files=[], default_config_dirs=[])
    conf.set_override("rules_file", str(rules), "propguard")
    conf.set_override("reload_on_sighup", False, "propguard")
    conf.set_override("name_collation", "binary", "propguard")  # a SQLite/PostgreSQL Glance
    for group, values in groups.items():
        for name, value in values.items():
            conf.set_override(name, value, None if group == "DEFAULT" else group)
    return conf


@pytest.fixture(autouse=True)
def _fresh_filters():
    driver_mod._FILTERS.clear()
    yield
    driver_mod._FILTERS.clear()


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict, float]] = []

    def __call__(self, target, ctxt, message, version, retry=None) -> None:
        self.sent.append((target.topic, json.loads(json.dumps(message)), version))


def _notifier(conf, recorder=None, topics=("notifications",)):
    transport = oslo_messaging.get_notification_transport(conf, url="fake:/")
    if recorder is not None:
        transport._send_notification = recorder
    return oslo_messaging.Notifier(
        transport, publisher_id="image.host1", driver="propguard", topics=list(topics)
    )


def test_strip_replaces_the_raw_stream(tmp_path: Path) -> None:
    conf = make_conf(tmp_path)
    rec = Recorder()
    _notifier(conf, rec).info({}, "image.update", samples.image_payload(PROPS))
    ((topic, message, version),) = rec.sent
    assert (topic, version) == ("notifications.info", 2.0)
    assert message["payload"]["properties"] == {"hw_disk_bus": "virtio"}
    assert message["publisher_id"] == "image.host1" and message["priority"] == "INFO"


def test_every_mode_to_its_topic_with_the_original_ids(tmp_path: Path) -> None:
    conf = make_conf(
        tmp_path,
        propguard_notifications={
            "modes": ["strip", "views", "annotate"],
            "strip_topics": ["indexer"],
            "reader_classes": {"member": "member", "admin": "admin"},
        },
    )
    rec = Recorder()
    notifier = _notifier(conf, rec, topics=["notifications", "other"])
    notifier.error({}, "image.update", samples.image_payload(PROPS))
    topics = [t for t, _, _ in rec.sent]
    assert topics == [
        "indexer.error",
        "notifications_view_member.error",
        "notifications_view_admin.error",
        "notifications_annotated.error",
    ]
    ids = {(m["message_id"], m["timestamp"]) for _, m, _ in rec.sent}
    assert len(ids) == 1  # one original message: its id and timestamp on every output
    by_topic = {t: m for t, m, _ in rec.sent}
    assert SECRET not in json.dumps(by_topic["indexer.error"])
    assert SECRET not in json.dumps(by_topic["notifications_view_member.error"])
    assert by_topic["notifications_view_admin.error"]["payload"]["properties"]["x_secret"] == SECRET
    annotated = by_topic["notifications_annotated.error"]["payload"]
    assert annotated["properties"]["x_secret"] == SECRET
    assert "os_glance_stage_host" not in annotated["properties"]
    assert annotated["propguard"]["property_read_classes"]["x_secret"] == ["admin"]


def test_pass_through_events(tmp_path: Path) -> None:
    rec = Recorder()
    notifier = _notifier(make_conf(tmp_path), rec)
    for note in samples.every_event(PROPS):
        getattr(notifier, note["priority"].lower())({}, note["event_type"], note["payload"])
    assert len(rec.sent) == len(list(samples.every_event({})))
    assert SECRET not in json.dumps([m for _, m, _ in rec.sent])


def test_unfilterable_is_not_sent_and_not_logged(tmp_path: Path, caplog) -> None:
    rec = Recorder()
    caplog.set_level(logging.DEBUG)
    before = dict(driver_mod.STATS.values)
    _notifier(make_conf(tmp_path), rec).info({}, "image.update", {"properties": [SECRET]})
    assert rec.sent == []
    assert SECRET not in caplog.text
    assert "cannot be filtered (FilterError)" in caplog.text
    assert driver_mod.STATS.values.get("not_sent", 0) == before.get("not_sent", 0) + 1


def test_send_failure_is_logged_without_payload(tmp_path: Path, caplog) -> None:
    def broken(*args, **kwargs):
        raise oslo_messaging.MessageDeliveryFailure(f"cannot send {SECRET}")

    conf = make_conf(tmp_path, propguard_notifications={"modes": ["annotate"]})
    caplog.set_level(logging.DEBUG)
    _notifier(conf, broken).info({}, "image.update", samples.image_payload(PROPS))
    assert "could not send notification" in caplog.text
    assert "MessageDeliveryFailure" in caplog.text
    assert SECRET not in caplog.text


def test_one_filter_per_configuration(tmp_path: Path) -> None:
    conf = make_conf(tmp_path)
    a, b = _notifier(conf, Recorder()), _notifier(conf, Recorder())
    (ext_a,), (ext_b,) = a._driver_mgr.extensions, b._driver_mgr.extensions
    assert ext_a.obj.filter is ext_b.obj.filter
    assert len(driver_mod._FILTERS) == 1


def test_missing_rules_file_loads_no_driver(tmp_path: Path, caplog) -> None:
    conf = make_conf(tmp_path)
    conf.clear_override("rules_file", "propguard")
    rec = Recorder()
    notifier = _notifier(conf, rec)
    assert notifier._driver_mgr.extensions == []
    notifier.info({}, "image.update", samples.image_payload(PROPS))
    assert rec.sent == []
    assert "rules_file is not set" in caplog.text


def test_through_the_rabbit_driver_in_memory(tmp_path: Path) -> None:
    """The real rabbit driver over kombu's memory broker: envelope, exchange, listener."""
    exchange = f"glance-{uuid.uuid4().hex[:8]}"
    conf = make_conf(
        tmp_path,
        DEFAULT={"control_exchange": exchange},
        propguard_notifications={"modes": ["strip", "annotate"]},
    )
    transport = oslo_messaging.get_notification_transport(conf, url="kombu+memory:////")
    got: list[tuple[str, dict]] = []
    done = threading.Event()

    class Endpoint:
        def info(self, ctxt, publisher_id, event_type, payload, metadata):
            got.append((metadata["message_id"], payload))
            if len(got) == 2:
                done.set()

    targets = [
        oslo_messaging.Target(topic="notifications", exchange=exchange),
        oslo_messaging.Target(topic="notifications_annotated", exchange=exchange),
    ]
    listener = oslo_messaging.get_notification_listener(
        transport, targets, [Endpoint()], allow_requeue=True, pool="indexer"
    )
    listener.start()
    try:
        notifier = oslo_messaging.Notifier(
            transport, publisher_id="image.h", driver="propguard", topics=["notifications"]
        )
        notifier.info({}, "image.update", samples.image_payload(PROPS))
        assert done.wait(10)
    finally:
        listener.stop()
        listener.wait()
        transport.cleanup()
    assert got[0][0] == got[1][0]
    payloads = sorted((p for _, p in got), key=lambda p: "propguard" in p)
    assert payloads[0]["properties"] == {"hw_disk_bus": "virtio"}
    assert payloads[1]["properties"] == {"x_secret": SECRET, "hw_disk_bus": "virtio"}


def test_raw_driver_next_to_propguard_is_reported(tmp_path: Path, caplog) -> None:
    conf = make_conf(tmp_path)
    conf.set_override("driver", ["propguard", "messagingv2"], "oslo_messaging_notifications")
    assert driver_mod.warn_about_raw_drivers(conf) == ["messagingv2"]
    assert "send(s) or log(s) every notification unfiltered" in caplog.text
    conf.set_override("driver", ["propguard"], "oslo_messaging_notifications")
    assert driver_mod.warn_about_raw_drivers(conf) == []


def test_auto_collation_is_glances_database_as_glance_api_names_it(tmp_path: Path) -> None:
    """Inside glance-api the driver's configuration is glance-api's: ``auto`` reads its
    ``[database] connection``; anywhere else the driver does not load (fail closed)."""
    from oslo_config import cfg as oslo_cfg

    conf = make_conf(tmp_path)
    conf.clear_override("name_collation", "propguard")
    with pytest.raises(ValueError, match="name_collation"):
        driver_mod.filter_for(conf)
    conf = make_conf(tmp_path, project="glance")  # glance-api's own configuration
    conf.clear_override("name_collation", "propguard")
    conf.register_opt(oslo_cfg.StrOpt("connection"), group="database")
    conf.set_override("connection", "mysql+pymysql://glance@db/glance", "database")
    nf, _ = driver_mod.filter_for(conf)
    assert nf.view.folding.name == "utf8mb3_general_ci"
