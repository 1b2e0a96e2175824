"""Shadow rules, the dry run (``enforce = false``) and the decision log, through the filter."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import webob

from propguard import opts
from propguard.middleware import PropertyProtectionFilter

RULES = """\
[^secret_]
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
#: The rules to try: members may read secret_* but still not change them.
SHADOW = RULES.replace("read = admin", "read = admin,member", 1)
IMAGE = {"id": "i1", "name": "img", "secret_key": "VALUE-S3CR3T", "colour": "red"}
MEMBER = {
    "X-Identity-Status": "Confirmed",
    "X-Roles": "member",
    "X-User-Id": "alice",
    "X-Project-Id": "p1",
}


class Glance:
    """Answers every request with the image (GET, PATCH); remembers what it was sent."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length:
            self.bodies.append(environ["wsgi.input"].read(length))
        body = json.dumps(IMAGE).encode()
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]


def make(tmp_path: Path, **extra: str) -> tuple[Glance, PropertyProtectionFilter, Path]:
    rules = tmp_path / "rules.conf"
    rules.write_text(RULES)
    shadow = tmp_path / "shadow.conf"
    shadow.write_text(SHADOW)
    local = {
        "rules_file": str(rules),
        "name_collation": "binary",
        "trust_identity_headers": "true",
        "reload_interval": "-1",
        **{k: v.replace("SHADOW", str(shadow)) for k, v in extra.items()},
    }
    glance = Glance()
    return glance, PropertyProtectionFilter(glance, opts.resolve(local)), rules


def records(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    prefix = "propguard decision "
    return [
        json.loads(r.getMessage()[len(prefix) :])
        for r in caplog.records
        if r.name == "propguard.decisions" and r.getMessage().startswith(prefix)
    ]


def get(app, path: str = "/v2/images/i1", **headers: str) -> webob.Response:
    environ = {"openstack.request_id": "req-1"}  # oslo.middleware's RequestId sets it
    return webob.Request.blank(path, environ, headers={**MEMBER, **headers}).get_response(app)


def patch(app, ops: list[dict[str, Any]]) -> webob.Response:
    request = webob.Request.blank(
        "/v2/images/i1",
        environ={"REQUEST_METHOD": "PATCH", "openstack.request_id": "req-2"},
        headers=MEMBER,
        body=json.dumps(ops).encode(),
        content_type="application/openstack-images-v2.1-json-patch",
    )
    return request.get_response(app)


def test_hidden_response_is_recorded_without_names_or_values(tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="propguard.decisions")
    _, app, rules = make(tmp_path)
    response = get(app)
    assert "secret_key" not in response.json
    (record,) = records(caplog)
    assert record["outcome"] == "hidden" and record["count"] == 1
    assert record["sections"] == {f"{rules}:1": 1}
    assert record["request_id"] == "req-1" and record["user_id"] == "alice"
    assert record["route"] == "image" and record["method"] == "GET"
    assert "properties" not in record
    assert "secret_key" not in caplog.text and "VALUE-S3CR3T" not in caplog.text
    assert app.decisions.counts["hidden"] == 1


def test_property_names_only_when_the_operator_asks(tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="propguard.decisions")
    _, app, _ = make(tmp_path, log_property_names="true")
    get(app)
    (record,) = records(caplog)
    assert record["properties"] == ["secret_key"]
    assert "VALUE-S3CR3T" not in caplog.text


def test_refusal_is_recorded_with_the_section(tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="propguard.decisions")
    glance, app, rules = make(tmp_path)
    response = patch(app, [{"op": "add", "path": "/secret_new", "value": "x"}])
    assert response.status_int == 403
    refused = [r for r in records(caplog) if r["outcome"] == "refused"]
    assert refused and refused[0]["status"] == 403 and refused[0]["request_id"] == "req-2"
    assert refused[0]["sections"] == {f"{rules}:1": 1}
    assert not [b for b in glance.bodies if b.startswith(b"[")]  # nothing patched


def test_shadow_divergences_are_counted_and_logged_never_enforced(tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="propguard.decisions")
    _, app, rules = make(tmp_path, shadow_rules_file="SHADOW")
    response = get(app)
    assert "secret_key" not in response.json  # the enforced rules decide
    divergences = [r for r in records(caplog) if r["outcome"] == "shadow_divergence"]
    assert divergences == [
        {
            **{k: divergences[0][k] for k in ("request_id", "global_request_id", "roles")},
            "method": "GET",
            "route": "image",
            "user_id": "alice",
            "project_id": "p1",
            "domain_id": None,
            "outcome": "shadow_divergence",
            "operations": ["read"],
            "enforced": "deny",
            "enforced_section": f"{rules}:1",
            "shadow": "allow",
            "shadow_section": f"{tmp_path / 'shadow.conf'}:1",
        }
    ]
    assert app.decisions.counts["shadow_divergence"] == 1
    # The same decision for an admin: no divergence.
    get(app, **{"X-Roles": "admin"})
    assert app.decisions.counts["shadow_divergence"] == 1


def test_dry_run_decides_and_records_but_changes_nothing(tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="propguard.decisions")
    glance, app, rules = make(tmp_path, enforce="false")
    response = get(app)
    assert response.json["secret_key"] == "VALUE-S3CR3T"  # shown: not enforcing
    (record,) = records(caplog)
    assert record["outcome"] == "would_hide" and record["sections"] == {f"{rules}:1": 1}
    caplog.clear()
    ops = [{"op": "replace", "path": "/secret_key", "value": "new"}]
    response = patch(app, ops)
    assert response.status_int == 200
    assert json.loads(glance.bodies[-1]) == ops  # forwarded as sent
    would = [r for r in records(caplog) if r["outcome"] == "would_refuse"]
    assert would and set(would[0]["operations"]) >= {"update"}
    assert app.decisions.counts["would_refuse"] == 1
