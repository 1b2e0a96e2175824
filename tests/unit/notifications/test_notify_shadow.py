"""Shadow rules in the notification filter: decided beside the rules in force, never applied.

Oracle: the rules below are small enough that which audience would stop or
start receiving which property is written out by hand.
"""

from __future__ import annotations

import copy
import json
import logging
import subprocess
import sys
from pathlib import Path

import oslo_messaging
import pytest
from oslo_config import cfg
from oslo_messaging import opts as om_opts
from prometheus_client.parser import text_string_to_metric_families

from propguard import metrics
from propguard import opts as propguard_opts
from propguard.decisions import DecisionLog
from propguard.notifications import driver as driver_mod
from propguard.notifications import opts as notify_opts
from propguard.notifications import samples, wire
from propguard.notifications.core import (
    Divergence,
    Mode,
    NotificationFilter,
    ReaderClass,
    audience,
)
from propguard.notifications.shadow import DRY_RUN_REFUSED, DivergenceRecorder
from propguard.rules import parse_rules_text
from propguard.rules.engine import compile_rules

RULES = """\
[^x_secret]
create = admin
read = admin
update = admin
delete = admin

[.*]
create = @
read = @
update = @
delete = @
"""
#: Next rules: members may read x_secret* (line 7), hw_* becomes admin-only (line 1).
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
SECRET = "s3cr3t-value"
PROPS = {"x_secret": SECRET, "hw_disk_bus": "virtio", "colour": "red"}
ENGINE = compile_rules(parse_rules_text("rules.conf", RULES, "roles"))
NEXT = compile_rules(parse_rules_text("next.conf", SHADOW, "roles"))
CLASSES = (ReaderClass.parse("member", "member"), ReaderClass.parse("admin", "admin"))


def _filter(shadow=NEXT, modes=("strip", "views", "annotate"), sink=None) -> NotificationFilter:
    return NotificationFilter(
        ENGINE,
        modes=modes,
        audience=audience(["member"]),
        reader_classes=CLASSES,
        shadow=shadow,
        on_divergence=sink,
    )


class Sink:
    def __init__(self) -> None:
        self.calls: list[tuple[dict, list[Divergence]]] = []

    def __call__(self, notification, found) -> None:
        self.calls.append((dict(notification), list(found)))

    def summary(self) -> set[tuple]:
        return {
            (d.mode.value, d.audience, d.shown, d.enforced_section, d.shadow_section, d.names)
            for _, found in self.calls
            for d in found
        }


def _note(props=PROPS, event="image.update", **top) -> dict:
    payload = samples.image_payload(dict(props))
    payload.update(top)
    return samples.notification(event, payload)


def test_outputs_are_the_enforced_rules_alone() -> None:
    note = _note()
    plain = [tuple(o) for o in _filter(shadow=None).outputs(copy.deepcopy(note))]
    sink = Sink()
    shadowed = [tuple(o) for o in _filter(sink=sink).outputs(copy.deepcopy(note))]
    assert shadowed == plain
    assert sink.calls  # and yet the shadow rules were decided


def test_each_output_names_what_its_audience_would_stop_or_start_receiving() -> None:
    sink = Sink()
    _filter(sink=sink).outputs(_note())
    (notification, _), = sink.calls
    assert notification["event_type"] == "image.update"
    would_show = ("rules.conf:1", "next.conf:7", ("x_secret",))
    would_hide = ("rules.conf:7", "next.conf:1", ("hw_disk_bus",))
    # Admins read both alike; members would gain x_secret and lose hw_disk_bus in every output.
    assert sink.summary() == {
        (mode, "member", shown, *sections)
        for mode in ("strip", "views", "annotate")
        for shown, sections in ((False, would_show), (True, would_hide))
    }


def test_strip_audience_is_named_by_its_roles_and_only_configured_modes_count() -> None:
    sink = Sink()
    nf = NotificationFilter(
        ENGINE, audience=audience(["reader", "member"]), shadow=NEXT, on_divergence=sink
    )
    nf.outputs(_note())
    assert {(d.mode, d.audience) for _, found in sink.calls for d in found} == {
        (Mode.STRIP, "member+reader")
    }


def test_annotate_judges_properties_views_also_top_level_names() -> None:
    """A top-level ``os_glance_*`` key is under the rules for strip and views (the view
    decides it) but passes whole in annotate."""
    text = "[^os_glance_import]\ncreate = @\nread = admin\nupdate = @\ndelete = @\n\n" + RULES
    # Without the built-in ^os_glance section (everyone), which would decide first.
    shadow = compile_rules(parse_rules_text("s.conf", text, "roles"), os_glance_section=False)
    sink = Sink()
    nf = _filter(shadow=shadow, modes=("views", "annotate"), sink=sink)
    nf.outputs(_note({"colour": "red"}, os_glance_importing_to_stores="s1"))
    assert {(d.mode.value, d.audience, d.shown, d.names) for _, f in sink.calls for d in f} == {
        ("views", "member", True, ("os_glance_importing_to_stores",))
    }


def test_same_rules_nothing_reported_and_other_events_are_not_decided() -> None:
    sink = Sink()
    _filter(shadow=ENGINE, sink=sink).outputs(_note())
    assert sink.calls == []
    sink = Sink()
    member = samples.notification(
        "image.member.create",
        {
            "image_id": "i",
            "member_id": "p",
            "status": "pending",
            "created_at": "x",
            "updated_at": "x",
            "deleted": False,
            "deleted_at": None,
        },
    )
    _filter(sink=sink).outputs(member)
    assert sink.calls == []


def test_every_notification_is_reported_and_a_reload_is_followed() -> None:
    current = [NEXT]
    sink = Sink()
    nf = _filter(shadow=lambda: current[0], modes=("strip",), sink=sink)
    nf.outputs(_note())
    nf.outputs(_note())
    assert len(sink.calls) == 2  # memoised decisions, but each notification reported
    current[0] = compile_rules(parse_rules_text("next.conf", RULES, "roles"))
    nf.outputs(_note())
    assert len(sink.calls) == 2  # the reloaded shadow rules agree: nothing more


def test_records_and_counters_never_carry_a_value_and_names_only_on_request(caplog) -> None:
    caplog.set_level(logging.INFO, logger="propguard.decisions")
    log = DecisionLog()
    nf = _filter(modes=("views",), sink=DivergenceRecorder(log))
    note = _note(event="image.create")
    nf.outputs(note)
    records = [
        json.loads(r.getMessage().split(" ", 2)[2])
        for r in caplog.records
        if r.name == "propguard.decisions"
    ]
    assert {(r["audience"], r["enforced"], r["shadow"]) for r in records} == {
        ("member", "deny", "allow"),
        ("member", "allow", "deny"),
    }
    for record in records:
        assert record["outcome"] == "shadow_divergence" and record["mode"] == "views"
        assert record["message_id"] == note["message_id"]
        assert record["event_type"] == "image.create" and record["count"] == 1
        assert record["operations"] == ["read"] and record["roles"] == ["member"]
        assert "properties" not in record
    assert log.counts["shadow_divergence"] == 2
    assert SECRET not in caplog.text and "x_secret" not in caplog.text
    text = metrics.render().decode()
    assert SECRET not in text and "x_secret" not in text and "hw_disk_bus" not in text
    labels = {
        "mode": "views",
        "audience": "member",
        "event_type": "image.create",
        "enforced_section": "rules.conf:1",
        "shadow_section": "next.conf:7",
        "change": "would_show",
    }
    values = [
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "propguard_notify_shadow_divergences_total" and s.labels == labels
    ]
    assert values and values[0] >= 1

    caplog.clear()
    named = _filter(modes=("views",), sink=DivergenceRecorder(DecisionLog(property_names=True)))
    named.outputs(_note())
    assert '"properties":["x_secret"]' in caplog.text and SECRET not in caplog.text


# -- the adapters: options, enforce = false --------------------------------------------


def _conf(tmp_path: Path, **propguard: object) -> cfg.ConfigOpts:
    rules = tmp_path / "rules.conf"
    rules.write_text(RULES)
    conf = cfg.ConfigOpts()
    for group, options in om_opts.list_opts():
        conf.register_opts(options, group=group)
    propguard_opts.register_opts(conf)
    notify_opts.register_opts(conf)
    conf([], project="propguard-test", default_config_files=[], default_config_dirs=[])
    values = {
        "rules_file": str(rules),
        "reload_on_sighup": False,
        "name_collation": "binary",
        **propguard,
    }
    for name, value in values.items():
        conf.set_override(name, value, "propguard")
    conf.set_override("audience_roles", ["member"], "propguard_notifications")
    return conf


@pytest.fixture
def _fresh_filters():
    driver_mod._FILTERS.clear()
    yield
    driver_mod._FILTERS.clear()


def _send(conf: cfg.ConfigOpts) -> tuple[oslo_messaging.Notifier, list]:
    sent: list = []
    transport = oslo_messaging.get_notification_transport(conf, url="fake:/")
    transport._send_notification = lambda target, ctxt, message, version, retry=None: sent.append(
        json.loads(json.dumps(message))
    )
    notifier = oslo_messaging.Notifier(
        transport, publisher_id="image.h", driver="propguard", topics=["notifications"]
    )
    return notifier, sent


def test_the_driver_reads_the_shadow_file_of_propguard(
    tmp_path: Path, caplog, _fresh_filters
) -> None:
    caplog.set_level(logging.INFO, logger="propguard.decisions")
    shadow = tmp_path / "next.conf"
    shadow.write_text(SHADOW)
    notifier, sent = _send(_conf(tmp_path, shadow_rules_file=str(shadow)))
    notifier.info({}, "image.update", samples.image_payload(PROPS))
    (message,) = sent
    assert message["payload"]["properties"] == {"hw_disk_bus": "virtio", "colour": "red"}
    assert f'"shadow_section":"{shadow}:7"' in caplog.text
    assert f'"shadow_section":"{shadow}:1"' in caplog.text


def test_the_driver_refuses_a_dry_run(tmp_path: Path, caplog, _fresh_filters) -> None:
    notifier, sent = _send(_conf(tmp_path, enforce=False))
    assert notifier._driver_mgr.extensions == []  # not loaded: nothing is sent unfiltered
    notifier.info({}, "image.update", samples.image_payload(PROPS))
    assert sent == []
    assert "enforce = false is not supported by the notification filter" in caplog.text


def _cli(argv: list[str], stdin: bytes) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "propguard.notifications.cli", "--name-collation", "binary", *argv],
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )


def test_stdin_trial_with_shadow_rules(tmp_path: Path) -> None:
    rules, shadow = tmp_path / "rules.conf", tmp_path / "next.conf"
    rules.write_text(RULES)
    shadow.write_text(SHADOW)
    line = wire.encode(_note()) + b"\n"
    argv = ["--stdin", "--rules-file", str(rules), "--roles", "member"]
    plain = _cli(argv, line)
    tried = _cli([*argv, "--shadow-rules-file", str(shadow)], line)
    assert tried.returncode == plain.returncode == 0
    assert tried.stdout == plain.stdout  # never applied
    records = [json.loads(x.split(" ", 2)[2]) for x in tried.stderr.decode().splitlines()]
    assert {(r["mode"], r["audience"], r["enforced"], r["shadow_section"]) for r in records} == {
        ("strip", "member", "deny", f"{shadow}:7"),
        ("strip", "member", "allow", f"{shadow}:1"),
    }
    assert SECRET.encode() not in tried.stderr


@pytest.mark.parametrize("form", [["--stdin", "--roles", "member"], []], ids=["stdin", "service"])
def test_stdin_and_service_refuse_a_dry_run(tmp_path: Path, form: list[str]) -> None:
    """Exit 2 before anything is read or any broker is reached (docs/notifications.md)."""
    rules = tmp_path / "rules.conf"
    rules.write_text(RULES)
    conf = tmp_path / "nf.conf"
    conf.write_text(f"[propguard]\nrules_file = {rules}\nenforce = false\n")
    result = _cli([*form, "--config-file", str(conf)], b"")
    assert result.returncode == 2
    assert DRY_RUN_REFUSED in result.stderr.decode()
