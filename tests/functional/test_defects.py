"""Each Glance 33.0.0 defect of the reference report (section 3.8, D1-D11) shown fixed by propguard.

Why: these defects are the reason propguard exists. Every test runs the real
pipeline (keystonemiddleware ``auth_token`` with AuthTokenFixture tokens, a
real in-process Glance 33 with its sqlite DB); where it makes the point
clearer, the same request is first sent to Glance with its NATIVE property
protections (same rules) to show the defect, then through propguard (Glance's
protections off) to show the fix.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from functional_rules import ADMIN_CATCH_ALL, REFERENCE_2_4_SECTIONS
from glance_api import IMAGE, admin, member, patch, stored_properties

from propguard.inprocess import InProcessGlance
from propguard.middleware import filter_factory
from propguard.rules import RulesError

pytestmark = pytest.mark.glance

#: The rules of reference section 2.4 (+ [svc_only] of 2.9), propguard strict spelling.
RULES = (
    REFERENCE_2_4_SECTIONS
    + """\
[svc_only]
create = admin,service:svc
read = admin,member,service:svc
update = admin,service:svc
delete = admin,service:svc

"""
    + ADMIN_CATCH_ALL
)

#: The same with Glance's spelling of [svc_only] (plain ``svc``): what Glance
#: natively understands, and what propguard's ``union`` mode is for.
RULES_PLAIN_SVC = RULES.replace("service:svc", "svc")
assert RULES_PLAIN_SVC.count("= admin,svc") == 3


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def admin_image(app, glance, **props: str) -> str:
    res = app.post_json(
        "/v2/images", {**IMAGE, **props}, headers=glance.headers(admin(glance)), status=201
    )
    return res.json["id"]


# -- D1: a member's PATCH of /name deletes what the member cannot read --------


def test_d1_patch_of_name_keeps_hidden_properties(native_glance, guarded_glance) -> None:
    props = {"foo": "adminonly", "x_ro": "ro", "x_owner_a": "a"}
    name_patch = [{"op": "replace", "path": "/name", "value": "renamed"}]

    native = native_glance(RULES_PLAIN_SVC)
    app = native.webtest_app()
    image_id = admin_image(app, native, **props)
    patch(app, native, image_id, name_patch, member(native), status=200)
    assert "foo" not in stored_properties(native, image_id)  # the defect: data loss
    native.stop()

    guarded = guarded_glance(RULES)
    app = guarded.webtest_app()
    image_id = admin_image(app, guarded, **props)
    res = patch(app, guarded, image_id, name_patch, member(guarded), status=200)
    assert res.json["name"] == "renamed"
    assert "foo" not in res.json  # still hidden from the member
    assert res.json["x_ro"] == "ro" and res.json["x_owner_a"] == "a"
    assert stored_properties(guarded, image_id) == props
    seen_by_admin = app.get(
        f"/v2/images/{image_id}", headers=guarded.headers(admin(guarded)), status=200
    ).json
    assert seen_by_admin["foo"] == "adminonly"
    assert seen_by_admin["name"] == "renamed"


# -- D2: the list filter as a value oracle ------------------------------------


def test_d2_list_filter_on_hidden_property_is_no_oracle(native_glance, guarded_glance) -> None:
    native = native_glance(RULES_PLAIN_SVC)
    app = native.webtest_app()
    image_id = admin_image(app, native, foo="adminonly")
    hdrs = native.headers(member(native))
    right = app.get("/v2/images?foo=adminonly", headers=hdrs, status=200).json["images"]
    wrong = app.get("/v2/images?foo=wrong", headers=hdrs, status=200).json["images"]
    assert [i["id"] for i in right] == [image_id] and wrong == []  # the oracle
    native.stop()

    guarded = guarded_glance(RULES)
    app = guarded.webtest_app()
    image_id = admin_image(app, guarded, foo="adminonly")
    hdrs = guarded.headers(member(guarded))
    right = app.get("/v2/images?foo=adminonly", headers=hdrs, status=200)
    wrong = app.get("/v2/images?foo=wrong", headers=hdrs, status=200)
    assert right.json["images"] == wrong.json["images"] == []
    # Same answer apart from the caller's own query echoed in "first".
    assert right.json["first"] == "/v2/images?foo=adminonly"
    assert wrong.json["first"] == "/v2/images?foo=wrong"
    assert {k: v for k, v in right.json.items() if k != "first"} == {
        k: v for k, v in wrong.json.items() if k != "first"
    }
    assert b"adminonly" not in wrong.body
    # The member still sees the image without the filter (the filter, not the image, is hidden).
    listed = app.get("/v2/images", headers=hdrs, status=200).json["images"]
    assert [i["id"] for i in listed] == [image_id]
    assert "foo" not in listed[0]
    # The admin's filter works as usual.
    by_admin = app.get(
        "/v2/images?foo=adminonly", headers=guarded.headers(admin(guarded)), status=200
    )
    assert [i["id"] for i in by_admin.json["images"]] == [image_id]


# -- D3: PATCH add of a create-but-unreadable property that exists: 500 --------


def test_d3_add_of_existing_unreadable_property_is_not_500(native_glance, guarded_glance) -> None:
    add = [{"op": "add", "path": "/x_blind", "value": "members-value"}]

    native = native_glance(RULES_PLAIN_SVC)
    app = native.webtest_app()
    image_id = admin_image(app, native, x_blind="orig-secret")
    patch(app, native, image_id, add, member(native), status=500, expect_errors=True)
    native.stop()

    guarded = guarded_glance(RULES)
    app = guarded.webtest_app()
    image_id = admin_image(app, guarded, x_blind="orig-secret")
    # x_blind: members may create it but neither read nor update it. An add
    # could only overwrite the admin's value, so it is refused, and refused
    # alike when the property is absent (the answer must not tell which).
    res = patch(app, guarded, image_id, add, member(guarded), status=403, expect_errors=True)
    assert b"orig-secret" not in res.body and b"members-value" not in res.body
    assert stored_properties(guarded, image_id) == {"x_blind": "orig-secret"}
    fresh = admin_image(app, guarded)
    absent = patch(app, guarded, fresh, add, member(guarded), status=403, expect_errors=True)
    assert absent.body == res.body
    assert stored_properties(guarded, fresh) == {}


# -- D4: POST of a create-but-unreadable property is silently dropped ---------


def test_d4_create_of_unreadable_property_is_stored(native_glance, guarded_glance) -> None:
    body = {**IMAGE, "x_none_read": "s"}

    native = native_glance(RULES_PLAIN_SVC)
    res = native.webtest_app().post_json(
        "/v2/images", body, headers=native.headers(member(native)), status=201
    )
    assert stored_properties(native, res.json["id"]) == {}  # the defect: silently dropped
    native.stop()

    guarded = guarded_glance(RULES)
    res = guarded.webtest_app().post_json(
        "/v2/images", body, headers=guarded.headers(member(guarded)), status=201
    )
    assert "x_none_read" not in res.json
    assert stored_properties(guarded, res.json["id"]) == {"x_none_read": "s"}


# -- D5: the injected os_glance section matches by substring ------------------


def test_d5_os_glance_section_is_anchored(native_glance, guarded_glance) -> None:
    add = [{"op": "add", "path": "/x_os_glance_y", "value": "v"}]

    native = native_glance(RULES_PLAIN_SVC)
    app = native.webtest_app()
    tok = member(native)
    app.post_json(
        "/v2/images", {**IMAGE, "x_os_glance_y": "v"}, headers=native.headers(tok), status=201
    )
    image_id = app.post_json("/v2/images", IMAGE, headers=native.headers(tok), status=201).json[
        "id"
    ]
    patch(app, native, image_id, add, tok, status=200)
    native.stop()

    guarded = guarded_glance(RULES)
    app = guarded.webtest_app()
    tok = member(guarded)
    res = app.post_json(
        "/v2/images", {**IMAGE, "x_os_glance_y": "v"}, headers=guarded.headers(tok), status=403
    )
    assert res.json["error"]["message"] == "Attribute 'x_os_glance_y' is reserved."
    image_id = app.post_json("/v2/images", IMAGE, headers=guarded.headers(tok), status=201).json[
        "id"
    ]
    patch(app, guarded, image_id, add, tok, status=403)
    assert stored_properties(guarded, image_id) == {}
    # The admin ([.*]) still may; Glance's own os_glance_* stay reserved by Glance itself.
    patch(app, guarded, image_id, add, admin(guarded), status=200)
    patch(
        app,
        guarded,
        image_id,
        [{"op": "add", "path": "/os_glance_y", "value": "v"}],
        tok,
        status=403,
    )


# -- D6: service roles count as user roles (Glance's union) -------------------


def test_d6_strict_service_roles_count_only_where_named(native_glance, guarded_glance) -> None:
    body = {**IMAGE, "svc_only": "snap"}

    def post(glance: InProcessGlance, status: int):
        svc = glance.service_token(["service", "svc"])
        return glance.webtest_app().post_json(
            "/v2/images", body, headers=glance.headers(member(glance), svc), status=status
        )

    native = native_glance(RULES_PLAIN_SVC)
    post(native, 201)  # Glance: a service-token role satisfies "create = admin,svc"
    native.stop()

    # strict (default): plain "svc" means the USER's role svc: the service token doesn't count.
    guarded = guarded_glance(RULES_PLAIN_SVC)
    assert post(guarded, 403).json["error"]["message"] == "Attribute 'svc_only' is reserved."
    # ... and without a service token, a member never could.
    guarded.webtest_app().post_json(
        "/v2/images", body, headers=guarded.headers(member(guarded)), status=403
    )
    guarded.stop()

    guarded = guarded_glance(RULES)
    assert post(guarded, 201).json["svc_only"] == "snap"
    guarded.webtest_app().post_json(
        "/v2/images", body, headers=guarded.headers(member(guarded)), status=403
    )
    guarded.stop()

    guarded = guarded_glance(RULES_PLAIN_SVC, service_role_mode="union")
    assert post(guarded, 201).json["svc_only"] == "snap"


def test_d6_service_token_needs_a_configured_service_role(guarded_glance) -> None:
    """A token carrying only ``svc`` is a service token only where both layers say so."""
    body = {**IMAGE, "svc_only": "snap"}
    glance = guarded_glance(RULES, service_token_roles="service,svc")
    # auth_token (service_token_roles = service, its default here) refuses the token:
    # delay_auth_decision marks it Invalid, propguard ignores it.
    svc = glance.service_token(["svc"])
    glance.webtest_app().post_json(
        "/v2/images", body, headers=glance.headers(member(glance), svc), status=403
    )
    glance.stop()

    glance = guarded_glance(
        RULES,
        service_token_roles="service,svc",
        authtoken_options={"service_token_roles": "service,svc"},
    )
    svc = glance.service_token(["svc"])
    res = glance.webtest_app().post_json(
        "/v2/images", body, headers=glance.headers(member(glance), svc), status=201
    )
    assert res.json["svc_only"] == "snap"
    glance.stop()

    # Confirmed by auth_token, but propguard's own service_token_roles (default "service") say no.
    glance = guarded_glance(RULES, authtoken_options={"service_token_roles": "service,svc"})
    svc = glance.service_token(["svc"])
    glance.webtest_app().post_json(
        "/v2/images", body, headers=glance.headers(member(glance), svc), status=403
    )


# -- D7: service roles are not lower-cased ------------------------------------


def test_d7_service_roles_are_case_insensitive(native_glance, guarded_glance) -> None:
    body = {**IMAGE, "svc_only": "snap"}

    def post(glance: InProcessGlance, status: int):
        svc = glance.service_token(["service", "SVC"])
        return glance.webtest_app().post_json(
            "/v2/images", body, headers=glance.headers(member(glance), svc), status=status
        )

    native = native_glance(RULES_PLAIN_SVC)
    post(native, 403)  # the defect: "SVC" != "svc"
    native.stop()

    guarded = guarded_glance(RULES_PLAIN_SVC, service_role_mode="union")
    assert post(guarded, 201).json["svc_only"] == "snap"
    guarded.stop()

    # Strict spelling, upper-case role in the RULE and in the token.
    guarded = guarded_glance(RULES.replace("service:svc", "service:SvC"))
    assert post(guarded, 201).json["svc_only"] == "snap"


# -- D8: the service roles leak into later policy checks (context mutation) ---


def test_d8_service_roles_do_not_leak_into_glance_policy(native_glance, guarded_glance) -> None:
    public = [{"op": "replace", "path": "/visibility", "value": "public"}]

    def attempt(glance: InProcessGlance, status: int) -> str:
        app = glance.webtest_app()
        tok = member(glance)
        image_id = app.post_json(
            "/v2/images", {**IMAGE, "x_owner_a": "a"}, headers=glance.headers(tok), status=201
        ).json["id"]
        svc = glance.service_token(["service", "admin"])
        patch(app, glance, image_id, public, tok, svc, status=status)
        return image_id

    native = native_glance(RULES_PLAIN_SVC)
    attempt(native, 200)  # the defect: publicize_image saw the service token's "admin"
    native.stop()

    for mode, text in (("strict", RULES), ("union", RULES_PLAIN_SVC)):
        guarded = guarded_glance(text, service_role_mode=mode)
        image_id = attempt(guarded, 403)
        got = guarded.webtest_app().get(
            f"/v2/images/{image_id}", headers=guarded.headers(admin(guarded)), status=200
        )
        assert got.json["visibility"] != "public"
        guarded.stop()


# -- D9: a missing or incomplete rules file does not stop Glance --------------


def test_d9_missing_rules_file_stops_the_filter(native_glance, guarded_glance, tmp_path) -> None:
    missing = tmp_path / "nowhere" / "rules.conf"

    native = native_glance(missing)
    res = native.webtest_app().get("/v2/images", headers=native.headers(member(native)), status=400)
    assert res.status_int == 400  # the defect: Glance runs, every image call fails
    native.stop()

    factory = filter_factory({}, rules_file=str(missing), name_collation="binary")
    with pytest.raises(RulesError) as err:
        factory(lambda environ, start_response: [])
    assert str(err.value).startswith(f"{missing}:1:1: PG101 cannot read rules file")

    with pytest.raises(RulesError, match="PG101"):
        guarded_glance(missing)


def test_d9_section_without_read_stops_the_filter(native_glance, guarded_glance, tmp_path) -> None:
    text = RULES.replace("read = admin,member\nupdate = admin\n", "update = admin\n", 1)
    assert "[x_ro]\ncreate = admin\nupdate" in text
    broken = write(tmp_path, "no-read.conf", text)
    line = text.splitlines().index("[x_ro]") + 1

    native = native_glance(text.replace("service:svc", "svc"))
    native.webtest_app().get("/v2/images", headers=native.headers(member(native)), status=400)
    native.stop()

    with pytest.raises(RulesError) as err:
        filter_factory({}, rules_file=str(broken), name_collation="binary")(lambda environ, start_response: [])
    message = str(err.value)
    assert message == f"{broken}:{line}:1: PG105 section [x_ro] has no 'read' operation"
    with pytest.raises(RulesError, match=rf"{broken}:{line}:"):
        guarded_glance(broken)


# -- D10: a "%" in a value --------------------------------------------------


def test_d10_percent_in_value_is_a_load_error(native_glance, tmp_path) -> None:
    text = RULES.replace("[x_ro]\ncreate = admin\n", "[x_ro]\ncreate = ad%min\n")
    line = text.splitlines().index("create = ad%min") + 1

    native = native_glance(text.replace("service:svc", "svc"))
    native.webtest_app().get(
        "/v2/images", headers=native.headers(member(native)), status=500, expect_errors=True
    )
    native.stop()

    broken = write(tmp_path, "percent.conf", text)
    with pytest.raises(RulesError) as err:
        filter_factory({}, rules_file=str(broken), name_collation="binary")(lambda environ, start_response: [])
    problem = err.value.problems[0]
    assert problem.code == "PG109"
    assert (problem.position.file, problem.position.line) == (str(broken), line)
    column = "create = ad%min".index("%") + 1
    assert problem.position.column == column
    assert str(err.value).startswith(
        f"{broken}:{line}:{column}: PG109 '%' in the value of 'create'"
    )


# -- D11: an undefined policy name allows everything --------------------------


POLICIES_RULES = """\
[^x_pol_]
create = pg_member
read = pg_member
update = pg_member
delete = {delete}

[.*]
create = context_is_admin
read = context_is_admin
update = context_is_admin
delete = context_is_admin
"""
POLICY_YAML = '"pg_member": "role:member or role:admin"\n'


def test_d11_undefined_policy_name_is_a_load_error(native_glance, guarded_glance, tmp_path) -> None:
    policy = write(tmp_path, "policy.yaml", POLICY_YAML)
    broken = write(tmp_path, "policies.conf", POLICIES_RULES.format(delete="nosuchrule"))
    line = POLICIES_RULES.splitlines().index("delete = {delete}") + 1

    native = native_glance(
        broken,
        glance_property_protection_rule_format="policies",
        glance_policy_file=str(policy),
    )
    app = native.webtest_app()
    tok = member(native)
    image_id = app.post_json(
        "/v2/images", {**IMAGE, "x_pol_a": "1"}, headers=native.headers(tok), status=201
    ).json["id"]
    # the defect: "nosuchrule" falls back to oslo.policy's "default" (allow all)
    patch(app, native, image_id, [{"op": "remove", "path": "/x_pol_a"}], tok, status=200)
    native.stop()

    options = {"rule_format": "policies", "policy_file": str(policy)}
    with pytest.raises(RulesError) as err:
        filter_factory({}, rules_file=str(broken), name_collation="binary", **options)(lambda environ, start_response: [])
    problem = err.value.problems[0]
    assert problem.code == "PG111"
    assert (problem.position.file, problem.position.line) == (str(broken), line)
    assert "nosuchrule" in str(err.value)

    # A defined name loads, and the member then may not delete.
    glance = guarded_glance(POLICIES_RULES.format(delete="context_is_admin"), **options)
    app = glance.webtest_app()
    tok = member(glance)
    image_id = app.post_json(
        "/v2/images", {**IMAGE, "x_pol_a": "1"}, headers=glance.headers(tok), status=201
    ).json["id"]
    patch(app, glance, image_id, [{"op": "remove", "path": "/x_pol_a"}], tok, status=403)
    assert stored_properties(glance, image_id) == {"x_pol_a": "1"}


# -- Core names Glance's create stores as extra properties ----------------------

#: Each core name of the image resource that Glance's create does not take as an
#: attribute, with Glance's answer alone (protections off) and propguard's.
CREATE_CORE_NAMES = {
    # stored as *extra properties* by Glance alone: a forged hash on the image
    "os_hash_algo": (201, 403),
    "os_hash_value": (201, 403),
    # refused by Glance itself (read-only, reserved, or not of the schema's type for the
    # value sent): the same through propguard
    "checksum": (403, 403),
    "size": (400, 400),
    "locations": (400, 400),
    "direct_url": (403, 403),
    "stores": (403, 403),
    "self": (403, 403),
}


def test_create_with_read_only_names_glance_would_store(glance_factory, guarded_glance) -> None:
    """``os_hash_algo``/``os_hash_value`` in a member's create: Glance alone stores them as
    extra properties (past its read-only check, and past any rule: they are core names);
    propguard refuses them as Glance's PATCH does. Their siblings answer alike."""
    alone = glance_factory()
    app = alone.webtest_app()
    answers_alone = {}
    for name in CREATE_CORE_NAMES:
        res = app.post_json(
            "/v2/images",
            {**IMAGE, name: "f" * 32},
            headers=alone.headers(member(alone)),
            expect_errors=True,
        )
        answers_alone[name] = res.status_int
        if res.status_int == 201 and name.startswith("os_hash"):
            assert stored_properties(alone, res.json["id"]) == {name: "f" * 32}  # the defect
    alone.stop()

    guarded = guarded_glance(RULES)
    app = guarded.webtest_app()
    answers = {}
    for name in CREATE_CORE_NAMES:
        res = app.post_json(
            "/v2/images",
            {**IMAGE, name: "f" * 32},
            headers=guarded.headers(member(guarded)),
            expect_errors=True,
        )
        answers[name] = res.status_int
        if name.startswith("os_hash"):
            assert res.json["error"]["message"] == f"Attribute '{name}' is read-only."
    assert {n: (answers_alone[n], answers[n]) for n in CREATE_CORE_NAMES} == CREATE_CORE_NAMES
    # An admin is refused too: no caller can give an image a hash it does not have.
    res = app.post_json(
        "/v2/images",
        {**IMAGE, "os_hash_value": "f" * 32},
        headers=guarded.headers(admin(guarded)),
        expect_errors=True,
    )
    assert res.status_int == 403
