"""Bad input gets a clear 4xx through the real pipeline: never a 500, never a leak.

Why: propguard parses what Glance would parse (JSON bodies, JSON pointers) and
re-serialises what it checked; any divergence or crash there is either a 500
or, worse, a way to check one property name and change another. Every case
runs through real keystonemiddleware ``auth_token`` + propguard + a real
in-process Glance 33, and for every answer we assert: status < 500, the
expected status, and that neither the response (body and headers) nor the
captured logs contain a hidden property name the caller did not send, or a
hidden value.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import webob
from functional_rules import ADMIN_CATCH_ALL, REFERENCE_2_4_SECTIONS
from glance.common import config as glance_config
from glance_api import (
    IMAGE,
    JSON_PATCH,
    JSON_PATCH_DRAFT4,
    admin,
    member,
    propguard_conf,
    stored_properties,
)
from oslo_config import cfg

from propguard import opts
from propguard.inprocess import InProcessGlance
from propguard.middleware import PropertyProtectionFilter

pytestmark = pytest.mark.glance

MAX_BODY = 2048

#: The rules of reference section 2.4, plus: a section for names that start
#: with white space (open to everyone, so that checking the unstripped name
#: instead of Glance's stripped one would be visible), the service-only
#: section, and the two core attributes an operator may protect.
RULES = (
    """\
[^\\s]
create = @
read = @
update = @
delete = @

"""
    + REFERENCE_2_4_SECTIONS
    + """\
[svc_only]
create = admin,service:svc
read = admin,member,service:svc
update = admin,service:svc
delete = admin,service:svc

[^locations$]
create = admin
read = admin,service:service
update = admin
delete = admin

[^direct_url$]
create = admin
read = admin,service:service
update = admin
delete = admin

"""
    + ADMIN_CATCH_ALL
)

#: Stored by the admin on the test image; none of them is readable by a member.
HIDDEN = {
    "zz_hidden": "HIDDEN-VALUE-1",
    "x_blind": "BLIND-VALUE-2",
    "x_none_read": "NONE-READ-VALUE-3",
}
#: Readable by a member.
VISIBLE = {"x_owner_a": "a", "x_ro": "ro", "x_nodel": "nd"}


class Env:
    """One propguard-fronted Glance, its tokens and an admin-made image with hidden properties."""

    def __init__(self, glance: InProcessGlance) -> None:
        self.glance = glance
        self.member = member(glance)
        self.admin = admin(glance)
        res = self.send(
            "POST", "/v2/images", token=self.admin, json_body={**IMAGE, **HIDDEN, **VISIBLE}
        )
        assert res.status_int == 201, res.body
        self.image_id = res.json["id"]
        self.path = f"/v2/images/{self.image_id}"

    def send(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        service: str | None = None,
        body: bytes | None = None,
        json_body: Any = None,
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
        chunked: bool = False,
    ) -> webob.Response:
        """A request through the whole pipeline; ``chunked``: no Content-Length, input terminated."""
        if json_body is not None:
            body = json.dumps(json_body).encode()
            content_type = content_type or "application/json"
        req = webob.Request.blank(
            path,
            base_url=self.glance.base_url,
            method=method,
            headers={**self.glance.headers(token, service), **(headers or {})},
        )
        req.environ.update({"SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1"})
        if body is not None:
            if chunked:
                req.environ["wsgi.input"] = io.BytesIO(body)
                req.environ.pop("CONTENT_LENGTH", None)
                req.environ["wsgi.input_terminated"] = True
                req.environ["HTTP_TRANSFER_ENCODING"] = "chunked"
            else:
                req.body = body
        if content_type:
            req.content_type = content_type
        res = req.get_response(self.glance.app)
        assert res.status_int < 500, (method, path, res.status, res.body)
        if token != self.admin:  # every answer to a non-admin: nothing hidden in it
            assert_no_leak(res, path + "\n" + (body or b"").decode("utf-8", "replace"))
        return res

    def patch(self, ops: Any, token: str | None = None, content_type: str = JSON_PATCH, **kw):
        body = ops if isinstance(ops, bytes) else json.dumps(ops).encode()
        return self.send(
            "PATCH",
            self.path,
            token=token or self.member,
            body=body,
            content_type=content_type,
            **kw,
        )

    def stored(self, image_id: str | None = None) -> dict[str, str]:
        return stored_properties(self.glance, image_id or self.image_id)


def start(guarded_glance, **options: str) -> Env:
    """RULES, bodies limited to MAX_BODY, requests recorded; ``options``: propguard's."""
    glance = guarded_glance(
        RULES, record_requests=True, max_request_body_size=str(MAX_BODY), **options
    )
    return Env(glance)


@pytest.fixture
def env(guarded_glance) -> Env:
    return start(guarded_glance)


@pytest.fixture
def logs(caplog) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


def assert_no_leak(res: webob.Response, sent: bytes | str = b"") -> None:
    """Neither a hidden value nor a hidden name the caller did not send is in the answer."""
    sent_text = sent.decode("utf-8", "replace") if isinstance(sent, bytes) else sent
    blob = res.body.decode("utf-8", "replace") + "\n" + str(res.headers)
    for name, value in HIDDEN.items():
        if value not in sent_text:
            assert value not in blob, (res.status, blob)
        if name not in sent_text:
            assert name not in blob, (res.status, blob)


def log_text(caplog: pytest.LogCaptureFixture) -> str:
    """Every captured record, all levels, all loggers, message and arguments formatted.

    Except oslo.policy's own DEBUG line ``enforce: rule=... target={...}``:
    Glance asks it with the whole image as target, all properties included
    (an operator-side DEBUG log Glance writes for the admin's requests too;
    propguard neither adds nor can remove it).
    """
    return "\n".join(
        record.getMessage()
        for record in caplog.records
        if not (record.name == "oslo_policy.policy" and record.levelno == logging.DEBUG)
    )


def assert_logs_clean(caplog: pytest.LogCaptureFixture, sent: str = "") -> None:
    text = log_text(caplog)
    for name, value in HIDDEN.items():
        assert value not in text
        if name not in sent:
            assert name not in text, [
                r.getMessage() for r in caplog.records if name in r.getMessage()
            ]


def assert_api_error(res: webob.Response, status: int) -> dict[str, Any]:
    assert res.status_int == status, res.body
    assert res.content_type == "application/json"
    error = res.json["error"]
    assert set(error) == {"code", "title", "message"}
    assert error["code"] == status
    return error


# -- malformed bodies ---------------------------------------------------------


def test_malformed_and_wrong_bodies(env: Env, logs) -> None:
    bad_json = [
        b"{bad",
        b'{"name": "x",}',
        b"",
        b"\xff\xfe",
        b'{"name": "\\ud800"}',
        b"NaN",
        b"[1e400]",
    ]
    for body in bad_json:
        res = env.send(
            "POST", "/v2/images", token=env.member, body=body, content_type="application/json"
        )
        assert_api_error(res, 400)
        assert_no_leak(res, body)
        res = env.patch(body)
        assert_api_error(res, 400)
        assert_no_leak(res, body)

    for body in [b"[]", b'"x"', b"42", b"null", b"true"]:
        res = env.send(
            "POST", "/v2/images", token=env.member, body=body, content_type="application/json"
        )
        assert assert_api_error(res, 400)["message"] == "Request body must be a JSON object."
    for body in [b"{}", b'"x"', b"42", b"null", b'{"op": "add"}']:
        res = env.patch(body)
        error = assert_api_error(res, 400)
        assert error["message"] == "Request body must be a JSON array of operation objects."
    for body in [b"[1]", b"[null]", b'[["add", "/x"]]']:
        assert (
            assert_api_error(env.patch(body), 400)["message"] == "Operations must be JSON objects."
        )

    # Unusable Content-Length.
    for length in ("abc", "-5"):
        req = webob.Request.blank(env.path, method="PATCH", headers=env.glance.headers(env.member))
        req.environ.update(env.glance.environ())
        req.environ["wsgi.input"] = io.BytesIO(b"[]")
        req.environ["CONTENT_LENGTH"] = length
        req.environ["CONTENT_TYPE"] = JSON_PATCH
        res = req.get_response(env.glance.app)
        assert 400 <= res.status_int < 500
        assert_no_leak(res)

    assert env.stored() == {**HIDDEN, **VISIBLE}
    assert_logs_clean(logs)


def test_wrong_patch_media_type(env: Env, logs) -> None:
    ops = [{"op": "replace", "path": "/zz_hidden", "value": "x"}]
    for content_type in ("application/json", "application/json-patch+json", "text/plain", None):
        res = env.patch(ops, content_type=content_type)
        error = assert_api_error(res, 415)
        assert res.headers["Accept-Patch"] == f"{JSON_PATCH_DRAFT4}, {JSON_PATCH}"
        assert JSON_PATCH in error["message"]
        assert_no_leak(res, json.dumps(ops))
    # As in Glance: the media type is compared exactly (case included), parameters aside.
    res = env.patch(ops, content_type=JSON_PATCH.upper())
    assert_api_error(res, 415)
    assert res.headers["Accept-Patch"] == f"{JSON_PATCH_DRAFT4}, {JSON_PATCH}"
    res = env.patch(
        [{"op": "add", "path": "/x_owner_b", "value": "b"}],
        content_type=JSON_PATCH + "; charset=UTF-8",
    )
    assert res.status_int == 200, res.body
    assert env.stored()["x_owner_b"] == "b"
    assert env.stored()["zz_hidden"] == HIDDEN["zz_hidden"]
    assert_logs_clean(logs, "zz_hidden")


def test_oversized_bodies(env: Env, logs) -> None:
    big = {**IMAGE, "x_owner_big": "v" * (MAX_BODY + 10)}
    res = env.send("POST", "/v2/images", token=env.member, json_body=big)
    assert assert_api_error(res, 413)["message"] == "Request body is too large."
    res = env.send("POST", "/v2/images", token=env.member, json_body=big, chunked=True)
    assert_api_error(res, 413)
    ops = [{"op": "add", "path": "/x_owner_big", "value": "v" * (MAX_BODY + 10)}]
    assert_api_error(env.patch(ops), 413)
    assert_api_error(env.patch(ops, chunked=True), 413)
    task = {"type": "import", "input": {"image_properties": {"x_owner_big": "v" * MAX_BODY}}}
    assert_api_error(env.send("POST", "/v2/tasks", token=env.member, json_body=task), 413)
    # Nothing of it reached Glance.
    assert not [
        r
        for r in env.glance.seen
        if r["method"] in ("POST", "PATCH") and "x_owner_big" in r["path"]
    ]
    assert env.stored() == {**HIDDEN, **VISIBLE}

    # A small chunked body is read to its end and forwarded with a Content-Length.
    res = env.send(
        "POST", "/v2/images", token=env.member, json_body={**IMAGE, "x_owner_c": "c"}, chunked=True
    )
    assert res.status_int == 201, res.body
    assert env.stored(res.json["id"]) == {"x_owner_c": "c"}
    res = env.patch([{"op": "add", "path": "/x_owner_c", "value": "c"}], chunked=True)
    assert res.status_int == 200, res.body
    assert env.stored()["x_owner_c"] == "c"
    # Chunked without a body at all.
    res = env.send(
        "POST",
        "/v2/images",
        token=env.member,
        body=b"",
        content_type="application/json",
        chunked=True,
    )
    assert_api_error(res, 400)
    assert_logs_clean(logs)


# -- odd JSON pointers and operations -----------------------------------------


def test_odd_patch_documents(env: Env, logs) -> None:
    cases: list[tuple[Any, int]] = [
        ([{"op": "add", "path": "/", "value": "v"}], 403),  # name "" (admin only)
        ([{"op": "add", "path": "//x_owner_q", "value": "v"}], 200),  # Glance: lstrip("/")
        ([{"op": "add", "path": "/x_owner_a/b", "value": "v"}], 400),
        ([{"op": "add", "path": "/zz_hidden/b", "value": "v"}], 400),
        ([{"op": "add", "path": "/x_owner_a//", "value": "v"}], 400),
        ([{"op": "add", "path": "/x_owner_a/", "value": "v"}], 400),
        ([{"op": "add", "path": "/x~2", "value": "v"}], 400),
        ([{"op": "add", "path": "/x_owner_t~", "value": "v"}], 400),
        ([{"op": "add", "path": "x_owner_a", "value": "v"}], 400),
        ([{"op": "add", "path": "", "value": "v"}], 400),
        ([{"op": "add", "path": 5, "value": "v"}], 400),
        ([{"op": "add", "path": None, "value": "v"}], 400),
        ([{"op": "add", "path": ["/x_owner_a"], "value": "v"}], 400),
        ([{"op": "add", "path": "/x_owner_a"}], 400),  # no value
        ([{"op": "replace", "path": "/zz_hidden"}], 400),
        ([{"op": "move", "path": "/x_owner_a", "value": "v"}], 400),
        ([{"op": "test", "path": "/zz_hidden", "value": HIDDEN["zz_hidden"]}], 400),
        ([{"path": "/x_owner_a", "value": "v"}], 400),
        ([{"op": None, "path": "/x_owner_a", "value": "v"}], 400),
        ([{"op": "add", "value": "v"}], 400),
        # Readable but protected: 403; unreadable: 409 whether it exists or not.
        ([{"op": "replace", "path": "/x_ro", "value": "v"}], 403),
        ([{"op": "remove", "path": "/x_nodel"}], 403),
        ([{"op": "replace", "path": "/zz_hidden", "value": "v"}], 409),
        ([{"op": "remove", "path": "/zz_hidden"}], 409),
        ([{"op": "replace", "path": "/zz_nothere", "value": "v"}], 409),
        ([{"op": "add", "path": "/zz_hidden", "value": "v"}], 403),
        # One bad op spoils the whole patch (nothing applied).
        (
            [
                {"op": "add", "path": "/x_owner_z", "value": "v"},
                {"op": "remove", "path": "/zz_hidden"},
            ],
            409,
        ),
        ([], 200),
    ]
    for ops, status in cases:
        res = env.patch(ops)
        assert res.status_int == status, (ops, res.status, res.body)
        if status >= 400:  # all refused by propguard itself, in its JSON shape
            assert_api_error(res, status)
        assert_no_leak(res, json.dumps(ops))
    stored = env.stored()
    assert {k: stored[k] for k in HIDDEN} == HIDDEN
    assert {k: stored[k] for k in VISIBLE} == VISIBLE
    assert stored["x_owner_q"] == "v"
    assert "x_owner_z" not in stored
    # The admin passes propguard; Glance answers the odd ones itself (it even stores a
    # property named "" for an admin), never with a 500.
    for ops in (
        [{"op": "add", "path": "/", "value": "v"}],
        [{"op": "add", "path": "/ ", "value": "v"}],
        [{"op": "remove", "path": "/"}],
        [{"op": "replace", "path": "/zz_nothere", "value": "v"}],
    ):
        res = env.patch(ops, token=env.admin)
        assert res.status_int < 500, (ops, res.status, res.body)

    # Draft 4: exactly one op key.
    for ops, status in [
        ([{"add": "/x_owner_d", "remove": "/zz_hidden"}], 400),
        ([{"add": "/x_owner_d", "replace": "/zz_hidden", "value": "v"}], 400),
        ([{"value": "v"}], 400),
        ([{"replace": "/zz_hidden", "value": "v"}], 409),
        ([{"add": "/x_owner_d", "value": "d"}], 200),
        # Visible and present: Glance's draft-4 "already present", before any right.
        ([{"add": "/x_owner_a", "value": "v"}], 409),
        ([{"add": "/x_ro", "value": "v"}], 409),
        # Hidden and present: no "already present" oracle. No create right: 403 as
        # for an absent one; create but no update right (x_blind): 403 too, so
        # the hidden value is neither revealed nor overwritten.
        ([{"add": "/zz_hidden", "value": "v"}], 403),
        ([{"add": "/x_blind", "value": "mine"}], 403),
    ]:
        res = env.patch(ops, content_type=JSON_PATCH_DRAFT4)
        assert res.status_int == status, (ops, res.status, res.body)
        assert_no_leak(res, json.dumps(ops))
        if status == 409 and "add" in ops[0]:
            name = ops[0]["add"][1:]
            assert assert_api_error(res, 409)["message"] == f"Property {name} already present."
    stored = env.stored()
    assert stored["x_owner_d"] == "d"
    assert stored["x_blind"] == HIDDEN["x_blind"]
    assert stored["x_owner_a"] == VISIBLE["x_owner_a"] and stored["x_ro"] == VISIBLE["x_ro"]
    assert stored["zz_hidden"] == HIDDEN["zz_hidden"]
    assert_logs_clean(logs, "zz_hidden zz_nothere")


def test_pointer_parts_are_checked_as_glance_strips_them(env: Env, logs) -> None:
    # Glance strips each pointer part: "/ x_owner_a " is x_owner_a. Unstripped,
    # " x_owner_a" would fall to [^\s] (everyone): the stripped name must decide.
    res = env.patch([{"op": "add", "path": "/ zz_new ", "value": "v"}])
    assert assert_api_error(res, 403)["message"] == "Attribute 'zz_new' is reserved."
    res = env.patch([{"op": "replace", "path": "/ zz_hidden", "value": "v"}])
    assert assert_api_error(res, 409)["message"] == "Property zz_hidden does not exist."
    res = env.patch([{"op": "remove", "path": "/\tx_nodel "}])
    assert_api_error(res, 403)
    assert env.stored()["x_nodel"] == VISIBLE["x_nodel"]

    # x_none_read: create allowed, unreadable; " x_none_read " is x_none_read.
    res = env.patch([{"op": "replace", "path": "/ x_none_read ", "value": "v"}])
    assert assert_api_error(res, 409)["message"] == "Property x_none_read does not exist."
    res = env.patch([{"op": "add", "path": "/ x_none_read ", "value": "mine"}])
    # Create but no update right over an unreadable one: 403 (not Glance's 500),
    # named as stripped, and the stored value stays.
    assert assert_api_error(res, 403)["message"] == "Attribute 'x_none_read' is reserved."
    assert_no_leak(res, "x_none_read")
    assert env.stored()["x_none_read"] == HIDDEN["x_none_read"]
    assert " x_none_read " not in env.stored()

    res = env.patch([{"op": "add", "path": "/ x_owner_s ", "value": "s"}])
    assert res.status_int == 200, res.body
    assert res.json["x_owner_s"] == "s"

    # "~1" escapes: one name containing "/", checked as that whole name.
    res = env.patch([{"op": "add", "path": "/x_owner_a~1b", "value": "ab"}])
    assert res.status_int == 200, res.body
    assert res.json["x_owner_a/b"] == "ab"
    res = env.patch([{"op": "add", "path": "/zz~1x_owner_a", "value": "v"}])
    assert assert_api_error(res, 403)["message"] == "Attribute 'zz/x_owner_a' is reserved."
    res = env.patch([{"op": "add", "path": "/x_owner_~0~1~01", "value": "t"}])
    assert res.status_int == 200, res.body
    assert env.stored()["x_owner_~/~1"] == "t"
    assert env.stored()["x_owner_a"] == VISIBLE["x_owner_a"]
    assert_logs_clean(logs, "zz_hidden")


def test_duplicate_keys_check_what_glance_applies(env: Env, logs) -> None:
    """JSON with duplicate keys: the last one wins for propguard, and Glance gets what was checked."""
    hidden_last = (
        b'[{"op": "replace", "path": "/x_owner_a", "path": "/zz_hidden", "value": "pwned"}]'
    )
    res = env.patch(hidden_last)
    assert_api_error(res, 409)
    assert_no_leak(res, hidden_last)
    visible_last = b'[{"op": "replace", "path": "/zz_hidden", "path": "/x_owner_a", "value": "ok"}]'
    res = env.patch(visible_last)
    assert res.status_int == 200, res.body
    assert_no_leak(res, visible_last)
    ops_dup = b'[{"op": "add", "op": "remove", "path": "/zz_hidden", "value": "v"}]'
    assert_api_error(env.patch(ops_dup), 409)
    d4 = b'[{"add": "/x_owner_e", "add": "/zz_hidden", "value": "pwned"}]'
    assert_api_error(env.patch(d4, content_type=JSON_PATCH_DRAFT4), 403)
    value_dup = b'[{"op": "add", "path": "/x_owner_f", "value": "first", "value": "second"}]'
    assert env.patch(value_dup).status_int == 200
    post_dup = b'{"name": "d", "zz_hidden": "x", "x_owner_g": "g", "zz_hidden": "y"}'
    res = env.send(
        "POST", "/v2/images", token=env.member, body=post_dup, content_type="application/json"
    )
    assert_api_error(res, 403)
    stored = env.stored()
    assert stored["zz_hidden"] == HIDDEN["zz_hidden"]
    assert stored["x_owner_a"] == "ok"
    assert stored["x_owner_f"] == "second"
    assert "x_owner_e" not in stored
    assert "pwned" not in stored.values()
    assert_logs_clean(logs, "zz_hidden")


def test_unicode_long_names_and_odd_values(env: Env, logs) -> None:
    res = env.send("POST", "/v2/images", token=env.member, json_body={**IMAGE, "x_owner_🙂": "v"})
    assert res.status_int == 400, res.body  # Glance: "Property names can't contain 4 byte unicode."
    uni = "x_owner_é中"
    res = env.send("POST", "/v2/images", token=env.member, json_body={**IMAGE, uni: "ü"})
    assert res.status_int == 201, res.body
    assert res.json[uni] == "ü"
    assert env.stored(res.json["id"]) == {uni: "ü"}
    res = env.send("POST", "/v2/images", token=env.member, json_body={**IMAGE, "zz_ünï": "v"})
    assert assert_api_error(res, 403)["message"] == "Attribute 'zz_ünï' is reserved."
    res = env.patch([{"op": "add", "path": "/" + uni, "value": "ü"}])
    assert res.status_int == 200 and res.json[uni] == "ü"

    long_ok = "x_owner_" + "l" * 292
    long_hidden = "zz_" + "h" * 297
    assert len(long_ok) == len(long_hidden) == 300
    res = env.send("POST", "/v2/images", token=env.member, json_body={**IMAGE, long_ok: "v"})
    assert res.status_int == 400, (
        res.body
    )  # Glance: "Custom property should not be greater than 255"
    # Over 255 characters is a 400 before any protection check (Glance's POST
    # check; on PATCH Glance has none and a real database column would fail),
    # so the answer is the same whether the name is readable or not.
    too_long = "Custom property should not be greater than 255 characters."
    res = env.send("POST", "/v2/images", token=env.member, json_body={**IMAGE, long_hidden: "v"})
    assert assert_api_error(res, 400)["message"] == too_long
    for op in ("add", "replace", "remove"):
        for name in (long_hidden, long_ok):
            change = {"op": op, "path": "/" + name}
            if op != "remove":
                change["value"] = "v"
            res = env.patch([change])
            assert assert_api_error(res, 400)["message"] == too_long, (op, name)

    for value in (2**64, -(2**63) - 1, 10**30, 1.5, True, None, {"a": 1}, ["x"]):
        body = json.dumps([{"op": "add", "path": "/x_owner_n", "value": value}]).encode()
        res = env.patch(body)
        assert res.status_int == 400, (value, res.status, res.body)  # Glance: not a string
        res = env.send(
            "POST", "/v2/images", token=env.member, json_body={**IMAGE, "x_owner_n": value}
        )
        assert res.status_int == 400, (value, res.status, res.body)
        res = env.send(
            "POST", "/v2/images", token=env.member, json_body={**IMAGE, "min_ram": value}
        )
        assert res.status_int == 400, (value, res.status, res.body)
    res = env.send(
        "POST", "/v2/images", token=env.member, json_body={**IMAGE, "x_owner_n": "\u0000"}
    )
    assert res.status_int < 500
    stored = env.stored()
    assert {k: stored[k] for k in HIDDEN} == HIDDEN
    assert_logs_clean(logs)


# -- identity -----------------------------------------------------------------

SPOOF = {
    "X-Roles": "admin,member",
    "X-Service-Roles": "service,svc,admin",
    "X-Identity-Status": "Confirmed",
    "X-Service-Identity-Status": "Confirmed",
    "X-Is-Admin-Project": "True",
    "OpenStack-System-Scope": "all",
}


def test_spoofed_identity_headers_behind_auth_token(env: Env, logs) -> None:
    res = env.send("GET", env.path, token=env.member, headers=SPOOF)
    assert res.status_int == 200
    assert set(res.json) & set(HIDDEN) == set()
    assert_no_leak(res)
    res = env.send(
        "POST", "/v2/images", token=env.member, headers=SPOOF, json_body={**IMAGE, "zz_x": "v"}
    )
    assert_api_error(res, 403)
    res = env.send(
        "POST", "/v2/images", token=env.member, headers=SPOOF, json_body={**IMAGE, "svc_only": "v"}
    )
    assert_api_error(res, 403)
    res = env.send(
        "GET", "/v2/images?zz_hidden=" + HIDDEN["zz_hidden"], token=env.member, headers=SPOOF
    )
    assert res.json["images"] == []
    # The real thing: a service token with svc does what the spoofed headers could not.
    svc = env.glance.service_token(["service", "svc"])
    res = env.send(
        "POST", "/v2/images", token=env.member, service=svc, json_body={**IMAGE, "svc_only": "v"}
    )
    assert res.status_int == 201, res.body
    # No token at all + spoofed headers: anonymous for propguard, 401 from Glance.
    res = env.send("POST", "/v2/images", headers=SPOOF, json_body={**IMAGE, "zz_x": "v"})
    assert_api_error(res, 403)
    assert env.send("GET", env.path, headers=SPOOF).status_int == 401
    assert_logs_clean(logs, "zz_hidden")


def _no_auth_pipelines(glance: InProcessGlance, rules_file: str) -> dict[str, Any]:
    """Glance's own app behind propguard WITHOUT auth_token, with and without trust."""
    text = Path(glance.paste_file).read_text()
    text += f"""
[pipeline:noauth]
pipeline = propguard context rootapp

[pipeline:noauth-trusting]
pipeline = propguard-trusting context rootapp

[filter:propguard-trusting]
paste.filter_factory = propguard.middleware:filter_factory
rules_file = {rules_file}
reload_on_sighup = false
trust_identity_headers = true
"""
    path = Path(glance.workdir) / "noauth-paste.ini"
    path.write_text(text)
    return {
        name: glance_config.load_paste_app(name, conf_file=str(path))
        for name in ("noauth", "noauth-trusting")
    }


def test_without_auth_token_identity_headers_are_not_trusted(env: Env, logs) -> None:
    apps = _no_auth_pipelines(env.glance, propguard_conf(env.glance)["rules_file"])
    # (no OpenStack-System-Scope here: Glance would take a system-scoped admin
    # as project-less, and the project's image would be a 404)
    spoof = {
        **{k: v for k, v in SPOOF.items() if k != "OpenStack-System-Scope"},
        "X-Project-Id": "demo-project-id",
        "X-User-Id": "mallory",
    }

    def call(app, method, path, json_body=None):
        req = webob.Request.blank(path, base_url=env.glance.base_url, method=method, headers=spoof)
        if json_body is not None:
            req.body = json.dumps(json_body).encode()
            req.content_type = "application/json"
        return req.get_response(app)

    # Glance's context filter trusts the headers (that is what auth_token is for);
    # propguard, with no auth_token before it, treats the caller as anonymous.
    res = call(apps["noauth"], "GET", env.path)
    assert res.status_int == 200
    assert set(res.json) & (set(HIDDEN) | set(VISIBLE)) == set()
    assert_no_leak(res)
    res = call(apps["noauth"], "POST", "/v2/images", {**IMAGE, "x_owner_a": "v"})
    assert_api_error(res, 403)
    res = call(apps["noauth"], "GET", "/v2/images?x_owner_a=a")
    assert res.json["images"] == []

    # trust_identity_headers = true: a gateway that validated them; honoured.
    res = call(apps["noauth-trusting"], "GET", env.path)
    assert res.status_int == 200
    # admin by the headers (x_none_read: read = ! for everyone)
    assert {k: res.json.get(k) for k in HIDDEN} == {**HIDDEN, "x_none_read": None}
    res = call(
        apps["noauth-trusting"], "POST", "/v2/images", {**IMAGE, "zz_t": "v", "svc_only": "s"}
    )
    assert res.status_int == 201, res.body
    assert res.json["zz_t"] == "v"
    assert_logs_clean(logs, "zz_hidden x_blind x_none_read")


# -- image data ---------------------------------------------------------------


class CountingInput(io.RawIOBase):
    """A wsgi.input that counts the bytes read from it."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self._data.readinto(buffer)
        self.bytes_read += n
        return n


_PROBE_MODULE = "propguard_test_input_probe"
_PROBE_SEEN: list[tuple[str, int]] = []


def _input_probe_factory(global_conf, **local_conf):
    """Paste filter (placed right after propguard): how much of the upload was read so far."""

    def _filter(app):
        def _probe(environ, start_response):
            stream = environ.get("wsgi.input")
            if isinstance(stream, CountingInput):
                _PROBE_SEEN.append((environ["PATH_INFO"], stream.bytes_read))
            return app(environ, start_response)

        return _probe

    return _filter


@pytest.fixture
def input_probe() -> Iterator[list[tuple[str, int]]]:
    module = types.ModuleType(_PROBE_MODULE)
    module.factory = _input_probe_factory
    sys.modules[_PROBE_MODULE] = module
    _PROBE_SEEN.clear()
    yield _PROBE_SEEN
    del sys.modules[_PROBE_MODULE]


def test_image_data_streams_through_untouched(guarded_glance, input_probe, logs) -> None:
    glance = guarded_glance(RULES, filters_after=[("probe", f"{_PROBE_MODULE}:factory", {})])
    env = Env(glance)
    data = os.urandom(3 * 1024 * 1024 + 17)
    stream = CountingInput(data)
    req = webob.Request.blank(
        env.path + "/file",
        base_url=glance.base_url,
        method="PUT",
        headers=glance.headers(env.member),
    )
    req.environ.update(glance.environ())
    req.environ["wsgi.input"] = stream
    req.environ["CONTENT_LENGTH"] = str(len(data))
    req.content_type = "application/octet-stream"
    res = req.get_response(glance.app)
    assert res.status_int == 204, res.body
    # propguard did not read (or buffer) a byte of it; Glance read all of it.
    assert input_probe == [(env.path + "/file", 0)]
    assert stream.bytes_read == len(data)

    res = env.send("GET", env.path + "/file", token=env.member)
    assert res.status_int == 200
    assert res.content_type == "application/octet-stream"
    assert hashlib.sha256(res.body).digest() == hashlib.sha256(data).digest()
    assert len(res.body) == len(data)
    image = env.send("GET", env.path, token=env.member).json
    assert image["status"] == "active" and image["size"] == len(data)
    assert set(image) & set(HIDDEN) == set()
    assert_logs_clean(logs)


@pytest.fixture
def show_locations() -> Iterator[None]:
    """Glance's (deprecated) options that put locations and direct_url in image JSON."""
    conf = cfg.CONF
    conf.set_override("show_multiple_locations", True)
    conf.set_override("show_image_direct_url", True)
    yield
    conf.clear_override("show_multiple_locations")
    conf.clear_override("show_image_direct_url")


def test_protected_core_attributes(guarded_glance, logs) -> None:
    env = start(guarded_glance, protect_core_attributes="locations,direct_url")
    conf = cfg.CONF
    conf.set_override("show_multiple_locations", True)
    conf.set_override("show_image_direct_url", True)
    try:
        data = b"image-bytes" * 100
        res = env.send(
            "PUT",
            env.path + "/file",
            token=env.admin,
            body=data,
            content_type="application/octet-stream",
        )
        assert res.status_int == 204, res.body

        admin_view = env.send("GET", env.path, token=env.admin).json
        location_url = admin_view["direct_url"]
        assert location_url.startswith("file://")
        assert admin_view["locations"][0]["url"] == location_url

        member_view = env.send("GET", env.path, token=env.member)
        assert member_view.status_int == 200
        assert "locations" not in member_view.json and "direct_url" not in member_view.json
        assert location_url.encode() not in member_view.body
        listing = env.send("GET", "/v2/images", token=env.member)
        assert location_url.encode() not in listing.body
        assert all("locations" not in i and "direct_url" not in i for i in listing.json["images"])

        svc = env.glance.service_token(["service"])
        relayed = env.send("GET", env.path, token=env.member, service=svc).json
        assert relayed["direct_url"] == location_url
        assert relayed["locations"] == admin_view["locations"]

        # The location API itself: read is "read" of locations.
        res = env.send("GET", env.path + "/locations", token=env.member)
        assert_api_error(res, 403)
        # A PATCH of locations by a member: "update"/"create" of locations.
        res = env.patch([{"op": "replace", "path": "/locations", "value": []}])
        assert_api_error(res, 403)
        res = env.patch(
            [{"op": "add", "path": "/locations/-", "value": {"url": "file:///x", "metadata": {}}}]
        )
        assert_api_error(res, 403)
        # A member's PATCH elsewhere answers without the protected attributes.
        res = env.patch([{"op": "add", "path": "/x_owner_l", "value": "l"}])
        assert res.status_int == 200
        assert "locations" not in res.json and "direct_url" not in res.json
        assert location_url.encode() not in res.body
    finally:
        conf.clear_override("show_multiple_locations")
        conf.clear_override("show_image_direct_url")
    assert_logs_clean(logs)


def test_task_import_properties_are_create_checked(env: Env, logs) -> None:
    def task(props: Any) -> dict[str, Any]:
        return {
            "type": "import",
            "input": {
                "import_from": "http://images.invalid/cirros.img",
                "import_from_format": "raw",
                "image_properties": props,
            },
        }

    before = len(env.glance.seen)
    res = env.send("POST", "/v2/tasks", token=env.member, json_body=task({**IMAGE, "zz_x": "v"}))
    assert assert_api_error(res, 403)["message"] == "Attribute 'zz_x' is reserved."
    res = env.send(
        "POST", "/v2/tasks", token=env.member, json_body=task({"x_none_read": "v", "svc_only": "s"})
    )
    assert assert_api_error(res, 403)["message"] == "Attribute 'svc_only' is reserved."
    res = env.send("POST", "/v2/tasks", token=env.member, json_body=task(["zz_x"]))
    assert_api_error(res, 400)
    assert [r for r in env.glance.seen[before:] if r["path"].startswith("/v2/tasks")] == []

    # Allowed properties reach Glance, which applies its own tasks policy (admin only).
    res = env.send(
        "POST", "/v2/tasks", token=env.member, json_body=task({**IMAGE, "x_owner_t": "t"})
    )
    assert res.status_int == 403  # Glance's tasks_api_access, not propguard
    assert [r["path"] for r in env.glance.seen[before:]] == ["/v2/tasks"]
    res = env.send(
        "POST", "/v2/tasks", token=env.member, body=b"{bad", content_type="application/json"
    )
    assert_api_error(res, 400)
    assert_logs_clean(logs)


# -- requests Glance routes differently from how they look ---------------------


def _raw(env: Env, method: str, path_info: str, query: str = "", **kw: Any) -> webob.Response:
    """A request whose PATH_INFO is set verbatim (as a server would pass it on)."""
    req = webob.Request.blank("/", base_url=env.glance.base_url, method=method)
    req.headers.update(env.glance.headers(kw.pop("token", env.member)))
    req.environ["PATH_INFO"] = path_info
    req.environ["QUERY_STRING"] = query
    if "body" in kw:
        req.body = kw.pop("body")
        req.content_type = kw.pop("content_type")
    assert not kw
    return req.get_response(env.glance.app)


def test_paths_glance_normalises_are_checked(env: Env, logs) -> None:
    """paste.urlmap collapses "//" and drops an absolute-form "http://host" prefix."""
    image_paths = [
        f"/v2//images/{env.image_id}",
        f"//v2/images/{env.image_id}",
        f"/v2/images//{env.image_id}",
        f"http://glance.example/v2/images/{env.image_id}",
        f"https://elsewhere//v2//images/{env.image_id}",
    ]
    for path in image_paths:
        res = _raw(env, "GET", path)
        assert res.status_int == 200, (path, res.status)
        assert res.json["id"] == env.image_id
        assert set(res.json) & set(HIDDEN) == set(), path
        assert_no_leak(res)
        ops = json.dumps([{"op": "replace", "path": "/zz_hidden", "value": "pwned"}]).encode()
        res = _raw(env, "PATCH", path, body=ops, content_type=JSON_PATCH)
        assert assert_api_error(res, 409)["message"] == "Property zz_hidden does not exist.", path
    create = json.dumps({**IMAGE, "zz_new": "v"}).encode()
    for path in ["/v2//images", "//v2/images", "http://glance.example/v2/images", "/v2///images"]:
        res = _raw(env, "POST", path, body=create, content_type="application/json")
        assert_api_error(res, 403)
        res = _raw(env, "GET", path, query="zz_hidden=" + HIDDEN["zz_hidden"])
        assert res.status_int == 200 and res.json["images"] == [], path
        res = _raw(env, "GET", path)
        assert [i["id"] for i in res.json["images"]] == [env.image_id]
        assert_no_leak(res)
    assert env.stored() == {**HIDDEN, **VISIBLE}
    assert_logs_clean(logs)


def test_method_override_is_refused(env: Env, logs) -> None:
    """Glance's router honours ``?_method=`` (and form ``_method``): a checked POST could be a GET."""
    patch_ops = json.dumps([{"op": "replace", "path": "/zz_hidden", "value": "pwned"}]).encode()
    create = json.dumps({**IMAGE, "zz_new": "v"}).encode()
    cases = [
        ("POST", env.path, "_method=GET", None, None),
        ("PUT", env.path, "_method=get", None, None),
        ("DELETE", env.path, "x=1&_method=GET", None, None),
        ("GET", env.path, "_method=PATCH", patch_ops, JSON_PATCH),
        ("POST", env.path, "_method=PATCH", patch_ops, JSON_PATCH),
        ("PUT", "/v2/images", "_method=POST", create, "application/json"),
        ("GET", "/v2/images", "_method=POST", create, "application/json"),
        ("POST", "/v2/images", "_method=GET&zz_hidden=" + HIDDEN["zz_hidden"], None, None),
        (
            "POST",
            "/v2/images",
            "",
            b'{"x_owner_a": "&_method=GET&"}',
            "application/x-www-form-urlencoded",
        ),
        ("POST", env.path, "", b"_method=GET", "application/x-www-form-urlencoded; charset=utf-8"),
        ("POST", "/v2/tasks", "", b"_method=GET", "multipart/form-data; boundary=x"),
    ]
    for method, path, query, body, content_type in cases:
        kw = {} if body is None else {"body": body, "content_type": content_type}
        res = _raw(env, method, path, query, **kw)
        error = assert_api_error(res, 400)
        assert error["message"] == "Method override (_method) is not supported.", (method, query)
        assert_no_leak(res, query)
    # Routes looks for the literal "_method" in the raw query: an encoded one is
    # no override for Glance either (a POST of an image stays a POST: 405).
    res = _raw(env, "POST", env.path, "%5Fmethod=GET")
    assert res.status_int == 405
    assert_no_leak(res)
    # "_method" as part of another name is not an override.
    res = _raw(env, "GET", "/v2/images", "x_owner_method=1")
    assert res.status_int == 200 and res.json["images"] == []
    assert env.stored() == {**HIDDEN, **VISIBLE}
    listing = env.send("GET", "/v2/images", token=env.admin).json["images"]
    assert [i["id"] for i in listing] == [env.image_id]  # nothing was created
    assert_logs_clean(logs)


class ShortReads(io.RawIOBase):
    """A wsgi.input whose ``read(n)`` returns at most 7 bytes (allowed for WSGI servers)."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self._data.read(min(len(buffer), 7))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def test_short_reads_of_the_request_body(env: Env, logs) -> None:
    body = json.dumps({**IMAGE, "x_owner_r": "r" * 300}).encode()
    ops = json.dumps([{"op": "add", "path": "/x_owner_r", "value": "p" * 300}]).encode()
    for chunked in (False, True):
        for method, path, data, content_type in (
            ("POST", "/v2/images", body, "application/json"),
            ("PATCH", env.path, ops, JSON_PATCH),
        ):
            req = webob.Request.blank(path, method=method, headers=env.glance.headers(env.member))
            req.environ.update(env.glance.environ())
            req.environ["wsgi.input"] = ShortReads(data)
            req.environ["CONTENT_TYPE"] = content_type
            if chunked:
                req.environ["wsgi.input_terminated"] = True
            else:
                req.environ["CONTENT_LENGTH"] = str(len(data))
            res = req.get_response(env.glance.app)
            assert res.status_int in (200, 201), (chunked, method, res.body)
            assert res.json["x_owner_r"] in ("r" * 300, "p" * 300)
    assert env.stored()["x_owner_r"] == "p" * 300
    # Too large, even when it arrives in small pieces.
    big = json.dumps({**IMAGE, "x_owner_r": "r" * MAX_BODY}).encode()
    req = webob.Request.blank("/v2/images", method="POST", headers=env.glance.headers(env.member))
    req.environ.update(env.glance.environ())
    req.environ["wsgi.input"] = ShortReads(big)
    req.environ["CONTENT_TYPE"] = "application/json"
    req.environ["wsgi.input_terminated"] = True
    assert_api_error(req.get_response(env.glance.app), 413)
    assert_logs_clean(logs)


@pytest.fixture
def property_quota() -> Iterator[None]:
    cfg.CONF.set_override("image_property_quota", 8)
    yield
    cfg.CONF.clear_override("image_property_quota")


def test_property_quota_answer_does_not_count_hidden_properties(
    env: Env, property_quota, logs
) -> None:
    """Glance's 413 says "Attempted: N, Maximum: M" with N counting hidden properties."""
    # The admin's image holds 3 hidden + 3 visible properties; the quota is 8.
    ok = env.patch([{"op": "add", "path": "/x_owner_b", "value": "b"}])
    assert ok.status_int == 200, ok.body
    over = env.patch(
        [
            {"op": "add", "path": "/x_owner_c", "value": "c"},
            {"op": "add", "path": "/x_owner_d", "value": "d"},
        ]
    )
    error = assert_api_error(over, 413)
    assert not any(ch.isdigit() for ch in error["message"]), error
    assert "x_owner_c" not in env.stored()


def test_invalid_utf8_in_the_list_query_is_a_400(env: Env, logs) -> None:
    for query in ("%ff=1", "zz_hidden=%ff", "x_owner_a=%fe%ff"):
        res = env.send("GET", f"/v2/images?{query}", token=env.member)
        assert assert_api_error(res, 400)["message"] == "The request is not valid UTF-8."
    assert_logs_clean(logs)


def test_list_keys_glance_reads_as_columns_or_ranges(env: Env, logs) -> None:
    """Glance's database layer reads ``<column>_min``/``_max`` as ranges and a
    relationship name as a column: neither is a property filter. A range on
    something that is not a column, or a relationship, is Glance's 500: a 400."""
    for query in ("min_ram_min=0", "min_ram_max=0", "min_disk_max=0", "virtual_size_max=0"):
        res = env.send("GET", f"/v2/images?{query}", token=env.member)
        assert res.status_int == 200, (query, res.body)
        ids = [i["id"] for i in res.json["images"]]
        # No data uploaded: virtual_size is NULL, so only the min_* ranges match.
        assert ids == ([] if query.startswith("virtual") else [env.image_id]), query
    for query in (
        "properties=x",
        "members=x",
        "tags=x",
        "locations=x",
        "x_owner_a_min=1",
        "zz_hidden_max=1",
    ):
        for token in (env.member, env.admin):
            res = env.send("GET", f"/v2/images?{query}", token=token)
            key = query.split("=")[0]
            assert assert_api_error(res, 400)["message"] == f"Unsupported filter: {key}"
    assert_logs_clean(logs)


def test_hidden_filter_keeps_glances_limit_validation(env: Env, logs) -> None:
    """With a filter on a hidden property Glance still validates the query."""
    for query, status in (
        ("limit=abc&zz_hidden=1", 400),
        ("limit=-1&zz_hidden=1", 400),
        ("limit=5&zz_hidden=1", 200),
        ("limit=0&zz_hidden=HIDDEN-VALUE-1", 200),
    ):
        res = env.send("GET", f"/v2/images?{query}", token=env.member)
        assert res.status_int == status, (query, res.status, res.body)
        if status == 200:
            assert res.json["images"] == []
    assert_logs_clean(logs)


@pytest.fixture
def tasks_stay_pending(monkeypatch) -> None:
    """Create legacy import tasks without running them.

    Glance would validate the URI and start the taskflow import at once, which
    fetches ``import_from`` over the network; this test is about what the
    task's JSON shows, so the executor is switched off (the one stand-in here).
    """
    import glance.async_
    import glance.async_.taskflow_executor
    import glance.common.scripts.utils

    monkeypatch.setattr(glance.common.scripts.utils, "validate_legacy_import_from_uri", str)
    for executor in (glance.async_.TaskExecutor, glance.async_.taskflow_executor.TaskExecutor):
        monkeypatch.setattr(executor, "begin_processing", lambda self, task_id: None)


def test_task_json_hides_unreadable_image_properties(
    guarded_glance, tmp_path, tasks_stay_pending, logs
) -> None:
    """``GET /v2/tasks/{id}`` and the create answer show ``input.image_properties``
    to whoever may read the task (with ``tasks_api_access`` opened to members,
    as legacy-import clouds do), not only to their owner."""
    policy = tmp_path / "policy.yaml"
    policy.write_text('"tasks_api_access": "role:member"\n')
    glance = guarded_glance(RULES, glance_policy_file=str(policy))
    env = Env(glance)
    props = {**IMAGE, "x_none_read": "TASK-NONE-READ", "zz_x": "TASK-ADMIN-ONLY", "x_owner_t": "t"}
    task = {
        "type": "import",
        "input": {
            "import_from": "http://images.invalid/cirros.img",
            "import_from_format": "raw",
            "image_properties": props,
        },
    }
    created = env.send("POST", "/v2/tasks", token=env.admin, json_body=task)
    assert created.status_int == 201, created.body
    shown = created.json["input"]["image_properties"]
    assert "x_none_read" not in shown and shown["zz_x"] == "TASK-ADMIN-ONLY"
    path = f"/v2/tasks/{created.json['id']}"
    by_admin = env.send("GET", path, token=env.admin)
    assert by_admin.status_int == 200, by_admin.body
    assert by_admin.json["input"]["image_properties"] == {
        k: v for k, v in props.items() if k != "x_none_read"
    }
    by_member = env.send("GET", path, token=env.member)
    assert by_member.status_int == 200, by_member.body
    assert by_member.json["input"]["image_properties"] == {
        k: v for k, v in props.items() if k not in ("x_none_read", "zz_x")
    }
    assert b"TASK-" not in by_member.body
    assert_logs_clean(logs, "TASK-NONE-READ TASK-ADMIN-ONLY")


def test_glance_download_import_is_refused_unless_allowed(env: Env, logs) -> None:
    """glance-download copies properties (hw_*, trait:*, os_distro ...) from another
    region's image past any check: 403 unless allow_glance_download."""
    path = f"{env.path}/import"
    body = {
        "method": {
            "name": "glance-download",
            "glance_image_id": "00000000-0000-0000-0000-000000000001",
            "glance_region": "RegionTwo",
        }
    }
    before = len(env.glance.seen)
    res = env.send("POST", path, token=env.admin, json_body=body)
    assert "glance-download" in assert_api_error(res, 403)["message"]
    assert [r for r in env.glance.seen[before:] if r["path"].endswith("/import")] == []
    # Other methods go on to Glance, which answers as usual (here: no data staged).
    res = env.send("POST", path, token=env.admin, json_body={"method": {"name": "glance-direct"}})
    assert res.status_int == 409, res.body
    assert [r["path"] for r in env.glance.seen[before:]] == [path]
    res = env.send("POST", path, token=env.admin, body=b"{bad", content_type="application/json")
    assert_api_error(res, 400)
    assert_logs_clean(logs)


def test_glance_download_passes_when_allowed(guarded_glance, logs) -> None:
    env = start(guarded_glance, allow_glance_download="true")
    body = {"method": {"name": "glance-download", "glance_image_id": "x", "glance_region": "R2"}}
    before = len(env.glance.seen)
    res = env.send("POST", f"{env.path}/import", token=env.admin, json_body=body)
    assert res.status_int != 403 or "glance-download" not in res.text
    assert [r["path"] for r in env.glance.seen[before:]] == [f"{env.path}/import"]


class _RaceBelow:
    """Below propguard: once armed, an admin adds ``img_signature`` just before
    the next PATCH reaches Glance (someone else's write between propguard's
    read of the image and the caller's PATCH)."""

    def __init__(self, glance: InProcessGlance, admin_token: str) -> None:
        self.glance = glance
        self.admin_token = admin_token
        self.armed = False

    def __call__(self, environ: dict, start_response: Any) -> Any:
        if self.armed and environ["REQUEST_METHOD"] == "PATCH":
            self.armed = False
            raced = webob.Request.blank(
                environ["PATH_INFO"],
                method="PATCH",
                headers={
                    **self.glance.headers(self.admin_token),
                    "Content-Type": JSON_PATCH,
                },
            )
            raced.body = b'[{"op": "add", "path": "/img_signature", "value": "RACED"}]'
            assert raced.get_response(self.glance.app).status_int == 200
        return self.glance.app(environ, start_response)


def test_create_only_add_does_not_overwrite_a_property_created_meanwhile(
    glance_factory, logs
) -> None:
    """production.conf: members may set img_signature once, never update it. If it
    appears between propguard's GET of the image and the PATCH, the member's add
    must fail (Glance's draft-4 "already present"), not overwrite it."""
    glance = glance_factory()
    admin_token = admin(glance)
    member_token = member(glance)
    race = _RaceBelow(glance, admin_token)
    options = opts.resolve(
        {
            "rules_file": str(Path(__file__).parents[2] / "policies" / "production.conf"),
            "trust_identity_headers": "true",  # the real auth_token runs below, in Glance's pipeline
            "reload_on_sighup": "false",
            "name_collation": "binary",  # built outside Glance's pipeline; its sqlite compares exactly
        },
        cfg.ConfigOpts(),
    )
    guarded = PropertyProtectionFilter(race, options)
    identity = {
        "X-Identity-Status": "Confirmed",
        "X-Roles": "member,reader",
        "X-User-Id": "u",
        "X-Project-Id": "p",
    }

    def member_patch(image_id: str, ops: bytes) -> webob.Response:
        req = webob.Request.blank(
            f"/v2/images/{image_id}",
            method="PATCH",
            headers={
                **glance.headers(member_token),
                **identity,
                "Content-Type": JSON_PATCH,
            },
        )
        req.body = ops
        return req.get_response(guarded)

    def new_image() -> str:
        res = glance.request("POST", "/v2/images", headers=glance.headers(member_token), json=IMAGE)
        assert res.status_int == 201, res.body
        return res.json["id"]

    add = b'[{"op": "add", "path": "/img_signature", "value": "MINE"}]'
    # No race: the add is a create and succeeds (sent to Glance as draft 4).
    calm = new_image()
    res = member_patch(calm, add)
    assert res.status_int == 200, res.body
    assert res.json["img_signature"] == "MINE"
    # Race: the property appears after propguard's GET; Glance refuses the add.
    raced = new_image()
    race.armed = True
    res = member_patch(raced, add)
    assert res.status_int == 409, res.body
    assert b"already present" in res.body
    stored = glance.request("GET", f"/v2/images/{raced}", headers=glance.headers(admin_token)).json
    assert stored["img_signature"] == "RACED"
    # A patch that also needs draft 10's add-overwrites (a core attribute) keeps draft 10.
    mixed = b'[{"op": "add", "path": "/name", "value": "n2"}, ' + add[1:]
    res = member_patch(new_image(), mixed)
    assert res.status_int == 200, res.body
    assert (res.json["name"], res.json["img_signature"]) == ("n2", "MINE")


def test_bodies_are_always_rewritten_so_their_shape_tells_nothing(env: Env, logs) -> None:
    """Glance writes JSON with ``json.dumps`` spacing, propguard with orjson's: if
    only bodies with something hidden were rewritten, the spacing would tell."""
    plain = env.send("POST", "/v2/images", token=env.member, json_body={**IMAGE, "x_owner_p": "p"})
    assert plain.status_int == 201, plain.body
    for path in (
        env.path,
        f"/v2/images/{plain.json['id']}",
        "/v2/images",
        "/v2/images?x_owner_p=p",
    ):
        for token in (env.member, env.admin):
            res = env.send("GET", path, token=token)
            assert res.status_int == 200, res.body
            assert b'": ' not in res.body and b", " not in res.body, (path, res.body[:200])


def test_list_filters_on_schema_attributes_match_nothing(env: Env, logs) -> None:
    """``file``, ``self``, ``schema``, ``stores``, ``direct_url`` are no columns:
    Glance runs them as property filters, which a case-insensitive collation
    would match against e.g. a hidden ``File``. No property can have these
    names, so they match nothing."""
    for key in ("file", "self", "schema", "stores", "direct_url"):
        before = len(env.glance.seen)
        res = env.send("GET", f"/v2/images?{key}=x", token=env.member)
        assert res.status_int == 200, res.body
        assert res.json["images"] == []
        (probe,) = [r["path"] for r in env.glance.seen[before:] if r["method"] == "GET"]
        assert probe == "/v2/images?limit=0", probe


def test_repeated_list_parameters(env: Env, logs) -> None:
    """Glance takes the first limit/marker/member_status/sort and runs the other
    copies as property filters (an unchecked oracle): 400. A repeated property
    filter counts with its last value, as in Glance's database layer."""
    for key, value in (
        ("limit", "5"),
        ("marker", env.image_id),
        ("member_status", "all"),
        ("sort", "name:asc"),
    ):
        res = env.send("GET", f"/v2/images?{key}={value}&{key}={value}", token=env.member)
        assert assert_api_error(res, 400)["message"] == f"Parameter {key} may be given only once."
    res = env.send("GET", "/v2/images?x_owner_a=nope&x_owner_a=a", token=env.member)
    assert [i["id"] for i in res.json["images"]] == [env.image_id]
    res = env.send("GET", "/v2/images?x_owner_a=a&x_owner_a=nope", token=env.member)
    assert res.json["images"] == []
    assert_logs_clean(logs)
