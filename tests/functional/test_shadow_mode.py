"""Shadow rules and the dry run beside a real Glance that enforces its own protections.

The migration recipe of docs/filter.md, "Trying rules first": Glance keeps enforcing
its ``property_protection_file``; propguard runs in its pipeline with
``enforce = false``, the same file as ``rules_file`` and the new rules as
``shadow_rules_file``. Nothing a caller sees or may do changes; every
decision on which the new rules differ is logged and counted.
"""

from __future__ import annotations

import json
import logging

import pytest
from glance_api import IMAGE, admin, member, patch, propguard_filter, stored_properties

pytestmark = pytest.mark.glance

#: What Glance enforces today (its own spelling; propguard reads it alike).
GLANCE_RULES = """\
[^billing_]
create = admin
read = admin
update = admin
delete = admin

[.*]
create = admin,member
read = admin,member
update = admin,member
delete = admin,member
"""
#: What the operator wants next: ``cost_*`` becomes admin-only too.
NEXT_RULES = "[^cost_]\ncreate = admin\nread = admin\nupdate = admin\ndelete = admin\n\n" + GLANCE_RULES


def _records(caplog: pytest.LogCaptureFixture, outcome: str) -> list[dict]:
    prefix = "propguard decision "
    found = []
    for record in caplog.records:
        message = record.getMessage()
        if record.name == "propguard.decisions" and message.startswith(prefix):
            data = json.loads(message[len(prefix) :])
            if data["outcome"] == outcome:
                found.append(data)
    return found


def test_dry_run_beside_glances_own_protections(glance_factory, tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="propguard.decisions")
    current = tmp_path / "property-protections.conf"
    current.write_text(GLANCE_RULES)
    upcoming = tmp_path / "next.conf"
    upcoming.write_text(NEXT_RULES)
    glance = glance_factory(
        glance_property_protection_file=str(current),
        extra_filters=[
            propguard_filter(
                current,
                enforce="false",
                shadow_rules_file=str(upcoming),
                name_collation="binary",
            )
        ],
    )
    app = glance.webtest_app()
    props = {"billing_code": "SKU-1", "cost_centre": "CC-7", "colour": "red"}
    created = app.post_json(
        "/v2/images", {**IMAGE, **props}, headers=glance.headers(admin(glance)), status=201
    )
    image_id = created.json["id"]

    shown = app.get(f"/v2/images/{image_id}", headers=glance.headers(member(glance))).json
    # Glance hides billing_code itself (so propguard never sees it); nothing else changes.
    assert "billing_code" not in shown and shown["cost_centre"] == "CC-7"
    (divergence,) = _records(caplog, "shadow_divergence")
    assert divergence["operations"] == ["read"]
    assert (divergence["enforced"], divergence["shadow"]) == ("allow", "deny")
    assert divergence["enforced_section"] == f"{current}:7"
    assert divergence["shadow_section"] == f"{upcoming}:1"
    assert divergence["project_id"] and divergence["route"] == "image"
    assert not _records(caplog, "would_hide")  # the rules in force hide nothing Glance shows
    admin_view = app.get(f"/v2/images/{image_id}", headers=glance.headers(admin(glance))).json
    assert admin_view["billing_code"] == "SKU-1"
    assert len(_records(caplog, "shadow_divergence")) == 1  # an admin reads both alike

    # A member's change of billing_code: Glance refuses it itself (409: to the member it
    # does not exist); propguard lets it through, recording that its rules would refuse it.
    caplog.clear()
    ops = [{"op": "replace", "path": "/billing_code", "value": "SKU-2"}]
    patch(app, glance, image_id, ops, member(glance), status=409)
    assert _records(caplog, "would_refuse")
    assert not _records(caplog, "shadow_divergence")  # update: admin in both
    assert stored_properties(glance, image_id) == props
    assert not {"SKU-1", "SKU-2", "CC-7"} & set(caplog.text.split('"'))
