"""Glance's own functional property-protection scenarios, replayed through propguard.

Why: propguard claims to keep Glance's behaviour (file format, first-match
sections, status codes) while enforcing the rules outside Glance.  The
strongest evidence is Glance's own functional tests, replayed step by step
against a real Glance 33 behind real keystonemiddleware ``auth_token`` with
propguard in the pipeline and Glance's own protections OFF:

* ``glance/tests/functional/v2/test_property_protection.py`` (reference §3.5),
* the four tests removed from ``glance/tests/functional/v2/test_images.py``
  in 32.0.0 (reference §3.6),

with Glance's test rule files (reference §3.1).  Roles come from real
keystone tokens (AuthTokenFixture), never from spoofed headers.

Differential checks: every scenario is parametrised over two setups, Glance
with its NATIVE protections (``property_protection_file`` = the same rules)
and Glance behind propguard, and asserts the same expected status and the
same exact set of visible extra properties at every step, so both setups are
pinned to one transcript.  Where propguard deliberately differs from Glance
(docs/differences.md), the tests at the end show Glance-native's
defect and propguard's fix side by side instead of hiding the difference.

Speed: tests are grouped by setup and share one running Glance per rule set
(:class:`GlancePool`); every test deletes its images afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from data_paths import GLANCE_POLICIES_FILE, GLANCE_POLICY_YAML
from functional_rules import ADMIN_CATCH_ALL, IMAGE_ATTRIBUTES, REFERENCE_2_4_SECTIONS
from glance_api import (
    JSON_PATCH,
    JSON_PATCH_DRAFT4,
    RAW,
    patch,
    propguard_filter,
    stored_properties,
)

from propguard.inprocess import InProcessGlance

pytestmark = [
    pytest.mark.glance,
    # Glance's DELETE answers 204 with a Content-Type; webtest's lint warns.
    pytest.mark.filterwarnings("ignore:Content-Type header found in a 204:Warning"),
]

NATIVE = "glance-native"
PROPGUARD = "propguard"
SETUPS = (NATIVE, PROPGUARD)

# Role sets used by Glance's functional tests (X-Roles there, real tokens here).
ADMIN = ("admin",)
MEMBER = ("reader", "member")
SPL = ("reader", "member", "spl_role")
SPL_ADMIN = ("reader", "member", "spl_role", "admin")
JOE = ("reader", "member", "joe_soap")
RANDOM = ("reader", "random_role")

# Body of the images in reference §3.5 (current functional tests): glance_api.RAW;
# in §3.6 (the removed TestImages tests):
AKI = {"disk_format": "aki", "container_format": "aki"}


def extras(image: dict[str, Any]) -> dict[str, Any]:
    """The extra (rule-governed) properties visible in an image body."""
    return {k: v for k, v in image.items() if k not in IMAGE_ATTRIBUTES}


def replace(path: str, value: Any) -> dict[str, Any]:
    return {"op": "replace", "path": path, "value": value}


def add(path: str, value: Any) -> dict[str, Any]:
    return {"op": "add", "path": path, "value": value}


def remove(path: str) -> dict[str, Any]:
    return {"op": "remove", "path": path}


def reserved(name: str) -> str:
    """Glance's (and propguard's) wording of a protection 403."""
    return f"Attribute '{name}' is reserved."


def missing(name: str) -> str:
    """Glance's (and propguard's) wording of a protection 409."""
    return f"Property {name} does not exist."


@dataclass
class Api:
    """One running setup (Glance native or Glance behind propguard) and a client for it.

    Every caller is a real keystone token of the same user and project, with
    exactly the roles named (tokens are cached per role set).
    """

    glance: InProcessGlance
    setup: str
    app: Any = None
    tokens: dict[tuple[str, ...], str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.app = self.glance.webtest_app()

    @property
    def native(self) -> bool:
        return self.setup == NATIVE

    def token(self, roles: tuple[str, ...]) -> str:
        token = self.tokens.get(roles)
        if token is None:
            token = self.tokens[roles] = self.glance.user_token(list(roles))
        return token

    def headers(self, roles: tuple[str, ...]) -> dict[str, str]:
        return self.glance.headers(self.token(roles))

    def create(
        self,
        roles: tuple[str, ...],
        status: int,
        *,
        base: dict = RAW,
        name: str = "image-1",
        **props,
    ):
        return self.app.post_json(
            "/v2/images",
            {"name": name, **base, **props},
            headers=self.headers(roles),
            status=status,
        )

    def show(self, roles: tuple[str, ...], image_id: str, status: int = 200):
        return self.app.get(f"/v2/images/{image_id}", headers=self.headers(roles), status=status)

    def update(
        self,
        roles: tuple[str, ...],
        image_id: str,
        ops: list[dict[str, Any]],
        status: int,
        media_type: str = JSON_PATCH,
    ):
        return patch(
            self.app,
            self.glance,
            image_id,
            ops,
            self.token(roles),
            media_type=media_type,
            status=status,
        )

    def delete(self, roles: tuple[str, ...], image_id: str, status: int = 204):
        return self.app.delete(f"/v2/images/{image_id}", headers=self.headers(roles), status=status)

    def list(self, roles: tuple[str, ...], url: str = "/v2/images", status: int = 200):
        return self.app.get(url, headers=self.headers(roles), status=status)

    def stored_properties(self, image_id: str) -> dict[str, str]:
        """Extra properties as stored in Glance's DB (not deleted), bypassing every API check."""
        return stored_properties(self.glance, image_id)


def _glance_kwargs(setup: str, rule_format: str, rules_file: Path) -> dict[str, Any]:
    """InProcessGlance options enforcing ``rules_file`` natively in Glance or by propguard.

    Policies format: Glance's test ``policy.yaml`` goes to Glance's
    ``[oslo_policy] policy_file`` (native) or to propguard's ``policy_file``,
    with ``policy_namespaces = glance`` so ``context_is_admin`` and ``default``
    resolve to Glance's registered defaults, as inside Glance.
    """
    if setup == NATIVE:
        kwargs: dict[str, Any] = {
            "glance_property_protection_file": str(rules_file),
            "glance_property_protection_rule_format": rule_format,
        }
        if rule_format == "policies":
            kwargs["glance_policy_file"] = str(GLANCE_POLICY_YAML)
        return kwargs
    options = {"rule_format": rule_format, "service_role_mode": "strict"}
    if rule_format == "policies":
        options.update(policy_file=str(GLANCE_POLICY_YAML), policy_namespaces="glance")
    return {"extra_filters": [propguard_filter(rules_file, **options)]}


class GlancePool:
    """At most one running Glance, reused by consecutive tests that need the same setup.

    Why: a Glance start costs ~0.8 s and this module has ~50 scenarios.  Tests
    are grouped by setup (module-scoped ``setup`` parameter), so the pool
    starts a handful of instances instead of one per test.  Isolation: every
    test gets its own images (the fixtures delete all images afterwards, so a
    scenario starting with "0 images" still sees an empty list); rules files
    are written by the pool and keyed by content.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.key: tuple[str, str, str] | None = None
        self.api: Api | None = None
        self.started = 0

    def get(self, setup: str, rule_format: str, rules_text: str) -> Api:
        key = (setup, rule_format, rules_text)
        if self.key != key or self.api is None or not self.api.glance.started:
            self.close()
            workdir = self.root / f"glance-{self.started}"
            workdir.mkdir(parents=True)
            rules_file = workdir / "property-protections.conf"
            rules_file.write_text(rules_text)
            glance = InProcessGlance(workdir, **_glance_kwargs(setup, rule_format, rules_file))
            glance.start()
            self.started += 1
            self.api, self.key = Api(glance, setup), key
        return self.api

    def close(self) -> None:
        if self.api is not None:
            self.api.glance.stop()
        self.api = self.key = None


def _delete_all_images(api: Api) -> None:
    headers = api.headers(ADMIN)
    while images := api.app.get("/v2/images?limit=100", headers=headers).json["images"]:
        for image in images:
            api.app.delete(f"/v2/images/{image['id']}", headers=headers, status=204)


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> Iterator[GlancePool]:
    glances = GlancePool(tmp_path_factory.mktemp("glance-compat"))
    yield glances
    glances.close()


@pytest.fixture(scope="module", params=SETUPS)
def setup(request) -> str:
    """Which setup enforces the rules: Glance natively, or propguard (Glance's own off)."""
    return request.param


@contextmanager
def _api(pool: GlancePool, setup: str, rule_format: str, rules_text: str) -> Iterator[Api]:
    api = pool.get(setup, rule_format, rules_text)
    try:
        yield api
    finally:
        if api.glance.started:
            _delete_all_images(api)


@pytest.fixture
def roles_api(pool, setup, glance_test_rules_file) -> Iterator[Api]:
    """Glance's roles test file (``glance_test_rules_file``), enforced per ``setup``."""
    with _api(pool, setup, "roles", glance_test_rules_file.read_text()) as api:
        yield api


@pytest.fixture
def policies_api(pool, setup) -> Iterator[Api]:
    """Glance's policies test file + policy.yaml, enforced per ``setup``."""
    with _api(pool, setup, "policies", GLANCE_POLICIES_FILE.read_text()) as api:
        yield api


# ---------------------------------------------------------------------------
# §3.5 TestPropertyProtectionWithRoles
# ---------------------------------------------------------------------------


def test_roles_create_image_with_allowed_property(roles_api: Api) -> None:
    image = roles_api.create(MEMBER, 201, x_owner_foo="bar_value").json
    assert extras(image) == {"x_owner_foo": "bar_value"}


def test_roles_create_image_with_forbidden_property(roles_api: Api) -> None:
    res = roles_api.create(MEMBER, 403, foo="bar")
    assert reserved("foo") in res.text
    assert roles_api.list(ADMIN).json["images"] == []  # nothing created


def test_roles_create_image_with_spl_role_property(roles_api: Api) -> None:
    image = roles_api.create(SPL, 201, spl_create_prop="create_value").json
    assert extras(image) == {"spl_create_prop": "create_value"}


def test_roles_read_protected_property(roles_api: Api) -> None:
    image = roles_api.create(ADMIN, 201, spl_read_prop="read_value").json
    assert extras(image) == {"spl_read_prop": "read_value"}
    got = roles_api.show(SPL, image["id"]).json
    assert extras(got) == {"spl_read_prop": "read_value"}
    got = roles_api.show(MEMBER, image["id"]).json
    assert extras(got) == {}


def test_roles_update_protected_property(roles_api: Api) -> None:
    image = roles_api.create(
        ADMIN, 201, spl_update_prop="initial_value", spl_read_prop="read_value"
    ).json
    res = roles_api.update(SPL, image["id"], [replace("/spl_update_prop", "updated_value")], 200)
    assert extras(res.json) == {"spl_update_prop": "updated_value", "spl_read_prop": "read_value"}
    res = roles_api.update(SPL, image["id"], [replace("/spl_read_prop", "r")], 403)
    assert reserved("spl_read_prop") in res.text
    got = roles_api.show(ADMIN, image["id"]).json
    assert extras(got) == {"spl_update_prop": "updated_value", "spl_read_prop": "read_value"}


def test_roles_delete_protected_property(roles_api: Api) -> None:
    image = roles_api.create(
        ADMIN, 201, spl_delete_prop="delete_value", spl_create_prop="create_value"
    ).json
    res = roles_api.update(SPL, image["id"], [remove("/spl_delete_prop")], 200)
    assert extras(res.json) == {"spl_create_prop": "create_value"}
    res = roles_api.update(SPL, image["id"], [remove("/spl_create_prop")], 403)
    assert reserved("spl_create_prop") in res.text
    assert extras(roles_api.show(ADMIN, image["id"]).json) == {"spl_create_prop": "create_value"}


def test_roles_property_with_at_symbol_all_permitted(roles_api: Api) -> None:
    image = roles_api.create(MEMBER, 201, x_all_permitted_test="value").json
    assert extras(image) == {"x_all_permitted_test": "value"}


def test_roles_property_with_exclamation_none_permitted(roles_api: Api) -> None:
    res = roles_api.create(ADMIN, 403, x_none_permitted_test="value")
    assert reserved("x_none_permitted_test") in res.text


def test_roles_property_protection_caching(roles_api: Api) -> None:
    first = roles_api.create(MEMBER, 201, x_owner_foo="value1").json
    second = roles_api.create(MEMBER, 201, x_owner_bar="value2").json
    assert extras(roles_api.show(MEMBER, first["id"]).json) == {"x_owner_foo": "value1"}
    assert extras(roles_api.show(MEMBER, second["id"]).json) == {"x_owner_bar": "value2"}
    roles_api.create(MEMBER, 403, foo="forbidden")


# ---------------------------------------------------------------------------
# §3.6 the four tests removed from glance/tests/functional/v2/test_images.py.
# Where Glance's test built an admin/joe_soap header dict but sent
# self._headers(), the request is replayed as it executed: reader,member.
# ---------------------------------------------------------------------------


def _assert_standard_body(image: dict[str, Any], name: str = "image-1") -> None:
    assert image["status"] == "queued"
    assert image["name"] == name
    assert image["tags"] == []
    assert image["visibility"] == "shared"
    assert image["protected"] is False
    assert image["min_disk"] == 0
    assert image["min_ram"] == 0
    assert image["self"] == f"/v2/images/{image['id']}"
    assert image["file"] == f"/v2/images/{image['id']}/file"
    assert image["schema"] == "/v2/schemas/image"


def test_property_protections_with_roles(roles_api: Api) -> None:
    api = roles_api
    # 1
    assert api.list(MEMBER).json["images"] == []
    # 2
    res = api.create(MEMBER, 403, base=AKI, foo="bar", x_owner_foo="o_s_bar")
    assert reserved("foo") in res.text
    # 3
    image = api.create(MEMBER, 201, base=AKI, x_owner_foo="o_s_bar").json
    _assert_standard_body(image)
    assert extras(image) == {"x_owner_foo": "o_s_bar"}
    # 4
    created = {
        "spl_create_prop": "create_bar",
        "spl_create_prop_policy": "create_policy_bar",
        "spl_read_prop": "read_bar",
        "spl_update_prop": "update_bar",
        "spl_delete_prop": "delete_bar",
        "spl_delete_empty_prop": "",
    }
    image = api.create(SPL, 201, base=AKI, **created).json
    assert extras(image) == created
    image_id = image["id"]
    # 5
    ops = [replace("/spl_read_prop", "r"), replace("/spl_update_prop", "u")]
    res = api.update(SPL, image_id, ops, 403)
    assert reserved("spl_read_prop") in res.text
    # 6
    ops = [add("/spl_new_prop", "new"), remove("/spl_create_prop"), remove("/spl_delete_prop")]
    res = api.update(SPL, image_id, ops, 403)
    assert reserved("spl_new_prop") in res.text
    assert extras(api.show(SPL, image_id).json) == created  # nothing applied
    # 7 (bug #1332103: an empty value is still "present")
    ops = [replace("/spl_update_prop", ""), replace("/spl_update_prop", "u")]
    res = api.update(SPL, image_id, ops, 200)
    assert res.json["spl_update_prop"] == "u"
    # 8
    ops = [remove("/spl_delete_prop"), remove("/spl_delete_empty_prop")]
    res = api.update(SPL, image_id, ops, 200)
    assert extras(res.json) == {
        "spl_create_prop": "create_bar",
        "spl_create_prop_policy": "create_policy_bar",
        "spl_read_prop": "read_bar",
        "spl_update_prop": "u",
    }
    # 9
    api.delete(MEMBER, image_id, 204)
    api.show(MEMBER, image_id, 404)


def _special_chars(api: Api, non_admin_hidden_status: int) -> None:
    """Steps shared by the roles and policies special-chars tests (reference §3.6).

    ``non_admin_hidden_status``: steps 15 and 18, where a reader,member,joe_soap
    caller touches ``x_none_update``/``x_none_delete``: 403 with the roles file
    (readable by member), 409 with the policies file (read = context_is_admin).
    """
    # 1
    image = api.create(ADMIN, 201, base=AKI, x_all_permitted_admin="1").json
    _assert_standard_body(image)
    assert extras(image) == {"x_all_permitted_admin": "1"}
    # 2
    image = api.create(JOE, 201, base=AKI, x_all_permitted_joe_soap="1").json
    _assert_standard_body(image)
    assert extras(image) == {"x_all_permitted_joe_soap": "1"}
    image_id = image["id"]
    # 3 (both GETs executed as reader,member)
    for _ in range(2):
        assert extras(api.show(MEMBER, image_id).json) == {"x_all_permitted_joe_soap": "1"}
    # 4
    res = api.update(ADMIN, image_id, [replace("/x_all_permitted_joe_soap", "2")], 200)
    assert extras(res.json) == {"x_all_permitted_joe_soap": "2"}
    # 5
    res = api.update(JOE, image_id, [replace("/x_all_permitted_joe_soap", "3")], 200)
    assert extras(res.json) == {"x_all_permitted_joe_soap": "3"}
    # 6
    image = api.create(ADMIN, 201, base=AKI, x_all_permitted_a="1", x_all_permitted_b="2").json
    assert extras(image) == {"x_all_permitted_a": "1", "x_all_permitted_b": "2"}
    image_id = image["id"]
    # 7
    res = api.update(ADMIN, image_id, [remove("/x_all_permitted_a")], 200)
    assert extras(res.json) == {"x_all_permitted_b": "2"}
    # 8
    res = api.update(JOE, image_id, [remove("/x_all_permitted_b")], 200)
    assert extras(res.json) == {}
    # 9
    res = api.create(ADMIN, 403, base=AKI, x_none_permitted_admin="1")
    assert reserved("x_none_permitted_admin") in res.text
    # 10
    res = api.create(JOE, 403, base=AKI, x_none_permitted_joe_soap="1")
    assert reserved("x_none_permitted_joe_soap") in res.text
    # 11
    image = api.create(ADMIN, 201, base=AKI, x_none_read="1").json
    assert extras(image) == {}
    image_id = image["id"]
    # 12 (both GETs executed as reader,member)
    for _ in range(2):
        assert extras(api.show(MEMBER, image_id).json) == {}
    # 13
    image = api.create(ADMIN, 201, base=AKI, x_none_update="1").json
    assert extras(image) == {"x_none_update": "1"}
    image_id = image["id"]
    # 14
    res = api.update(ADMIN, image_id, [replace("/x_none_update", "2")], 403)
    assert reserved("x_none_update") in res.text
    # 15
    res = api.update(JOE, image_id, [replace("/x_none_update", "3")], non_admin_hidden_status)
    if non_admin_hidden_status == 403:
        assert reserved("x_none_update") in res.text
    else:
        assert missing("x_none_update") in res.text
    assert extras(api.show(ADMIN, image_id).json) == {"x_none_update": "1"}
    # 16
    image = api.create(ADMIN, 201, base=AKI, x_none_delete="1").json
    assert extras(image) == {"x_none_delete": "1"}
    image_id = image["id"]
    # 17
    res = api.update(ADMIN, image_id, [remove("/x_none_delete")], 403)
    assert reserved("x_none_delete") in res.text
    # 18
    res = api.update(JOE, image_id, [remove("/x_none_delete")], non_admin_hidden_status)
    if non_admin_hidden_status == 403:
        assert reserved("x_none_delete") in res.text
    else:
        assert missing("x_none_delete") in res.text
    assert extras(api.show(ADMIN, image_id).json) == {"x_none_delete": "1"}


def test_property_protections_special_chars_roles(roles_api: Api) -> None:
    _special_chars(roles_api, non_admin_hidden_status=403)


# ---------------------------------------------------------------------------
# Beyond Glance's tests: the draft-4 PATCH media type and paginated lists
# ---------------------------------------------------------------------------


def test_draft4_json_patch_update_remove_add(roles_api: Api) -> None:
    """``application/openstack-images-v2.0-json-patch``: ``{"replace": "/x", "value": ...}``."""
    api = roles_api
    created = {
        "spl_update_prop": "initial",
        "spl_read_prop": "read_value",
        "spl_delete_prop": "delete_value",
        "spl_create_prop": "create_value",
        "foo": "adminonly",
    }
    image_id = api.create(ADMIN, 201, **created).json["id"]
    visible = {k: v for k, v in created.items() if k != "foo"}  # to reader,member,spl_role

    def patch(ops, status):
        return api.update(SPL, image_id, ops, status, media_type=JSON_PATCH_DRAFT4)

    res = patch([{"replace": "/name", "value": "renamed"}], 200)
    assert res.json["name"] == "renamed"
    assert extras(res.json) == visible
    # update
    res = patch([{"replace": "/spl_update_prop", "value": "updated"}], 200)
    visible["spl_update_prop"] = "updated"
    assert extras(res.json) == visible
    res = patch([{"replace": "/spl_read_prop", "value": "x"}], 403)
    assert reserved("spl_read_prop") in res.text
    res = patch([{"replace": "/foo", "value": "x"}], 409)  # hidden: "does not exist"
    assert missing("foo") in res.text
    # remove
    res = patch([{"remove": "/spl_delete_prop"}], 200)
    del visible["spl_delete_prop"]
    assert extras(res.json) == visible
    res = patch([{"remove": "/spl_create_prop"}], 403)
    assert reserved("spl_create_prop") in res.text
    res = patch([{"remove": "/foo"}], 409)
    assert missing("foo") in res.text
    # add
    res = patch([{"add": "/x_owner_new", "value": "n"}], 200)
    visible["x_owner_new"] = "n"
    assert extras(res.json) == visible
    res = patch([{"add": "/x_owner_new", "value": "again"}], 409)  # draft 4: already present
    assert "already present" in res.text
    res = patch([{"add": "/spl_new_prop", "value": "n"}], 403)
    assert reserved("spl_new_prop") in res.text
    # Readable, not present: replace/remove are 409 "does not exist".
    res = patch([{"replace": "/spl_delete_empty_prop", "value": "x"}], 409)
    assert missing("spl_delete_empty_prop") in res.text
    res = patch([{"remove": "/spl_delete_empty_prop"}], 409)
    assert missing("spl_delete_empty_prop") in res.text
    # several ops: all or nothing
    ops = [{"replace": "/spl_update_prop", "value": "lost"}, {"remove": "/spl_read_prop"}]
    res = patch(ops, 403)
    assert reserved("spl_read_prop") in res.text
    assert extras(api.show(SPL, image_id).json) == visible
    admin_view = extras(api.show(ADMIN, image_id).json)
    if api.native:
        # Glance's defect (see test_member_patch_keeps_hidden_properties): the
        # caller's first successful PATCH purged ``foo``, which it cannot read.
        assert admin_view == visible
    else:
        assert admin_view == {**visible, "foo": "adminonly"}


def test_draft4_add_of_visible_property_is_already_present(roles_api: Api) -> None:
    """Draft 4 ``add`` of an existing property the caller can read: 409, whatever the rights.

    Glance's ``_do_add`` answers 409 "Property X already present." for a
    visible property before any protection check (such an add can never
    succeed in draft 4); in draft 10 the same add is an update (403 without
    the update right).
    """
    api = roles_api
    image_id = api.create(ADMIN, 201, spl_create_prop="c", spl_update_prop="u").json["id"]
    for name in ("spl_create_prop", "spl_update_prop"):  # update: admin / admin,spl_role
        res = api.update(
            SPL, image_id, [{"add": f"/{name}", "value": "x"}], 409, media_type=JSON_PATCH_DRAFT4
        )
        assert f"Property {name} already present." in res.text
    res = api.update(SPL, image_id, [add("/spl_create_prop", "x")], 403)
    assert reserved("spl_create_prop") in res.text
    assert extras(api.show(ADMIN, image_id).json) == {
        "spl_create_prop": "c",
        "spl_update_prop": "u",
    }


def test_list_pages_hide_properties_on_every_image(roles_api: Api) -> None:
    """``GET /v2/images?limit=2``: every page filtered, ``next`` links still work."""
    api = roles_api
    ids = set()
    for i in range(5):
        image = api.create(
            ADMIN,
            201,
            name=f"image-{i}",
            foo=f"adminonly-{i}",
            spl_read_prop=f"spl-{i}",
            x_owner_prop=f"owner-{i}",
            x_all_permitted_prop=f"all-{i}",
        ).json
        ids.add(image["id"])

    def walk(roles):
        seen: dict[str, dict[str, Any]] = {}
        url, pages = "/v2/images?limit=2", 0
        while url:
            page = api.list(roles, url).json
            pages += 1
            assert len(page["images"]) <= 2
            for image in page["images"]:
                seen[image["id"]] = extras(image)
            assert page["first"] == "/v2/images?limit=2"
            url = page.get("next")
            assert pages <= 5, "pagination does not end"
        return pages, seen

    pages, seen = walk(MEMBER)
    assert set(seen) == ids
    assert pages == 3  # 2 + 2 + 1 (Glance adds no "next" to a short page)
    for props in seen.values():
        assert set(props) == {"x_owner_prop", "x_all_permitted_prop"}

    pages, seen = walk(SPL)
    assert set(seen) == ids
    for props in seen.values():
        assert set(props) == {"x_owner_prop", "x_all_permitted_prop", "spl_read_prop"}

    pages, seen = walk(ADMIN)
    assert set(seen) == ids
    for props in seen.values():
        assert set(props) == {"foo", "x_owner_prop", "x_all_permitted_prop", "spl_read_prop"}


# ---------------------------------------------------------------------------
# Deliberate differences (docs/differences.md), side by side:
# each test runs on both setups and asserts Glance-native's defect on one
# and propguard's fix on the other.
# ---------------------------------------------------------------------------


def test_member_patch_keeps_hidden_properties(roles_api: Api) -> None:
    """Glance: a member's PATCH of ``name`` deletes what the member cannot read (§2.5)."""
    api = roles_api
    created = {"foo": "adminonly", "spl_read_prop": "spl", "x_owner_a": "a"}
    image_id = api.create(ADMIN, 201, **created).json["id"]
    res = api.update(MEMBER, image_id, [replace("/name", "renamed")], 200)
    assert res.json["name"] == "renamed"
    assert extras(res.json) == {"x_owner_a": "a"}  # same view on both setups
    admin_view = extras(api.show(ADMIN, image_id).json)
    if api.native:
        # Defect: purge_props=True with only the member-readable properties.
        assert admin_view == {"x_owner_a": "a"}
        assert api.stored_properties(image_id) == {"x_owner_a": "a"}
    else:
        assert admin_view == created
        assert api.stored_properties(image_id) == created


def test_list_filter_on_hidden_property_is_no_oracle(roles_api: Api) -> None:
    """Glance: ``?foo=<guess>`` tells a member whether the hidden value is right."""
    api = roles_api
    image_id = api.create(ADMIN, 201, foo="adminonly").json["id"]
    right = [i["id"] for i in api.list(MEMBER, "/v2/images?foo=adminonly").json["images"]]
    wrong = [i["id"] for i in api.list(MEMBER, "/v2/images?foo=wrong").json["images"]]
    assert wrong == []
    if api.native:
        assert right == [image_id]  # the oracle
    else:
        assert right == []
    # Filters on readable properties keep working, and the admin's too.
    assert [i["id"] for i in api.list(ADMIN, "/v2/images?foo=adminonly").json["images"]] == [
        image_id
    ]
    api.update(ADMIN, image_id, [add("/x_owner_k", "v")], 200)
    assert [i["id"] for i in api.list(MEMBER, "/v2/images?x_owner_k=v").json["images"]] == [
        image_id
    ]


def test_os_glance_substring_section(roles_api: Api) -> None:
    """Glance 32+ injects an unanchored ``[os_glance.*]`` (everyone) section first."""
    api = roles_api
    if api.native:
        image = api.create(MEMBER, 201, x_os_glance_y="v").json
        assert extras(image) == {"x_os_glance_y": "v"}  # shadowed the admin-only [.*]
    else:
        res = api.create(MEMBER, 403, x_os_glance_y="v")
        assert reserved("x_os_glance_y") in res.text
        image = api.create(ADMIN, 201, x_os_glance_y="v").json
    # The reserved namespace itself: Glance's deserializer refuses it on both.
    api.create(MEMBER, 403, os_glance_x="v")
    res = api.update(MEMBER, image["id"], [add("/os_glance_x", "v")], 403)
    assert reserved("os_glance_x") in res.text


#: Reference §2.4's matrix file: ``x_blind`` may be created by a member but
#: read only by an admin (create-but-unreadable).
MATRIX_RULES = REFERENCE_2_4_SECTIONS + ADMIN_CATCH_ALL


@pytest.fixture
def matrix_api(pool, setup) -> Iterator[Api]:
    with _api(pool, setup, "roles", MATRIX_RULES) as api:
        yield api


def test_post_create_but_unreadable_property(matrix_api: Api) -> None:
    """Glance: POST of a create-but-unreadable property answers 201 and silently drops it."""
    api = matrix_api
    image = api.create(MEMBER, 201, x_blind="s", x_none_read="n", x_owner_a="a").json
    assert extras(image) == {"x_owner_a": "a"}  # the member cannot read the two others
    assert extras(api.show(MEMBER, image["id"]).json) == {"x_owner_a": "a"}
    admin_view = extras(api.show(ADMIN, image["id"]).json)
    stored = api.stored_properties(image["id"])
    if api.native:
        assert admin_view == {"x_owner_a": "a"}
        assert stored == {"x_owner_a": "a"}  # 201, yet never stored
    else:
        assert admin_view == {"x_owner_a": "a", "x_blind": "s"}  # x_none_read: read = !
        assert stored == {"x_owner_a": "a", "x_blind": "s", "x_none_read": "n"}


def test_patch_add_create_but_unreadable_property(matrix_api: Api) -> None:
    """Glance: PATCH ``add`` of a create-but-unreadable property is a 500; propguard: 403."""
    api = matrix_api
    image_id = api.create(MEMBER, 201, x_owner_a="a").json["id"]
    if api.native:
        api.update(MEMBER, image_id, [add("/x_blind", "s")], 500)
        assert api.stored_properties(image_id) == {"x_owner_a": "a"}
    else:
        # Create right without update right: an add might land on a stored
        # value the member cannot see, so it is 403, present or not (POST
        # create still works, see above).
        res = api.update(MEMBER, image_id, [add("/x_blind", "s")], 403)
        assert reserved("x_blind") in res.text
        assert extras(api.show(ADMIN, image_id).json) == {"x_owner_a": "a"}
    # Existing (admin-created) x_blind: Glance 500 again; propguard the same
    # 403, in both media types, and the admin's value stays.
    other = api.create(ADMIN, 201, x_blind="admin-value").json["id"]
    if api.native:
        api.update(MEMBER, other, [add("/x_blind", "member-value")], 500)
    else:
        res = api.update(MEMBER, other, [add("/x_blind", "member-value")], 403)
        assert reserved("x_blind") in res.text
        api.update(
            MEMBER, other, [{"add": "/x_blind", "value": "v4"}], 403, media_type=JSON_PATCH_DRAFT4
        )
    assert extras(api.show(ADMIN, other).json) == {"x_blind": "admin-value"}
    # Readable by the member but not updatable: 403 on both (§2.4 matrix).
    ro = api.create(ADMIN, 201, x_ro="ro", x_nodel="nd").json["id"]
    res = api.update(MEMBER, ro, [replace("/x_ro", "x")], 403)
    assert reserved("x_ro") in res.text
    res = api.update(MEMBER, ro, [add("/x_ro", "x")], 403)
    assert reserved("x_ro") in res.text
    res = api.update(MEMBER, ro, [remove("/x_nodel")], 403)
    assert reserved("x_nodel") in res.text
    # Unreadable: 409 on both, whether it exists or not.
    for name in ("x_blind", "x_none_read", "foo"):
        res = api.update(MEMBER, ro, [replace(f"/{name}", "x")], 409)
        assert missing(name) in res.text
        res = api.update(MEMBER, ro, [remove(f"/{name}")], 409)
        assert missing(name) in res.text
    res = api.update(MEMBER, ro, [add("/foo", "x")], 403)
    assert reserved("foo") in res.text


# ---------------------------------------------------------------------------
# §3.5 TestPropertyProtectionWithPolicies
#
# Glance's ``test_case_insensitive_roles`` is not replayed: its body is
# ``pass`` (it only starts the server), so there is nothing to assert.
# ---------------------------------------------------------------------------


def test_policies_create_image_with_policy_protected_property(policies_api: Api) -> None:
    res = policies_api.create(MEMBER, 403, foo="bar")
    assert reserved("foo") in res.text
    image = policies_api.create(ADMIN, 201, foo="bar").json
    assert extras(image) == {"foo": "bar"}
    image = policies_api.create(SPL, 201, spl_creator_policy="creator_value").json
    assert extras(image) == {"spl_creator_policy": "creator_value"}


def test_policies_property_protection_policies_caching(policies_api: Api) -> None:
    for i in range(3):
        image = policies_api.create(ADMIN, 201, spl_creator_policy=f"value{i}").json
        assert extras(image) == {"spl_creator_policy": f"value{i}"}


def test_policies_read_only_property(policies_api: Api) -> None:
    image = policies_api.create(ADMIN, 201, x_none_update="read_only_value").json
    got = policies_api.show(ADMIN, image["id"]).json
    assert extras(got) == {"x_none_update": "read_only_value"}
    res = policies_api.update(ADMIN, image["id"], [replace("/x_none_update", "updated")], 403)
    assert reserved("x_none_update") in res.text


def test_policies_update_only_property(policies_api: Api) -> None:
    image = policies_api.create(ADMIN, 201, x_none_delete="initial").json
    res = policies_api.update(ADMIN, image["id"], [replace("/x_none_delete", "updated")], 200)
    assert extras(res.json) == {"x_none_delete": "updated"}
    res = policies_api.update(ADMIN, image["id"], [remove("/x_none_delete")], 403)
    assert reserved("x_none_delete") in res.text
    assert extras(policies_api.show(ADMIN, image["id"]).json) == {"x_none_delete": "updated"}


def test_policies_property_pattern_matching(policies_api: Api) -> None:
    image = policies_api.create(ADMIN, 201, x_foo_bar="value1", x_foo_baz="value2").json
    assert extras(image) == {"x_foo_bar": "value1", "x_foo_baz": "value2"}


def test_policies_multiple_gateway_instances_caching(policies_api: Api) -> None:
    first = policies_api.create(ADMIN, 201, spl_creator_policy="v1").json
    assert extras(policies_api.show(ADMIN, first["id"]).json) == {"spl_creator_policy": "v1"}
    policies_api.create(ADMIN, 201, spl_creator_policy="v2")
    images = policies_api.list(ADMIN).json["images"]
    assert len(images) >= 2
    assert sorted(extras(i)["spl_creator_policy"] for i in images) == ["v1", "v2"]
    policies_api.create(MEMBER, 403, foo="forbidden")


def test_property_protections_with_policies(policies_api: Api) -> None:
    api = policies_api
    # 1
    assert api.list(MEMBER).json["images"] == []
    # 2
    res = api.create(MEMBER, 403, base=AKI, foo="bar", x_owner_foo="o_s_bar")
    assert reserved("foo") in res.text
    # 3
    image = api.create(MEMBER, 201, base=AKI).json
    _assert_standard_body(image)
    assert extras(image) == {}
    # 4
    created = {"spl_creator_policy": "creator_bar", "spl_default_policy": "default_bar"}
    image = api.create(SPL_ADMIN, 201, base=AKI, **created).json
    assert extras(image) == created
    image_id = image["id"]
    # 5
    ops = [replace("/spl_creator_policy", ""), replace("/spl_creator_policy", "r")]
    res = api.update(ADMIN, image_id, ops, 200)
    assert res.json["spl_creator_policy"] == "r"
    # 6
    res = api.update(SPL, image_id, [replace("/spl_creator_policy", "z")], 403)
    assert reserved("spl_creator_policy") in res.text
    # 7
    got = api.show(RANDOM, image_id).json
    assert extras(got) == {"spl_default_policy": "default_bar"}
    # 8
    ops = [replace("/spl_creator_policy", ""), remove("/spl_creator_policy")]
    res = api.update(ADMIN, image_id, ops, 200)
    assert extras(res.json) == {"spl_default_policy": "default_bar"}
    # 9
    assert extras(api.show(RANDOM, image_id).json) == {"spl_default_policy": "default_bar"}
    # 10
    api.delete(MEMBER, image_id, 204)
    api.show(MEMBER, image_id, 404)


def test_property_protections_special_chars_policies(policies_api: Api) -> None:
    _special_chars(policies_api, non_admin_hidden_status=409)
