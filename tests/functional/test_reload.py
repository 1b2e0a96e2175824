"""Hot reload of the rules in a running pipeline: on change, on SIGHUP, never to broken rules.

Why: operators edit the rules file of a running glance-api. propguard must
pick the change up without a restart, and a broken edit must neither open
nor close everything: the last good rules stay in force and an ERROR log
line says why. Real pipeline: auth_token + propguard + in-process Glance 33.
"""

from __future__ import annotations

import json
import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from glance_api import IMAGE, JSON_PATCH, admin, member

from propguard.inprocess import InProcessGlance

pytestmark = pytest.mark.glance


def rules(member_may_create: bool) -> str:
    """``x_owner_*``: creatable by members or not; everything else admin only."""
    create = "admin,member" if member_may_create else "admin"
    return f"""\
[^x_owner_.*]
create = {create}
read = admin,member
update = admin,member
delete = admin,member

[.*]
create = admin
read = admin
update = admin
delete = admin
"""


BROKEN = rules(True).replace("read = admin,member\n", "", 1)  # a section without "read"


def replace_file(path: Path, text: str) -> None:
    """Write as configuration management does: a new file renamed over the old one."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(text)
    os.replace(tmp, path)


def member_create(glance: InProcessGlance, name: str = "x_owner_a") -> int:
    tok = member(glance)
    res = glance.request(
        "POST", "/v2/images", headers=glance.headers(tok), json={**IMAGE, name: "v"}
    )
    assert res.status_int in (201, 403), res.body
    return res.status_int


def reload_records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "propguard.rules.reloader" and r.levelno == level
    ]


def test_changed_file_is_used_by_the_next_request(guarded_glance, tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO)
    path = tmp_path / "rules.conf"
    path.write_text(rules(False))
    glance = guarded_glance(path, reload_interval="0", reload_on_sighup="false")
    assert member_create(glance) == 403

    replace_file(path, rules(True))
    assert member_create(glance) == 201
    assert reload_records(caplog, logging.INFO) == [f"propguard: rules reloaded from {path}"]

    # An in-place rewrite (same inode) is seen as well.
    path.write_text(rules(False) + "\n# tightened again\n")
    assert member_create(glance) == 403
    # Unchanged file: no rebuild per request.
    assert member_create(glance) == 403
    assert len(reload_records(caplog, logging.INFO)) == 2


def test_broken_file_keeps_the_last_good_rules(guarded_glance, tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO)
    path = tmp_path / "rules.conf"
    path.write_text(rules(True))
    glance = guarded_glance(path, reload_interval="0", reload_on_sighup="false")
    assert member_create(glance) == 201

    replace_file(path, BROKEN)
    line = BROKEN.splitlines().index("[^x_owner_.*]") + 1
    assert member_create(glance) == 201  # still the last good rules: members may create
    assert member_create(glance, "zz_admin_only") == 403  # ... and still denies the rest
    errors = reload_records(caplog, logging.ERROR)
    assert errors == [
        "propguard: new rules refused, keeping the last good rules: "
        f"{path}:{line}:1: PG105 section [^x_owner_.*] has no 'read' operation"
    ]

    # A deleted file is refused the same way.
    path.unlink()
    assert member_create(glance) == 201
    assert "PG101" in reload_records(caplog, logging.ERROR)[-1]

    # Fixed again: the next request uses the fixed file.
    replace_file(path, rules(False))
    assert member_create(glance) == 403
    assert reload_records(caplog, logging.INFO)[-1] == f"propguard: rules reloaded from {path}"
    assert len(reload_records(caplog, logging.ERROR)) == 2


POLICIES_RULES = """\
[^x_pol_]
create = pg_creator
read = pg_creator
update = pg_creator
delete = pg_creator

[.*]
create = context_is_admin
read = context_is_admin
update = context_is_admin
delete = context_is_admin
"""


def start_policies(guarded_glance, policy: Path) -> InProcessGlance:
    """POLICIES_RULES with ``policy`` as policy_file, checked for changes on every request."""
    return guarded_glance(
        POLICIES_RULES,
        rule_format="policies",
        policy_file=str(policy),
        reload_interval="0",
        reload_on_sighup="false",
    )


def test_policy_file_change_is_reloaded(guarded_glance, tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO)
    policy = tmp_path / "policy.yaml"
    policy.write_text('"pg_creator": "role:member or role:admin"\n')
    glance = start_policies(guarded_glance, policy)
    assert member_create(glance, "x_pol_a") == 201
    replace_file(policy, '"pg_creator": "role:admin"\n')
    assert member_create(glance, "x_pol_a") == 403
    # A policy file that leaves the name undefined is refused (PG111): last good rules.
    replace_file(policy, '"something_else": "role:member"\n')
    assert member_create(glance, "x_pol_a") == 403
    assert member_create(glance, "zz") == 403
    assert "PG111" in reload_records(caplog, logging.ERROR)[-1]


def test_policy_d_is_read_and_watched(guarded_glance, tmp_path, caplog) -> None:
    """glance-api's policy.d next to policy.yaml overrides it; a new file there is reloaded."""
    caplog.set_level(logging.INFO)
    policy = tmp_path / "policy.yaml"
    policy.write_text('"pg_creator": "role:admin"\n')
    policy_d = tmp_path / "policy.d"
    policy_d.mkdir()
    (policy_d / "10-members.yaml").write_text('"pg_creator": "role:member or role:admin"\n')
    glance = start_policies(guarded_glance, policy)
    assert member_create(glance, "x_pol_a") == 201
    (policy_d / "20-admins-only.yaml").write_text('"pg_creator": "role:admin"\n')
    assert member_create(glance, "x_pol_a") == 403
    assert reload_records(caplog, logging.INFO)
    # A broken file dropped into policy.d is refused with its name; last good rules stay.
    (policy_d / "30-broken.yaml").write_text('"pg_creator": [unclosed\n')
    assert member_create(glance, "x_pol_a") == 403
    assert "30-broken.yaml" in reload_records(caplog, logging.ERROR)[-1]


@pytest.fixture
def sighup() -> Iterator[list[int]]:
    """A previous (recording) SIGHUP handler; the original handler is restored afterwards."""
    original = signal.getsignal(signal.SIGHUP)
    calls: list[int] = []
    signal.signal(signal.SIGHUP, lambda signum, frame: calls.append(signum))
    try:
        yield calls
    finally:
        signal.signal(signal.SIGHUP, original)


def test_sighup_reloads_when_polling_is_off(guarded_glance, tmp_path, caplog, sighup) -> None:
    caplog.set_level(logging.INFO)
    before = signal.getsignal(signal.SIGHUP)
    path = tmp_path / "rules.conf"
    path.write_text(rules(False))
    glance = guarded_glance(path, reload_interval="-1", reload_on_sighup="true")
    handler = signal.getsignal(signal.SIGHUP)
    assert callable(handler) and handler is not before  # propguard's, chaining ours

    replace_file(path, rules(True))
    assert member_create(glance) == 403  # no polling: the change is not seen
    os.kill(os.getpid(), signal.SIGHUP)
    assert sighup == [signal.SIGHUP]  # the previous handler still ran
    assert member_create(glance) == 201
    assert reload_records(caplog, logging.INFO) == [f"propguard: rules reloaded from {path}"]

    # SIGHUP with a broken file: refused, the last good rules stay.
    replace_file(path, BROKEN)
    os.kill(os.getpid(), signal.SIGHUP)
    assert member_create(glance) == 201
    assert member_create(glance, "zz_admin_only") == 403
    assert "PG105" in reload_records(caplog, logging.ERROR)[-1]

    # A SIGHUP forces a rebuild even of an unchanged file.
    replace_file(path, rules(False))
    os.kill(os.getpid(), signal.SIGHUP)
    assert member_create(glance) == 403
    os.kill(os.getpid(), signal.SIGHUP)
    assert member_create(glance) == 403
    assert len(reload_records(caplog, logging.INFO)) == 3
    assert sighup == [signal.SIGHUP] * 4


def test_reload_applies_to_reads_and_patches(guarded_glance, tmp_path) -> None:
    """Not only creates: what a member may read and patch follows the new rules too."""
    path = tmp_path / "rules.conf"
    path.write_text(rules(True))
    glance = guarded_glance(path, reload_interval="0", reload_on_sighup="false")
    root = admin(glance)
    tok = member(glance)
    res = glance.request(
        "POST",
        "/v2/images",
        headers=glance.headers(root),
        json={**IMAGE, "x_owner_a": "a", "zz": "z"},
    )
    image = f"/v2/images/{res.json['id']}"
    assert glance.request("GET", image, headers=glance.headers(tok)).json.get("x_owner_a") == "a"

    replace_file(path, rules(True).replace("read = admin,member", "read = admin"))
    seen = glance.request("GET", image, headers=glance.headers(tok)).json
    assert "x_owner_a" not in seen and "zz" not in seen
    res = glance.request(
        "PATCH",
        image,
        headers=glance.headers(tok),
        body=json.dumps([{"op": "replace", "path": "/x_owner_a", "value": "b"}]).encode(),
        content_type=JSON_PATCH,
    )
    assert res.status_int == 409  # unreadable now: "does not exist"
    assert glance.request("GET", image, headers=glance.headers(root)).json["x_owner_a"] == "a"
