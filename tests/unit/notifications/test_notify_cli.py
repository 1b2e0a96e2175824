"""``propguard notify-filter --stdin``: JSON lines in, filtered JSON lines out."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from data_paths import GLANCE_POLICIES_FILE, GLANCE_POLICY_YAML

from propguard.notifications import cli, samples, wire
from propguard.notifications.core import is_image_event

RULES = """\
[^x_secret]
create = admin
read = admin
update = admin
delete = admin

[^billing_]
create = admin
read = admin,billing
update = admin
delete = admin

[.*]
create = @
read = @
update = @
delete = @
"""
SECRET = "s3cr3t-do-not-print"
PROPS = {"x_secret": SECRET, "billing_code": "SKU-1", "hw_disk_bus": "virtio"}


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    path = tmp_path / "rules.conf"
    path.write_text(RULES)
    return path


def _run(argv: list[str], stdin: bytes) -> subprocess.CompletedProcess:
    """The command for a SQLite Glance (names compared exactly), unless ``argv`` says otherwise."""
    if "--name-collation" not in argv:
        argv = [*argv, "--name-collation", "binary"]
    return subprocess.run(
        [sys.executable, "-m", "propguard.notifications.cli", *argv],
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )


def _lines(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.splitlines()]


def test_quick_mode_envelopes_and_bare_lines(rules: Path) -> None:
    events = list(samples.every_event(PROPS))
    lines = [wire.encode(n) for n in events]
    bare = {"event_type": "image.update", "payload": samples.image_payload(PROPS)}
    lines.insert(3, json.dumps(bare).encode())
    result = _run(["--stdin", "--rules-file", str(rules), "--roles", "member"], b"\n".join(lines))
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    out = _lines(result.stdout)
    assert len(out) == len(lines)
    assert SECRET.encode() not in result.stdout and b"SKU-1" not in result.stdout
    # envelope in, envelope out (in order, original ids and timestamps kept)
    enveloped = [o for o in out if "oslo.message" in o]
    assert len(enveloped) == len(events)
    for original, got in zip(events, enveloped, strict=True):
        note = json.loads(got["oslo.message"])
        assert got["oslo.version"] == "2.0"
        for key in ("message_id", "timestamp", "publisher_id", "event_type", "priority"):
            assert note[key] == original[key]
        if is_image_event(note["event_type"]) and isinstance(note["payload"], dict):
            assert note["payload"]["properties"] == {"hw_disk_bus": "virtio"}
    assert out[3] == {
        "event_type": "image.update",
        "payload": samples.image_payload({"hw_disk_bus": "virtio"}),
    }


def test_bad_lines_reported_by_number_only_and_nothing_else_lost(rules: Path) -> None:
    good = wire.encode(samples.notification("image.update", samples.image_payload(PROPS)))
    lines = [
        good,
        b'{"event_type": "image.update", "payload": {"properties": {"x_secret": "'
        + SECRET.encode(),
        b"",
        b"   ",
        good,
        b'{"oslo.version": "2.0", "oslo.message": "{\\"x_secret\\": \\"'
        + SECRET.encode()
        + b'\\"}"}',
        b'{"event_type": "image.update", "payload": {"properties": ["' + SECRET.encode() + b'"]}}',
        b"\xff" + SECRET.encode(),
        good,
    ]
    result = _run(
        ["--stdin", "--rules-file", str(rules), "--roles", "member"], b"\n".join(lines) + b"\n"
    )
    assert result.returncode == 1
    assert len(_lines(result.stdout)) == 3
    err = result.stderr.decode()
    assert SECRET not in err and "x_secret" not in err
    for lineno in (2, 6, 7, 8):
        assert f"line {lineno}:" in err
    for lineno in (1, 3, 4, 5, 9):
        assert f"line {lineno}:" not in err
    assert "4 line(s) could not be filtered" in err


def test_policies_format_quick_mode() -> None:
    note = samples.notification(
        "image.update",
        samples.image_payload({"spl_creator_policy": "c", "x_owner_foo": "o", "x_foo_bar": "f"}),
    )
    argv = ["--stdin", "--rules-file", str(GLANCE_POLICIES_FILE), "--rule-format", "policies"]
    argv += ["--policy-file", str(GLANCE_POLICY_YAML)]
    member = _run([*argv, "--roles", "member"], wire.encode(note))
    spl = _run([*argv, "--roles", "spl_role"], wire.encode(note))
    assert member.returncode == spl.returncode == 0
    props = lambda r: json.loads(_lines(r.stdout)[0]["oslo.message"])["payload"]["properties"]  # noqa: E731
    assert props(member) == {"x_foo_bar": "f"}
    assert props(spl) == {"x_foo_bar": "f", "spl_creator_policy": "c"}


def test_service_roles_count(rules: Path, tmp_path: Path) -> None:
    path = tmp_path / "svc.conf"
    path.write_text("[^x_]\ncreate = @\nread = member+service:nova\nupdate = @\ndelete = @\n")
    note = wire.encode(samples.notification("image.update", samples.image_payload({"x_a": "1"})))
    plain = _run(["--stdin", "--rules-file", str(path), "--roles", "member"], note)
    relayed = _run(
        ["--stdin", "--rules-file", str(path), "--roles", "member", "--service-roles", "nova"], note
    )
    get = lambda r: json.loads(_lines(r.stdout)[0]["oslo.message"])["payload"]["properties"]  # noqa: E731
    assert get(plain) == {} and get(relayed) == {"x_a": "1"}


def test_config_file_views_and_annotate(rules: Path, tmp_path: Path) -> None:
    conf = tmp_path / "notify.conf"
    conf.write_text(
        f"[propguard]\nrules_file = {rules}\n\n"
        "[propguard_notifications]\nmodes = strip,views,annotate\naudience_roles = member\n"
        "reader_classes = member:member,billing:member+billing,admin:admin\n"
    )
    note = samples.notification("image.update", samples.image_payload(PROPS))
    result = _run(["--stdin", "--config-file", str(conf)], json.dumps(note).encode())
    assert result.returncode == 0, result.stderr
    out = _lines(result.stdout)
    assert [o.get("propguard_view") for o in out] == [None, "member", "billing", "admin", None]
    assert [set(o["payload"]["properties"]) for o in out] == [
        {"hw_disk_bus"},
        {"hw_disk_bus"},
        {"hw_disk_bus", "billing_code"},
        set(PROPS),
        set(PROPS),
    ]
    annotation = out[4]["payload"]["propguard"]
    assert annotation["property_read_classes"] == {
        "x_secret": ["admin"],
        "billing_code": ["billing", "admin"],
        "hw_disk_bus": ["member", "billing", "admin"],
    }
    assert annotation["property_read_roles"]["billing_code"] == ["admin", "billing"]
    only = _run(
        ["--stdin", "--config-file", str(conf), "--mode", "views"], json.dumps(note).encode()
    )
    assert [o["propguard_view"] for o in _lines(only.stdout)] == ["member", "billing", "admin"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--stdin"], "--roles is required"),
        (["--stdin", "--roles", "member"], "no rules"),
        (["--stdin", "--roles", "a", "--rules-file", "RULES", "--mode", "views"], "reader_classes"),
        ([], "needs --config-file"),
    ],
)
def test_usage_errors(rules: Path, argv: list[str], message: str) -> None:
    argv = [str(rules) if a == "RULES" else a for a in argv]
    result = _run(argv, b"")
    assert result.returncode == 2
    assert message in result.stderr.decode()


def test_rules_that_do_not_load(tmp_path: Path) -> None:
    path = tmp_path / "bad.conf"
    path.write_text("[.*]\ncreate = @\n")
    result = _run(["--stdin", "--rules-file", str(path), "--roles", "member"], b"")
    assert result.returncode == 1
    assert f"{path}:" in result.stderr.decode()


def test_bad_config_value(rules: Path, tmp_path: Path) -> None:
    conf = tmp_path / "bad.conf"
    conf.write_text(
        f"[propguard]\nrules_file = {rules}\n[propguard_notifications]\nmodes = everything\n"
    )
    result = _run(["--stdin", "--config-file", str(conf)], b"")
    assert result.returncode == 2
    assert "modes" in result.stderr.decode()


def test_filter_lines_in_process(roles_engine) -> None:
    from propguard.notifications.core import NotificationFilter, audience

    nf = NotificationFilter(roles_engine, audience=audience(["member"]))
    data = b"\n".join(
        [
            wire.encode(
                samples.notification(
                    "image.update", samples.image_payload({"x_owner_a": "1", "spl_read_prop": "2"})
                )
            ),
            b"{}",
            json.dumps({"event_type": "image.update", "payload": {"id": "no-props"}}).encode(),
        ]
    )
    out, err = io.BytesIO(), io.StringIO()
    assert cli.filter_lines(nf, io.BytesIO(data), out, err) == 2
    (first,) = _lines(out.getvalue())
    assert json.loads(first["oslo.message"])["payload"]["properties"] == {"x_owner_a": "1"}
    assert err.getvalue() == (
        "propguard notify-filter: line 2: notification has no string 'event_type'\n"
        "propguard notify-filter: line 3: image.update payload lacks a key Glance sends\n"
    )


def test_add_parser_wires_into_a_parent_command(rules: Path, monkeypatch, capsysbinary) -> None:
    parser = argparse.ArgumentParser(prog="propguard")
    sub = parser.add_subparsers(dest="command")
    cli.add_parser(sub)
    args = parser.parse_args(
        ["notify-filter", "--stdin", "--rules-file", str(rules), "--roles", ""]
        + ["--name-collation", "binary"]
    )
    assert args.command == "notify-filter" and args.roles == []
    note = wire.encode(samples.notification("image.update", samples.image_payload(PROPS)))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(note)))
    assert cli.run(args) == 0
    (line,) = _lines(capsysbinary.readouterr().out)
    assert json.loads(line["oslo.message"])["payload"]["properties"] == {"hw_disk_bus": "virtio"}


def test_the_collation_of_glances_database_must_be_named_outside_glance_api(rules: Path) -> None:
    """Nothing tells a filter outside glance-api how Glance's database compares names:
    guessing exact comparison would leak ``SECRET_KEY`` to an indexer of a MariaDB Glance."""
    result = _run(
        ["--stdin", "--rules-file", str(rules), "--roles", "member", "--name-collation", "auto"],
        b"",
    )
    assert result.returncode == 2
    assert b"name_collation" in result.stderr and b"utf8mb3_general_ci" in result.stderr
